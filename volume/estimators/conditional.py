"""Conditional volume: log P(C | D) by rare-event splitting, two ways.

- "continued" (default): split on D's score, then continue each run from its samples of the
  prior restricted to D, with levels on C's score and every move kept inside D. log P(C | D)
  is then measured directly, and the joint log P(C and D) is the paired sum per run.
- "independent": log P(C and D) - log P(D) from two independent splitting runs (C and D
  together get min(s_C, s_D)), with a Welch interval over both sets of runs.
Both measured on exact cases in docs/estimators.md, "Conditional volume".

The restricted population (prior samples inside D, with run and ancestor ids) is returned
for looking inside. Its fraction in C is a cross-check only: MCMC inside a set made of
disconnected pieces can keep the fractions it started with, so that fraction can be far
off even when each piece is sampled well. "continued" leans on that population too: where
D is made of pieces that a run on D filled in the wrong proportions, its first levels
inherit them (its runs stay independent, so a run on D trapped in one piece shows as
spread between runs, which the interval and the spread check see). "independent" does not
lean on it: each of its runs starts from the connected prior.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import stats

from volume.estimate import Estimate
from volume.estimators.monte_carlo import LEVEL
from volume.estimators.rare_event import SplittingResult, splitting, t_interval
from volume.estimators.scores import Score, min_score
from volume.nets import Architecture
from volume.priors import Prior
from volume.rng import CONDITIONAL_STREAMS

CONDITIONAL_METHODS = ("continued", "independent")
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


def _require_given(given: Estimate) -> None:
    if given.bound is not None:
        raise ValueError(f"the condition D was never reached ({given}); P(C | D) is undefined here. "
                         "Check D's score, or give the estimator more budget")


def combine(joint: SplittingResult, given: SplittingResult) -> Estimate:
    """log P(C | D) from the two splitting results (independent runs)."""
    n_evals = joint.estimate.n_evals + given.estimate.n_evals
    _require_given(given.estimate)
    if joint.estimate.bound == "upper":
        # P(C and D) <= its bound and P(D) >= exp(lower end), so the ratio is bounded above.
        upper = min(0.0, joint.estimate.log_p - given.estimate.ci[0])
        return Estimate(upper, (-math.inf, upper), n_evals, "conditional(rare_event), C and D not reached",
                        bound="upper", reliable=joint.estimate.reliable and given.estimate.reliable)
    log_p, (low, high) = welch_difference(joint.run_log_p, given.run_log_p)
    return Estimate(min(log_p, 0.0), (low, min(high, 0.0)), n_evals, "conditional(rare_event)",
                    reliable=joint.estimate.reliable and given.estimate.reliable)


def continued(given: SplittingResult, inside: SplittingResult) -> tuple[Estimate, Estimate]:
    """log P(C | D) and log P(C and D) from a run on D and its continuation inside D (run r
    of `inside` starts from run r of `given`, so the joint's runs are the paired sums)."""
    estimate = replace(inside.estimate, method=inside.estimate.method.replace("rare_event(", "conditional(continued "))
    if estimate.bound is not None:
        upper = estimate.log_p + given.estimate.ci[1]  # P(C and D) <= P(C | D) bound x P(D)'s upper end
        return estimate, replace(estimate, log_p=upper, ci=(-math.inf, upper))
    runs = given.run_log_p + inside.run_log_p
    ideal = given.diagnostics["ideal_sd"] ** 2 + inside.diagnostics["ideal_sd"] ** 2
    log_p, ci = t_interval(runs, ideal)
    return estimate, replace(estimate, log_p=log_p, ci=ci, reliable=estimate.reliable and given.estimate.reliable)


def conditional(score_c: Score, score_d: Score, arch: Architecture, prior: Prior, *, seed: int = 0,
                population: bool = True, method: str = "continued", **kwargs) -> ConditionalResult:
    """log P(C | D) under the prior, where C = {score_c > 0} and D = {score_d > 0}.
    method "continued": split on D, then continue splitting on C's score from D's final
    population with every move kept inside D; "independent": log P(C and D) - log P(D)
    from two independent runs (Welch interval). Measured in docs/estimators.md, "Conditional volume".
    Keyword arguments go to `volume.estimators.rare_event.splitting` (every run)."""
    if method not in CONDITIONAL_METHODS:
        raise ValueError(f"method: one of {list(CONDITIONAL_METHODS)}, got {method!r}")
    kwargs.pop("stream", None)
    given = splitting(score_d, arch, prior, seed=seed, stream=CONDITIONAL_STREAMS["given"],
                      final_population=population or method == "continued", **kwargs)
    if method == "continued":
        _require_given(given.estimate)
        inside = splitting(score_c, arch, prior, seed=seed, stream=CONDITIONAL_STREAMS["inside"], start=given,
                           within=score_d, **kwargs)
        estimate, joint = continued(given, inside)
    else:
        joint_run = splitting(min_score(score_c, score_d), arch, prior, seed=seed,
                              stream=CONDITIONAL_STREAMS["joint"], **kwargs)
        estimate, joint = combine(joint_run, given), joint_run.estimate
    pop, fraction = None, None
    if population and given.theta is not None:
        pop = Population(given.theta, given.run_ids, given.ancestors)
        fraction = class_fraction(score_c, pop)
    return ConditionalResult(estimate, joint, given.estimate, pop, fraction)


def class_fraction(score: Score, population: Population) -> float:
    """Share of a restricted population inside {score > 0}; warns that it is a cross-check."""
    warnings.warn(DISCONNECTED_WARNING, stacklevel=2)
    with torch.inference_mode():
        return float((score(population.theta) > 0).to(torch.float64).mean())
