"""Monte Carlo: counts over N prior samples, exact Clopper-Pearson intervals in log space."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from volume.estimate import Estimate

LEVEL = 0.95


def clopper_pearson_log(counts: np.ndarray, n: int, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Natural-log exact binomial interval for each count out of n. A zero count has lower
    end -inf; n == count has upper end 0."""
    counts = np.asarray(counts, dtype=np.float64)
    alpha = 1.0 - level
    with np.errstate(divide="ignore"):
        low = np.where(counts > 0, np.log(stats.beta.ppf(alpha / 2, np.maximum(counts, 1), n - counts + 1)), -np.inf)
        # log1p(-q) with q from the complementary quantile keeps precision near p = 1.
        upper_q = stats.beta.isf(alpha / 2, counts + 1, np.maximum(n - counts, 1))
        high = np.where(counts < n, np.log(upper_q), 0.0)
    return low, high


def log_frequencies(counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log p-hat, ci_low, ci_high) for every count; counts must be positive. The intervals
    are computed once per distinct count (the default run's 230k functions have 79)."""
    counts = np.asarray(counts, dtype=np.float64)
    distinct, inverse = np.unique(counts, return_inverse=True)
    low, high = clopper_pearson_log(distinct, n)
    return np.log(counts) - math.log(n), low[inverse.ravel()], high[inverse.ravel()]


def monte_carlo_estimate(hits: int, n: int, level: float = LEVEL) -> Estimate:
    """Estimate of P from `hits` of `n` independent prior samples. Zero hits: the one-sided
    exact upper bound 1 - (1 - level)^(1/n), reported as bound='upper', never log 0."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= hits <= n:
        raise ValueError(f"hits must lie in 0..n, got {hits} of {n}")
    if hits == 0:
        upper = math.log(-math.expm1(math.log1p(-level) / n))
        return Estimate(upper, (-math.inf, upper), n, "monte_carlo", bound="upper")
    low, high = clopper_pearson_log(np.array([hits]), n, level)
    return Estimate(math.log(hits / n), (float(low[0]), float(high[0])), n, "monte_carlo")
