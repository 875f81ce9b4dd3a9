"""Exact probabilities by independent means, for validating the estimators.

Two families of perceptron events (a network [n_in, 1] with bias), both spanning P from
about 1e-1 to far below 1e-15 by the margin asked for:

- `hadamard_case`: inputs are the m rows of a Sylvester Hadamard matrix (orthogonal +-1
  vectors), Gaussian prior. Given the bias b, the outputs w.x_i are independent
  N(0, tau^2), so P(min_i s_i (w.x_i + b) > margin) is the one-dimensional integral
  int phi(b) prod_i Phibar((margin - s_i b) / tau) db, done in log space (log_ndtr and a
  log-sum-exp trapezoid rule on a fine grid). A general multivariate normal CDF would
  be useless here: its absolute error is near 1e-5.
- `uniform_constant_case`: the Boolean cube {-1, +1}^n, uniform prior, target constant
  true. All outputs exceed the margin iff b - sum_j |w_j| > margin; |w_j| are uniform, so
  this is an Irwin-Hall integral, evaluated exactly in rational arithmetic.

Both are convex. The non-convex families:
- `xor_copies_case`: k independent 2-2-1 ReLU networks side by side (nets.Composite), the
  class "every copy computes XOR on {-1, 1}^2". One copy's class is multimodal (several
  hidden-unit arrangements, plus a ridge of dead-unit networks whose score creeps up to
  0 without entering), and the product of k copies has log P = k log p exactly, with
  log p measured once by 1e8 plain samples (`measure_xor_factor`, stored below).
- `hadamard_union_case`: the union of the Hadamard perceptron classes of several targets:
  disjoint cones of unequal, exactly known mass (dimension m + 1, up to a few hundred).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from scipy import special

from volume.estimate import Estimate
from volume.estimators.rare_event import monte_carlo_score
from volume.estimators.scores import Score, max_score, min_score, target_margin_score
from volume.nets import MLP, Architecture, Composite
from volume.priors import Prior
from volume.rng import XOR_CASE_STREAM

GRID = 200_001


@dataclass
class Case:
    """One exactly known event: the class {target margin score > margin}."""

    name: str
    arch: MLP
    prior: Prior
    x: torch.Tensor
    target: np.ndarray
    margin: float
    log_p: float


def hadamard(m: int) -> np.ndarray:
    """Sylvester's Hadamard matrix of order m (a power of two), entries +-1, rows orthogonal."""
    if m < 1 or m & (m - 1):
        raise ValueError(f"m: a power of two, got {m}")
    h = np.ones((1, 1))
    while h.shape[0] < m:
        h = np.block([[h, h], [h, -h]])
    return h


def log_integral_gaussian(signs: np.ndarray, tau: float, sigma_b: float, margin: float) -> float:
    """log int N(b; 0, sigma_b^2) prod_i Phibar((margin - s_i b) / tau) db."""
    n_pos = int((signs > 0).sum())
    n_neg = len(signs) - n_pos
    # The integrand lives where the bias prior and the product overlap; cover both widely.
    centre = margin if n_neg == 0 else (-margin if n_pos == 0 else 0.0)
    lo = min(-40 * sigma_b, centre - 40 * tau)
    hi = max(40 * sigma_b, centre + 40 * tau)
    b = np.linspace(lo, hi, GRID)
    log_f = (-0.5 * (b / sigma_b) ** 2 - math.log(sigma_b * math.sqrt(2 * math.pi))
             + n_pos * special.log_ndtr((b - margin) / tau) + n_neg * special.log_ndtr((-b - margin) / tau))
    # Trapezoid rule in log space: the end points carry weight 1/2.
    log_w = np.zeros(GRID)
    log_w[[0, -1]] = math.log(0.5)
    return float(special.logsumexp(log_f + log_w) + math.log(b[1] - b[0]))


def hadamard_case(m: int, target: np.ndarray, sigma_w: float = 1.0, sigma_b: float = 1.0,
                  fan_in_scaling: bool = True, margin: float = 0.0) -> Case:
    """Perceptron on the m orthogonal rows of hadamard(m), Gaussian prior, exact log P."""
    target = np.asarray(target, dtype=bool)
    if target.shape != (m,):
        raise ValueError(f"target: one label per input, {m} in all; got shape {target.shape}")
    arch = MLP([m, 1])
    prior = Prior("gaussian", sigma_w, sigma_b, fan_in_scaling)
    std_w = sigma_w / math.sqrt(m) if fan_in_scaling else sigma_w
    tau = std_w * math.sqrt(m)  # |x_i| = sqrt(m)
    signs = np.where(target, 1.0, -1.0)
    x = torch.from_numpy(hadamard(m).astype(np.float32))
    log_p = log_integral_gaussian(signs, tau, sigma_b, margin)
    return Case(f"hadamard{m}(pos={int(target.sum())}, sb={sigma_b:g}, margin={margin:g})", arch, prior, x,
                target, margin, log_p)


