"""One module per experiment, each with `run(setup, run_dir, state) -> summary` and
`describe(summary) -> str` (the paragraph printed at the end)."""
from __future__ import annotations

import importlib

EXPERIMENTS = ("simplicity_bias",)


def get(name: str):
    from volume.errors import ConfigError

    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment.name: unknown {name!r}; allowed: {list(EXPERIMENTS)}")
    return importlib.import_module(f"volume.experiments.{name}")
