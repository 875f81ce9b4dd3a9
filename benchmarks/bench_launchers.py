"""4 equal jobs: joblib with n_jobs=2 (one thread each) against the same 4 jobs one after
another with one thread each (target: <= 0.55x the time) and with the default threads."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sweep_seconds(out: Path, *args: str) -> float:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "volume", "-m", "progress=false", "seed=0,1,2,3", *args,
                    f"hydra.sweep.dir={out}"], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(quick: bool = False) -> None:
    n = "n_samples=100000" if quick else "n_samples=600000"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sweep_seconds(tmp / "warm", "n_samples=1000")  # numba cache, imports
        one_thread = sweep_seconds(tmp / "seq1", n, "threads=1")
        joblib = sweep_seconds(tmp / "joblib", n, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
        default = sweep_seconds(tmp / "seq", n)
    print(f"4 jobs ({n}), wall clock including process start-up:")
    print(f"  one after another, 1 thread each:   {one_thread:6.1f} s")
    print(f"  joblib n_jobs=2, 1 thread each:     {joblib:6.1f} s = {joblib / one_thread:.2f}x (target <= 0.55x)")
    print(f"  one after another, default threads: {default:6.1f} s; joblib = {joblib / default:.2f}x of it")
