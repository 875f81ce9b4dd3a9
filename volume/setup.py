"""Config -> (architecture, prior, task): every check on the config happens here, before
any work, so bad input stops the run with one message naming the key."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from volume import results
from volume.errors import ConfigError
from volume.nets import Architecture, build_architecture
from volume.priors import Prior, build_prior
from volume.tasks import Task, build_task


@dataclass
class Setup:
    cfg: DictConfig
    config: dict  # the resolved config as plain values (stored in results.json)
    arch: Architecture
    prior: Prior
    task: Task


def positive_int(cfg: DictConfig, key: str, minimum: int = 1) -> int:
    """cfg's integer at key (dotted), after checking it is >= minimum (ConfigError names the key)."""
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return value


def positive_ints(cfg: DictConfig, key: str) -> list[int]:
    """cfg's integer or list of integers at key, each checked to be >= 1, as a list."""
    value = OmegaConf.select(cfg, key)
    values = list(value) if OmegaConf.is_list(value) else [value]
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ConfigError(f"{key}: positive integer(s), got {value!r}")
    return values


def validate_run_keys(cfg: DictConfig) -> None:
    positive_int(cfg, "n_samples")
    positive_int(cfg, "batch_size")
    positive_int(cfg, "num_shards")
    positive_int(cfg, "seed", minimum=0)
    shard = positive_int(cfg, "shard", minimum=0)
    if shard >= cfg.num_shards:
        raise ConfigError(f"shard: must lie in 0..num_shards-1 = 0..{cfg.num_shards - 1}, got {shard}")
    if cfg.get("threads") is not None:
        positive_int(cfg, "threads")
    if cfg.get("device", "cpu") not in ("cpu", "cuda"):
        raise ConfigError(f"device: unknown {cfg.device!r}; allowed: ['cpu', 'cuda']")
    if cfg.get("device", "cpu") == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' asked for, but torch sees no GPU here; use device=cpu")
    if not isinstance(cfg.get("resume"), bool):
        raise ConfigError(f"resume: must be true or false, got {cfg.get('resume')!r}")
    if cfg.logger.get("name", "none") not in ("none", "wandb"):
        raise ConfigError(f"logger.name: unknown {cfg.logger.name!r}; allowed: ['none', 'wandb']")
    if not isinstance(cfg.get("progress"), bool):
        raise ConfigError(f"progress: must be true or false, got {cfg.get('progress')!r}")
    seconds = cfg.get("checkpoint_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise ConfigError(f"checkpoint_seconds: a finite number of seconds >= 0, got {seconds!r}")


def build(cfg: DictConfig) -> Setup:
    """Validate the whole config and build the objects it names (no sampling yet)."""
    from volume.experiments import get

    experiment = get(cfg.experiment.name)
    validate_run_keys(cfg)
    task = build_task(cfg.task)
    arch = build_architecture(cfg.model, task.n_vars)
    prior = build_prior(cfg.prior)
    config: Any = OmegaConf.to_container(cfg, resolve=True)
    setup = Setup(cfg, config, arch, prior, task)
    experiment.validate(setup)
    return setup


def validate(cfg: DictConfig, run_dir: Path) -> tuple[Setup, dict | None]:
    """Everything that can be wrong with a call, checked without writing anything: the config,
    the directory (writable, not another config's results, a readable checkpoint). Returns
    the setup and the checkpoint's state when resuming (see results.check_run_dir)."""
    setup = build(cfg)
    results.check_writable(run_dir)
    return setup, results.check_run_dir(run_dir, setup.config, cfg.resume)
