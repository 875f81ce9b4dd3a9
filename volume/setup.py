"""Config -> (architecture, prior, task): every check on the config happens here, before
any work, so bad input stops the run with one message naming the key."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from volume.errors import ConfigError
from volume.nets import Architecture, build_architecture
from volume.priors import Prior, build_prior
from volume.tasks import Task, build_task
from volume.training import build_trainer


LOGGERS = ("none", "wandb")
WANDB_MODES = ("offline", "online", "disabled")
CLASSIFIERS = ("none",)  # classifiers run inside the experiments (experiment.circuits), not here


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


def fraction(cfg: DictConfig, key: str) -> float:
    """cfg's number at key (dotted), after checking it lies strictly between 0 and 1."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{key}: a fraction in (0, 1), got {value!r}")
    return float(value)


def one_of(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> str:
    """cfg's value at key (dotted), after checking it is one of `allowed`."""
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}: unknown {value!r}; allowed: {list(allowed)}")
    return value


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
    positive_int(cfg, "model.n_out")  # nets.build_architecture would int() whatever it gets
    for key in ("resume", "progress", "model.bias", "prior.fan_in_scaling"):
        if not isinstance(OmegaConf.select(cfg, key), bool):
            raise ConfigError(f"{key}: must be true or false, got {OmegaConf.select(cfg, key)!r}")
    one_of(cfg, "logger.name", LOGGERS)
    if cfg.logger.name == "wandb":
        one_of(cfg, "logger.mode", WANDB_MODES)
    one_of(cfg, "classifier.name", CLASSIFIERS)
    seconds = cfg.get("checkpoint_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise ConfigError(f"checkpoint_seconds: a finite number of seconds >= 0, got {seconds!r}")


def resolved(cfg: DictConfig) -> Any:
    """The config as plain values; an interpolation that does not resolve is a ConfigError
    naming its key (omegaconf resolves lazily, so this would otherwise fail mid-run)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{err.full_key}: {str(err.msg).splitlines()[0]}") from None


def build_setup(cfg: DictConfig, config: Any) -> Setup:
    """Check the run keys and build the objects the config names (no sampling yet); `config`
    is resolved(cfg). The experiment's own keys are checked by volume.experiments.build."""
    validate_run_keys(cfg)
    task = build_task(cfg.task)
    arch = build_architecture(cfg.model, task.n_vars)
    prior = build_prior(cfg.prior)
    build_trainer(cfg.trainer)  # checked for every experiment, so a typo never waits for the training ones
    return Setup(cfg, config, arch, prior, task)