def irwin_hall_partial(c: Fraction, n: int, a: Fraction) -> Fraction:
    """int_0^c P(S < t) dt for S the sum of n independent U(0, a), exactly."""
    total = Fraction(0)
    for k in range(n + 1):
        gap = c - k * a
        if gap > 0:
            total += (-1) ** k * math.comb(n, k) * gap ** (n + 1)
    return total / (math.factorial(n + 1) * a**n)


def uniform_constant_case(n: int, sigma_w: float = 1.0, sigma_b: float = 1.0, fan_in_scaling: bool = True,
                          margin: float = 0.0) -> Case:
    """Perceptron on the cube {-1, +1}^n, uniform prior, target constant true, exact log P.
    P = (1 / 2 a_b) int_{-a_b}^{a_b} P(S < b - margin) db = G(a_b - margin) / (2 a_b)."""
    arch = MLP([n, 1])
    prior = Prior("uniform", sigma_w, sigma_b, fan_in_scaling)
    std = prior.std(arch)
    a_w, a_b = Fraction(float(std[0] * math.sqrt(3))), Fraction(float(std[-1] * math.sqrt(3)))
    value = irwin_hall_partial(a_b - Fraction(margin), n, a_w) / (2 * a_b)
    if value <= 0:
        raise ValueError(f"margin: {margin} leaves no room: the event is empty (P = 0 exactly)")
    log_p = math.log(value.numerator) - math.log(value.denominator)
    bits = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float32)
    return Case(f"uniform_constant{n}(sb={sigma_b:g}, margin={margin:g})", arch, prior,
                torch.from_numpy(2 * bits - 1), np.ones(2**n, dtype=bool), margin, log_p)


XOR_X = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
XOR = np.array([False, True, True, False])
# log P(a 2-2-1 ReLU net, standard prior, computes XOR): measure_xor_factor(10**8, seed=12345)
# gave 95% interval [-7.455, -7.439] (5.84e-4); standard error 0.0041.
XOR_FACTOR_LOG_P, XOR_FACTOR_SE = -7.447, 0.0041


@dataclass
class ScoredCase:
    """A non-convex class given by its score, with its exact log P (and the standard error
    that a measured factor carries into it; 0 when exact)."""

    name: str
    arch: Architecture
    prior: Prior
    score: Score
    log_p: float
    log_p_se: float


def measure_xor_factor(n_samples: int, seed: int) -> Estimate:
    """Plain Monte Carlo of one copy's log p (the stored constant's source)."""
    arch = MLP([2, 2, 1])
    return monte_carlo_score(target_margin_score(arch, XOR_X, XOR), arch, Prior(), n_samples, seed,
                             stream=XOR_CASE_STREAM, batch=1 << 18, progress=False)


def xor_copies_case(k: int) -> ScoredCase:
    """k copies of 2-2-1 side by side; class: every copy computes XOR. log P = k log p."""
    arch = Composite([MLP([2, 2, 1]) for _ in range(k)])
    return ScoredCase(f"xor_copies{k}", arch, Prior(), xor_first_copies_score(arch, k), k * XOR_FACTOR_LOG_P,
                      k * XOR_FACTOR_SE)


def xor_first_copies_score(arch: Composite, j: int) -> Score:
    """Positive iff the first j copies of an xor_copies_case architecture compute XOR: the
    condition D of the conditional cases, P(all k | first j) = p^(k - j) exactly."""
    return min_score(*[target_margin_score(arch, XOR_X, XOR, output=i) for i in range(j)])


def hadamard_union_case(m: int, targets: list[np.ndarray], sigma_b: float = 1.0, margin: float = 0.0) -> ScoredCase:
    """The union of the perceptron classes of several distinct targets on hadamard(m)
    (score: the max of their margin scores). Two targets differ on some input, where no
    network is on both sides by more than margin >= 0, so the pieces are disjoint (up to
    measure zero) and log P = log sum_t P(t), each exact (`hadamard_case`). The pieces
    are separate cones of unequal mass: a run that fills only one of them misses the rest."""
    cases = [hadamard_case(m, t, sigma_b=sigma_b, margin=margin) for t in targets]
    if len({c.target.tobytes() for c in cases}) < len(cases):
        raise ValueError("targets: must be distinct, or the pieces overlap")
    arch, prior = cases[0].arch, cases[0].prior
    score = max_score(*[target_margin_score(arch, c.x, c.target, margin=margin) for c in cases])
    log_p = float(special.logsumexp([c.log_p for c in cases]))
    return ScoredCase(f"hadamard{m}_union{len(cases)}(sb={sigma_b:g}, margin={margin:g})", arch, prior, score,
                      log_p, 0.0)
