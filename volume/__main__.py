"""`python -m volume key=value ...`: run one experiment into hydra's run directory.

`python -m volume -m key=a,b ...` sweeps with hydra's launchers (basic, joblib, submitit,
ray); see docs/scale-out.md.
"""
from __future__ import annotations

import json
import logging
import os
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


def save_hydra_record(cfg: DictConfig, run_dir: Path) -> None:
    """`.hydra/{config,hydra,overrides}.yaml`, as hydra writes them, but only once the config
    is accepted (conf/config.yaml sets hydra.output_subdir=null so hydra itself does not)."""
    from omegaconf import OmegaConf

    from volume import results

    record = run_dir / ".hydra"
    record.mkdir(exist_ok=True)
    hydra_cfg = HydraConfig.instance().cfg
    for name, node in (("config.yaml", cfg), ("hydra.yaml", hydra_cfg), ("overrides.yaml", hydra_cfg.hydra.overrides.task)):
        results.atomic_write(record / name, lambda h, node=node: h.write(OmegaConf.to_yaml(node)))


def run(cfg: DictConfig, run_dir: Path, hydra_record: bool = False) -> dict:
    """Validate, guard the directory, run the experiment, log. Everything that can be wrong
    with the input raises ConfigError before anything is written or computed."""
    from volume import experiments, results
    from volume.logger import make_logger
    from volume.experiments import validate

    setup, state = validate(cfg, run_dir)
    experiment = experiments.get(cfg.experiment.name)
    if state is not None and state.get("complete"):
        # resume=true on a finished run (e.g. re-running an interrupted sweep): nothing to do,
        # nothing written.
        summary = json.loads((run_dir / results.RESULTS).read_text())["summary"]
        print(f"already complete: {run_dir}\n{experiment.describe(summary)}")
        return summary
    run_dir.mkdir(parents=True, exist_ok=True)
    if hydra_record:
        save_hydra_record(cfg, run_dir)
    results.remove_stale_temporaries(run_dir)
    threads = job_threads(cfg)
    if threads:
        from volume.threads import set_threads  # torch and numba load only once the call is accepted

        set_threads(threads)
    logger = make_logger(cfg, setup.config, run_dir)
    start = time.perf_counter()
    summary = experiment.run(setup, run_dir, results.Stages(run_dir, setup.config, state, cfg.checkpoint_seconds))
    results.clear_checkpoint(run_dir)
    logger.finish(summary, run_dir)
    log.info("done in %.1f s; results in %s", time.perf_counter() - start, run_dir)
    print(experiment.describe(summary))
    return summary


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    from volume.cli_guard import fail
    from volume.errors import ConfigError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run(cfg, run_dir, hydra_record=True)
    except ConfigError as err:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a sweep job's directory, made by hydra before the config could be checked
        fail(err, str(err), 2)
    except OSError as err:  # disk full, read-only, directory removed: every file written is whole
        fail(err, f"writing to {run_dir} failed ({err}); files already there are intact (written atomically); "
             "fix the cause, then run the same command with resume=true", 1)
    return None


if __name__ == "__main__":
    from volume.cli_guard import cli

    cli(main)
