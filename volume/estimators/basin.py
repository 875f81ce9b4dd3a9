"""Local basin volume around a given network theta* (the star-domain estimator in the
convention of Scherlis & Belrose 2025, arXiv 2501.18812).

Region: {theta : loss(theta) < threshold}, seen from theta*. In whitened coordinates
z = theta / std (prior N(0, I), or the uniform box [-sqrt 3, sqrt 3]^d), draw random
directions u on the unit sphere; along each find the radius r(u) where the loss first
reaches the threshold (a geometric grid, then bisection). The star-shaped set
{z* + t u : t < r(u)} has prior mass
    A_d * E_u[ int_0^r(u) p(z* + t u) t^(d-1) dt ],   A_d = 2 pi^(d/2) / Gamma(d/2),
with the inner integral done in log space. This is a lower bound twice over: the star
set lies inside the connected region around theta* (the true basin may reach further
behind bends), and the mean over finitely many directions of a heavy-tailed quantity
(r^d) usually falls below its expectation. So the result is reported as a lower bound
(Estimate.bound == 'lower'), with no coverage claim. It is exact in the limit of many
directions only for regions that are star-shaped around theta* (e.g. convex ones).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import special
from tqdm import tqdm

from volume.estimate import Estimate
from volume.nets import Architecture
from volume.priors import Prior

Loss = Callable[[torch.Tensor], torch.Tensor]
T_MIN = 1e-3  # smallest radius probed, in prior standard deviations
N_QUAD = 4000  # points of the radial integral


@dataclass
class BasinResult:
    estimate: Estimate
    radii: np.ndarray  # [n_directions] whitened radius per direction (inf-free: capped at the search end)
    log_terms: np.ndarray  # [n_directions] log of each direction's contribution
    ess: float  # effective number of directions behind the mean (small: dominated by a few)


def _box_exit(z0: torch.Tensor, u: torch.Tensor, half: float) -> torch.Tensor:
    """Distance along each u from z0 to the boundary of [-half, half]^d."""
    room = torch.where(u > 0, half - z0, half + z0) / u.abs().clamp_min(1e-300)
    return room.amin(1)


def _radii(loss: Loss, z0: torch.Tensor, u: torch.Tensor, std: torch.Tensor, threshold: float,
           t_end: torch.Tensor, n_grid: int, n_bisect: int) -> tuple[torch.Tensor, int]:
    """First radius along each direction where loss >= threshold (or t_end), and evals spent."""
    n = u.shape[0]
    grid = torch.logspace(math.log10(T_MIN), 0, n_grid, dtype=torch.float64)  # fraction of t_end
    inside = torch.ones(n, dtype=torch.bool)
    lo = torch.zeros(n, dtype=torch.float64)
    hi = t_end.clone()
    evals = 0
    for g in grid:
        t = g * t_end
        rows = torch.nonzero(inside).flatten()
        if not len(rows):
            break
        out = loss((z0 + t[rows, None] * u[rows]) * std) >= threshold
        evals += len(rows)
        hi[rows[out]] = t[rows[out]]
        lo[rows[~out]] = t[rows[~out]]
        inside[rows[out]] = False
    crossed = ~inside
    for _ in range(n_bisect):
        rows = torch.nonzero(crossed).flatten()
        mid = 0.5 * (lo[rows] + hi[rows])
        out = loss((z0 + mid[:, None] * u[rows]) * std) >= threshold
        evals += len(rows)
        hi[rows[out]] = mid[out]
        lo[rows[~out]] = mid[~out]
    return torch.where(crossed, lo, t_end), evals


def _log_radial_gaussian(z0: torch.Tensor, u: torch.Tensor, r: torch.Tensor) -> np.ndarray:
    """log int_0^r N_d(z0 + t u; 0, I) t^(d-1) dt for each direction (trapezoid in log space)."""
    d = z0.shape[0]
    a = (u @ z0).numpy()[:, None]
    t = r.numpy()[:, None] * np.linspace(0, 1, N_QUAD)[None, 1:]
    log_f = (-0.5 * d * math.log(2 * math.pi) - 0.5 * (float(z0 @ z0) + 2 * t * a + t * t)
             + (d - 1) * np.log(t))
    log_w = np.zeros(N_QUAD - 1)
    log_w[-1] = math.log(0.5)
    return special.logsumexp(log_f + log_w, axis=1) + np.log(r.numpy() / (N_QUAD - 1))


def basin(loss: Loss, theta_star: torch.Tensor, arch: Architecture, prior: Prior, threshold: float, *,
          n_directions: int = 1000, n_grid: int = 256, n_bisect: int = 30, seed: int = 0, batch: int = 256,
          progress: bool = True) -> BasinResult:
    """Prior mass of the star-shaped region around theta* where loss < threshold; a lower
    bound (see the module docstring). loss: theta[B, P] -> [B]."""
    theta_star = torch.as_tensor(theta_star, dtype=torch.float64).reshape(-1)
    if theta_star.shape[0] != arch.n_params:
        raise ValueError(f"theta_star: needs {arch.n_params} parameters for {arch.describe()}, "
                         f"got {theta_star.shape[0]}")
    if not n_directions >= 2 or not n_grid >= 2 or n_bisect < 0:
        raise ValueError("n_directions >= 2, n_grid >= 2 and n_bisect >= 0 are required")
    start = float(loss(theta_star[None])[0])
    if not start < threshold:
        raise ValueError(f"threshold: theta* must lie inside its basin, loss(theta*) = {start:.4g} is not "
                         f"below the threshold {threshold:.4g}")
    std = torch.from_numpy(prior.std(arch))
    z0 = theta_star / std
    d = arch.n_params
    half = math.sqrt(3.0)
    if prior.kind == "uniform" and bool((z0.abs() >= half).any()):
        raise ValueError("theta_star: lies outside the uniform prior's box, where the prior has no mass")
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0xBA5]).generate_state(1)[0]))
    u = torch.randn(n_directions, d, generator=gen, dtype=torch.float64)
    u /= u.norm(dim=1, keepdim=True)
    if prior.kind == "gaussian":  # beyond this radius the Gaussian holds < e^-70 of the mass
        t_end = torch.full((n_directions,), float(z0.norm()) + math.sqrt(d) + 12.0, dtype=torch.float64)
    else:
        t_end = _box_exit(z0, u, half)
    radii, evals = torch.empty(n_directions, dtype=torch.float64), 1
    with torch.inference_mode():
        for lo in tqdm(range(0, n_directions, batch), desc="basin", disable=not progress):
            sl = slice(lo, lo + batch)
            radii[sl], spent = _radii(loss, z0, u[sl], std, threshold, t_end[sl], n_grid, n_bisect)
            evals += spent
    log_area = math.log(2) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)
    if prior.kind == "gaussian":  # in pieces of `batch` directions: the quadrature is [batch, N_QUAD]
        log_terms = log_area + np.concatenate([_log_radial_gaussian(z0, u[i : i + batch], radii[i : i + batch])
                                               for i in range(0, n_directions, batch)])
    else:  # uniform density 1 / (2 sqrt 3)^d inside the box; the radii already stop at its wall
        log_terms = log_area + d * np.log(radii.numpy()) - math.log(d) - d * math.log(2 * half)
    log_p = min(0.0, float(special.logsumexp(log_terms) - math.log(n_directions)))
    weights = np.exp(log_terms - log_terms.max())
    ess = float(weights.sum() ** 2 / (weights**2).sum())
    method = f"basin(star domain, {n_directions} directions, ESS {ess:.1f})"
    return BasinResult(Estimate(log_p, (log_p, 0.0), evals, method, bound="lower"), radii.numpy(), log_terms, ess)
