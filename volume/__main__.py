"""`python -m volume key=value ...`: run one experiment into hydra's run directory."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("volume")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Validate, guard the directory, run the experiment, log. Everything that can be wrong
    with the input raises ConfigError before any sampling starts."""
    import torch

    from volume import experiments, results
    from volume.logger import make_logger
    from volume.setup import build

    setup = build(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = results.check_run_dir(run_dir, setup.config, cfg.resume)
    results.remove_stale_temporaries(run_dir)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
        import numba

        numba.set_num_threads(min(cfg.threads, numba.config.NUMBA_NUM_THREADS))
    experiment = experiments.get(cfg.experiment.name)
    logger = make_logger(cfg, setup.config, run_dir)
    start = time.perf_counter()
    summary = experiment.run(setup, run_dir, state)
    logger.finish(summary, run_dir)
    log.info("done in %.1f s; results in %s", time.perf_counter() - start, run_dir)
    print(experiment.describe(summary))
    return summary


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from volume.errors import ConfigError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run(cfg, run_dir)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        # A multirun keeps going with its other jobs; a single run exits non-zero.
        if HydraConfig.get().mode.name == "RUN":
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
