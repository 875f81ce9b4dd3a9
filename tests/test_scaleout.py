"""Sweeps through hydra's launchers, failed jobs, interrupted sweeps, the results index, wandb offline."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd

from conftest import ROOT
from volume.index import build_index

TINY = ["n_samples=2000", "model.hidden=[8]", "task.n=4"]


def sweep(*args, env_extra=None):
    env = {**os.environ, "WANDB_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "volume", "-m", "progress=false", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_joblib_sweep_one_invalid_job_fails_alone(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,-1", *TINY, f"hydra.sweep.dir={out}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "seed: must be an integer >= 0" in proc.stderr
    done = {json.loads((out / str(i) / "results.json").read_text())["config"]["seed"] for i in (0, 1)}
    assert done == {0, 1}
    assert not (out / "2").exists()  # the rejected job's directory: removed, it was empty
    # Two jobs at once on this machine: each gets an equal share of the cores.
    threads = json.loads((out / "0" / "results.json").read_text())["summary"]["threads"]
    assert threads == max(1, (os.cpu_count() or 1) // 2)
    index = build_index(out)
    assert sorted(index["override.seed"].astype(int)) == [0, 1]
    assert (index["n_samples"] == 2000).all()
    proc = subprocess.run([sys.executable, "-m", "volume.index", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and len(pd.read_csv(out / "index.csv")) == 2


def test_submitit_local_sweep(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep("hydra/launcher=local", "seed=0,1", *TINY, f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for i in (0, 1):
        assert pd.read_csv(out / str(i) / "functions.csv")["count"].sum() == 2000


def test_killed_sweep_resumes_killed_jobs_and_runs_missing_ones(tmp_path):
    """A sweep killed (os._exit, as kill -9) in its second job: job 0 finished, job 1 holds a
    checkpoint, job 2 never started. Re-run with resume=true: job 0's files stay byte for byte,
    job 1 continues from its checkpoint (an altered value in it survives), job 2 runs; every
    table equals one uninterrupted run's."""
    from conftest import run_in_process, tree
    from volume import results

    out, args = tmp_path / "sweep", (*TINY, "checkpoint_seconds=0", "batch_size=512")  # 3 checkpoints a job
    killed = sweep("seed=0,1,2", *args, f"hydra.sweep.dir={out}", env_extra={results.EXIT_AFTER_CHECKPOINT: "4"})
    assert killed.returncode == results.KILLED, killed.stderr[-2000:]
    assert (out / "0" / "results.json").exists() and not (out / "0" / "checkpoint.npz").exists()
    assert (out / "1" / "checkpoint.npz").exists() and not (out / "1" / "results.json").exists()
    assert not (out / "2").exists()
    finished = tree(out / "0")
    state = results.read_checkpoint(out / "1" / "checkpoint.npz")
    results.write_npz(out / "1" / "checkpoint.npz", {**state, "count__elapsed": np.array(1e6)})
    proc = sweep("seed=0,1,2", *args, "resume=true", f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert tree(out / "0") == finished
    assert json.loads((out / "1" / "results.json").read_text())["summary"]["seconds"] >= 1e6
    for seed in (0, 1, 2):
        run_in_process(tmp_path / f"one{seed}", *args, f"seed={seed}")
        assert (out / str(seed) / "functions.csv").read_text() == (tmp_path / f"one{seed}" / "functions.csv").read_text()


def test_two_sweeps_in_different_dirs_do_not_interfere(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    procs = [subprocess.Popen([sys.executable, "-m", "volume", "-m", "progress=false", f"seed={s},{s + 1}", *TINY,
                               f"hydra.sweep.dir={tmp_path / name}"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for s, name in ((0, "a"), (1, "b"))]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    # Job "a/1" and job "b/0" ran the same config (seed 1) in parallel: identical tables.
    assert (tmp_path / "a" / "1" / "functions.csv").read_text() == (tmp_path / "b" / "0" / "functions.csv").read_text()
    for name in ("a", "b"):
        assert sorted(p.name for p in (tmp_path / name).iterdir() if p.is_dir()) == ["0", "1"]


def test_wandb_offline_run_holds_history(tmp_path):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    proc = subprocess.run([sys.executable, "-m", "volume", "progress=false", *TINY, "logger=wandb",
                           f"hydra.run.dir={out}"], cwd=ROOT, env={**env, "WANDB_SILENT": "true"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"hist/log_p", b"n_distinct_functions", b"figures/rank.png", b"simplicity_bias"):
        assert key in history
    assert list((runs[0] / "files" / "media" / "images").rglob("*.png"))
