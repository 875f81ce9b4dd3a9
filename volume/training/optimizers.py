"""The Trainer (optimiser, loss, batch size, step budget, pool): its options, their
validation, and one optimiser step of every pool row (SGD with momentum or Adam, per-network
bias correction)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from volume.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "ce")


@dataclass(frozen=True)
class Trainer:
    """optimizer: 'sgd' (PyTorch's momentum convention, no dampening) or 'adam'; loss: 'mse'
    on +-1 targets or 'ce' (logistic loss); batch_size 0 = full batch; pool = networks
    trained side by side (cache-sized; a finished network's slot is refilled at once, so
    results do not depend on it)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    loss: str = "mse"
    batch_size: int = 0
    max_steps: int = 10000
    pool: int = 256

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"trainer.optimizer: unknown {self.optimizer!r}; allowed: {list(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"trainer.loss: unknown {self.loss!r}; allowed: {list(LOSSES)}")
        _check_number("lr", self.lr, low=0.0, open_low=True)
        for key in ("momentum", "beta1", "beta2"):
            _check_number(key, getattr(self, key), low=0.0, high=1.0)
        _check_number("eps", self.eps, low=0.0, open_low=True)
        for key, minimum in (("batch_size", 0), ("max_steps", 1), ("pool", 1)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"trainer.{key}: must be an integer >= {minimum}, got {value!r}")


def _check_number(key: str, value, low: float, high: float = math.inf, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or value > high or (open_low and value == low) or (high == 1.0 and value == 1.0):
        bound = f"in [{low}, {high})" if high < math.inf else f"> {low}"
        raise ConfigError(f"trainer.{key}: must be a number {bound}, got {value!r}")


def build_trainer(trainer_cfg) -> Trainer:
    """Trainer from the `trainer` config group (unknown keys are refused, by name)."""
    allowed = set(Trainer.__dataclass_fields__) | {"name"}
    unknown = sorted(set(trainer_cfg) - allowed)
    if unknown:
        raise ConfigError(f"trainer: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return Trainer(**{k: v for k, v in trainer_cfg.items() if k != "name"})


@torch.no_grad()
def update_(theta: torch.Tensor, grad: torch.Tensor, moments: list[torch.Tensor], trainer: Trainer,
             step: np.ndarray) -> None:
    """One optimiser step of every pool row, in place; step[j] counts row j's updates
    including this one (Adam's bias correction is per network)."""
    if trainer.optimizer == "sgd":
        (velocity,) = moments
        velocity.mul_(trainer.momentum).add_(grad)
        theta.sub_(velocity, alpha=trainer.lr)
        return
    m, v = moments
    m.lerp_(grad, 1 - trainer.beta1)
    v.mul_(trainer.beta2).addcmul_(grad, grad, value=1 - trainer.beta2)
    correction1 = torch.from_numpy(1 - trainer.beta1 ** step.astype(np.float64)).float()[:, None]
    root2 = torch.from_numpy(np.sqrt(1 - trainer.beta2 ** step.astype(np.float64))).float()[:, None]
    denom = v.sqrt().div_(root2).add_(trainer.eps)
    theta.addcdiv_(m, denom.mul_(correction1), value=-trainer.lr)
