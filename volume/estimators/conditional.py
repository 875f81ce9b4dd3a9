"""Conditional volume: log P(C | D) = log P(C and D) - log P(D), each by rare-event splitting.

C and D are classes with continuous scores; C and D together get min(s_C, s_D), so any
scored class can be measured however small. The two estimates come from independent
runs (different streams), so the interval combines their run-to-run spreads (Welch).

The restricted population (prior samples inside D, with run and ancestor ids) is returned
for looking inside. Its fraction in C is a cross-check only: MCMC inside a set made of
disconnected pieces can keep the fractions it started with, so that fraction can be far
off even when each piece is sampled well. The ratio of the two splitting estimates does
not have this problem, since every level starts from the connected prior.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from volume.estimate import Estimate
from volume.estimators.monte_carlo import LEVEL
from volume.estimators.rare_event import SplittingResult, splitting
from volume.estimators.scores import Score, min_score
from volume.nets import Architecture
from volume.priors import Prior

DISCONNECTED_WARNING = (
    "fractions inside an MCMC population are a cross-check, not an estimate: chains restricted to a set made "
    "of disconnected pieces keep (roughly) the fractions they entered with; use the conditional estimate")


@dataclass
class Population:
    """Samples of the prior restricted to a class. run_ids: the independent run of each
    sample; ancestors: the initial chain (within its run) it descends from; few distinct
    ancestors mean few independent lineages."""

    theta: torch.Tensor  # [M, P]
    run_ids: np.ndarray  # [M]
    ancestors: np.ndarray  # [M]


@dataclass
class ConditionalResult:
    estimate: Estimate  # log P(C | D)
    joint: Estimate  # log P(C and D)
    given: Estimate  # log P(D)
    population: Population | None  # prior restricted to D
    fraction_in_class: float | None  # share of that population in C: a cross-check only


def welch_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Difference of means of two independent samples with a Welch-Satterthwaite t interval."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, (diff, diff)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + LEVEL / 2, df) * se
    return diff, (diff - half, diff + half)


def combine(joint: SplittingResult, given: SplittingResult) -> Estimate:
    """log P(C | D) from the two splitting results (independent runs)."""
    n_evals = joint.estimate.n_evals + given.estimate.n_evals
    if given.estimate.bound is not None:
        raise ValueError(f"the condition D was never reached ({given.estimate}); P(C | D) is undefined here. "
                         "Check D's score, or give the estimator more budget")
    if joint.estimate.bound == "upper":
        # P(C and D) <= its bound and P(D) >= exp(lower end), so the ratio is bounded above.
        upper = min(0.0, joint.estimate.log_p - given.estimate.ci[0])
        return Estimate(upper, (-math.inf, upper), n_evals, "conditional(rare_event), C and D not reached",
                        bound="upper", reliable=joint.estimate.reliable and given.estimate.reliable)
    log_p, (low, high) = welch_difference(joint.run_log_p, given.run_log_p)
    return Estimate(min(log_p, 0.0), (low, min(high, 0.0)), n_evals, "conditional(rare_event)",
                    reliable=joint.estimate.reliable and given.estimate.reliable)


def conditional(score_c: Score, score_d: Score, arch: Architecture, prior: Prior, *, seed: int = 0,
                population: bool = True, **kwargs) -> ConditionalResult:
    """log P(C | D) under the prior, where C = {score_c > 0} and D = {score_d > 0}.
    Keyword arguments go to `volume.estimators.rare_event.splitting` (both runs)."""
    kwargs.pop("stream", None)
    joint = splitting(min_score(score_c, score_d), arch, prior, seed=seed, stream=1, **kwargs)
    given = splitting(score_d, arch, prior, seed=seed, stream=2, final_population=population, **kwargs)
    estimate = combine(joint, given)
    pop, fraction = None, None
    if given.theta is not None:
        pop = Population(given.theta, given.run_ids, given.ancestors)
        fraction = class_fraction(score_c, pop)
    return ConditionalResult(estimate, joint.estimate, given.estimate, pop, fraction)


def class_fraction(score: Score, population: Population) -> float:
    """Share of a restricted population inside {score > 0}; warns that it is a cross-check."""
    warnings.warn(DISCONNECTED_WARNING, stacklevel=2)
    with torch.inference_mode():
        return float((score(population.theta) > 0).to(torch.float64).mean())
