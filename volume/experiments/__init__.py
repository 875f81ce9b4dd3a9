"""One module per experiment, each with `validate(setup)` (its own keys), `run(setup, run_dir,
stages) -> summary` (stages: the run's checkpoint, volume.results.Stages) and
`describe(summary) -> str` (the paragraph printed at the end). A module placed here whose name
does not start with `_` is an experiment: `experiment.name` is its module name. `build` and `validate`
check a whole call before any work."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

if TYPE_CHECKING:
    from volume.setup import Setup

EXPERIMENTS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def get(name: str):
    from volume.errors import ConfigError

    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment.name: unknown {name!r}; allowed: {list(EXPERIMENTS)}")
    return importlib.import_module(f"volume.experiments.{name}")


def build(cfg: DictConfig) -> Setup:
    """Validate the whole config, the experiment's own keys last, and build the run's Setup
    (no sampling yet). Lives here, not in volume.setup, so that setup never imports experiments."""
    from volume.setup import build_setup, resolved

    config = resolved(cfg)
    experiment = get(cfg.experiment.name)
    setup = build_setup(cfg, config)
    experiment.validate(setup)
    return setup


def validate(cfg: DictConfig, run_dir: Path) -> tuple[Setup, dict | None]:
    """Everything that can be wrong with a call, checked without writing anything: the config,
    the directory (writable, not another config's results, a readable checkpoint). Returns
    the setup and the checkpoint's state when resuming (see results.check_run_dir)."""
    from volume import results

    setup = build(cfg)
    results.check_writable(run_dir)
    return setup, results.check_run_dir(run_dir, setup.config, cfg.resume)
