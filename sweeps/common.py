"""Shared by the figure scripts: run (or reuse) hydra sweeps, with any launcher."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCHERS = ("basic", "joblib", "local", "slurm", "ray")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (what the tests run)")
    p.add_argument("--launcher", choices=LAUNCHERS, default="basic",
                   help="hydra launcher for the runs: basic (one after another), joblib (parallel on this "
                        "machine), local (submitit without a cluster), slurm (submitit), ray")
    p.add_argument("--out", type=Path, default=None, help="where runs and the figure go (default figures/NAME)")
    p.add_argument("launcher_overrides", nargs="*", help="extra hydra overrides, e.g. hydra.launcher.n_jobs=2")
    return p


def launcher_args(launcher: str) -> list[str]:
    return [] if launcher == "basic" else [f"hydra/launcher={launcher}"]


def run_sweep(sweep_dir: Path, overrides: list[str], launcher: str = "basic", extra: list[str] = ()) -> list[Path]:
    """Run `python -m volume -m OVERRIDES` into sweep_dir and return its job directories.
    resume=true makes jobs that already finished no-ops, so a re-run only completes the rest."""
    cmd = [sys.executable, "-m", "volume", "-m", "resume=true", "progress=false", *launcher_args(launcher),
           f"hydra.sweep.dir={sweep_dir}", *overrides, *extra]
    print("$", " ".join(cmd[1:]), flush=True)
    env = {**os.environ}
    env.setdefault("WANDB_MODE", "disabled")
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    jobs = sorted((p for p in sweep_dir.iterdir() if (p / "results.json").exists()), key=lambda p: int(p.name)
                  if p.name.isdigit() else p.name)
    return jobs


def load(job_dir: Path) -> dict:
    return json.loads((job_dir / "results.json").read_text())
