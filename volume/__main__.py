"""`python -m volume key=value ...`: run one experiment into hydra's run directory.

`python -m volume -m key=a,b ...` sweeps with hydra's launchers (basic, joblib, submitit,
ray); see README.md, "Scale-out".
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("volume")


def job_threads(cfg: DictConfig) -> int | None:
    """Threads for this job: `threads` if set; else, under a launcher that runs n_jobs jobs
    at once on this machine (joblib), an equal share of the cores, so workers don't
    oversubscribe; under submitit, the job's cpus_per_task."""
    if cfg.get("threads"):
        return int(cfg.threads)
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode.name != "MULTIRUN":
        return None
    if hydra_cfg.launcher.get("cpus_per_task"):  # submitit: the cores SLURM gave this job
        return int(hydra_cfg.launcher.cpus_per_task)
    n_jobs = hydra_cfg.launcher.get("n_jobs")
    if n_jobs is None:
        return None
    cores = os.cpu_count() or 1
    n_jobs = cores if n_jobs < 0 else n_jobs
    return max(1, cores // max(1, n_jobs))


def set_threads(threads: int | None) -> None:
    if not threads:
        return
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Validate, guard the directory, run the experiment, log. Everything that can be wrong
    with the input raises ConfigError before any sampling starts."""
    from volume import experiments, results
    from volume.logger import make_logger
    from volume.setup import build

    setup = build(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = results.check_run_dir(run_dir, setup.config, cfg.resume)
    results.remove_stale_temporaries(run_dir)
    set_threads(job_threads(cfg))
    experiment = experiments.get(cfg.experiment.name)
    if state is not None and state.get("complete"):
        # resume=true on a finished run (e.g. re-running an interrupted sweep): nothing to do.
        summary = json.loads((run_dir / results.RESULTS).read_text())["summary"]
        log.info("already complete: %s", run_dir)
        print(experiment.describe(summary))
        return summary
    logger = make_logger(cfg, setup.config, run_dir)
    start = time.perf_counter()
    summary = experiment.run(setup, run_dir, state)
    logger.finish(summary, run_dir)
    log.info("done in %.1f s; results in %s", time.perf_counter() - start, run_dir)
    print(experiment.describe(summary))
    return summary


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    from volume.errors import ConfigError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run(cfg, run_dir)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        if HydraConfig.get().mode.name == "RUN":
            sys.exit(2)
        # In a sweep, hydra records this job as failed, runs the others, then raises this
        # error, so the sweep ends non-zero after finishing every valid job.
        raise


if __name__ == "__main__":
    main()
