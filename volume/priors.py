"""Priors over parameters: Gaussian or uniform, per-parameter std from the architecture.

Sample j of a run depends only on (seed, j): rows come from the counter-based generator
in `volume.rng`, so any chunking, shard split or thread count gives the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from volume.errors import ConfigError
from volume.nets import Architecture
from volume.rng import counter_sample

PRIORS = ("gaussian", "uniform")


@dataclass(frozen=True)
class Prior:
    """kind: 'gaussian' or 'uniform' (same variances: U(-a, a) with a = std * sqrt 3).
    Weights have std sigma_w / sqrt(fan_in) when fan_in_scaling, else sigma_w; biases sigma_b."""

    kind: str = "gaussian"
    sigma_w: float = 1.0
    sigma_b: float = 1.0
    fan_in_scaling: bool = True

    def __post_init__(self):
        if self.kind not in PRIORS:
            raise ConfigError(f"prior.name: unknown {self.kind!r}; allowed: {list(PRIORS)}")
        for key in ("sigma_w", "sigma_b"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or math.isinf(value):
                raise ConfigError(f"prior.{key}: must be a positive finite number, got {value!r}")

    def std(self, arch: Architecture) -> np.ndarray:
        """Per-parameter standard deviation, shape [P], float64."""
        out = np.empty(arch.n_params, dtype=np.float64)
        for s in arch.slices:
            if s.kind == "bias":
                out[s.start : s.stop] = self.sigma_b
            else:
                out[s.start : s.stop] = self.sigma_w / (math.sqrt(s.fan_in) if self.fan_in_scaling else 1.0)
        return out

    @property
    def distribution(self) -> str:
        return "normal" if self.kind == "gaussian" else "uniform"

    def sample(self, arch: Architecture, n: int, seed: int, offset: int = 0, stream: int = 0,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """theta[n, P]: samples offset .. offset + n - 1 of run `seed`."""
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        rows = counter_sample(seed, offset, n, self.std(arch), self.distribution, stream, np_dtype)
        return torch.from_numpy(rows)

    def log_density(self, arch: Architecture, theta: torch.Tensor) -> torch.Tensor:
        """Log density of each row of theta[B, P] (uniform: 0 inside the box, -inf outside)."""
        std = torch.as_tensor(self.std(arch), dtype=theta.dtype)
        if self.kind == "gaussian":
            z = theta / std
            return -0.5 * (z * z).sum(1) - torch.log(std).sum() - 0.5 * arch.n_params * math.log(2 * math.pi)
        half = std * math.sqrt(3.0)
        inside = (theta.abs() < half).all(1)
        log_vol = torch.log(2 * half).sum()
        return torch.where(inside, -log_vol, torch.full_like(log_vol, -math.inf))


def build_prior(prior_cfg) -> Prior:
    return Prior(prior_cfg.get("name", "gaussian"), prior_cfg.get("sigma_w", 1.0), prior_cfg.get("sigma_b", 1.0),
                 bool(prior_cfg.get("fan_in_scaling", True)))
