"""One module per experiment, each with `run(setup, run_dir, state) -> summary` and
`describe(summary) -> str` (the paragraph printed at the end). A module placed here is an
experiment: `experiment.name` is its module name."""
from __future__ import annotations

import importlib
import pkgutil

EXPERIMENTS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def get(name: str):
    from volume.errors import ConfigError

    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment.name: unknown {name!r}; allowed: {list(EXPERIMENTS)}")
    return importlib.import_module(f"volume.experiments.{name}")
