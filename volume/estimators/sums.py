"""Statistics over class estimates: sums over classes with bootstrap intervals, and brackets
on the probability of a union of classes.

The inputs are splitting records (dicts with `log_p`, `ci`, `n_evals`, `bound`, `reliable`,
`run_log_p`: the independent runs behind the estimate), as the counting experiments store them.

Sums: log sum_c w_c P(C_c | target) gets its interval by a parametric bootstrap over the
independent runs behind each term.

Union brackets (experiment llamaizer): for classes C_h (here: "some unit carries llama h") with N = number of classes a network is
in, P(union) = P(N >= 1) lies in [max_h P(C_h), min(1, sum_h P(C_h))]: the lower end
trivially, the upper by the union bound, since sum_h P(C_h) = E[N]; both ends are exact
bounds, each measured with its own 95% interval. The overlap they leave open is measured
as a cross-check: sum_h P(C_h) E[1/N | C_h] = E[sum_h 1{C_h} / N] = P(N >= 1) exactly, with
E[1/N | C_h] read from the MCMC samples inside C_h. That last step assumes the samples
follow the prior restricted to C_h and the target (chains can be trapped), so the
cross-check is reported next to the bracket, never as a bound.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

DRAWS = 4000  # bootstrap draws for sums over classes


def run_draws(record: dict, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws of a record's log P: mean + standard error x Student t (a bound, or a
    single distinct run value, stays fixed)."""
    runs = np.array(record["run_log_p"])
    if record["bound"] is not None or runs.std() == 0:
        return np.full(DRAWS, record["log_p"])
    se = runs.std(ddof=1) / math.sqrt(len(runs))
    return runs.mean() + se * rng.standard_t(len(runs) - 1, DRAWS)


def log_sum(terms: list[tuple[dict, float]], given: dict, seed: int, sampled: tuple[np.ndarray, float] | None = None,
            factors: np.ndarray | None = None) -> dict:
    """log of sum_c w_c P(C_c | target), with a 95% bootstrap interval.

    terms: (joint record, weight w_c) per class. With `sampled` = (draws, total) the classes
    come from `draws` (class index of each of k uniform draws of a member) and the weights
    are total * count / k: the bootstrap then also resamples the draws (sampling error).
    If any term is only an upper bound, so is the sum (bound = 'upper'). The sum is the
    expected number of members carried, so it may exceed 1 (log > 0). `factors` (one per
    class, > 0, taken as exact) multiply the weights: sum_c w_c f_c P(C_c | target)."""
    if not terms or given["bound"] is not None:
        return {"log_p": None, "ci": [None, None], "n_evals": 0,
                "bound": "target_not_reached" if terms else None}
    rng = np.random.default_rng(seed)
    joint = np.stack([run_draws(rec, rng) for rec, _ in terms])  # [C, DRAWS]
    cond = joint - run_draws(given, rng)[None, :]
    weights = np.array([w for _, w in terms], dtype=float)
    if sampled is None:
        w_draws = np.repeat(weights[:, None], DRAWS, 1)
    else:
        draws, total = sampled
        k = len(draws)
        counts = rng.multinomial(k, np.bincount(draws, minlength=len(terms)) / k, size=DRAWS).T  # [C, DRAWS]
        w_draws = total * counts / k
    if factors is not None:
        weights = weights * factors
        w_draws = w_draws * np.asarray(factors, float)[:, None]
    with np.errstate(divide="ignore"):
        boot = logsumexp(cond + np.log(w_draws), axis=0)
        point = logsumexp(np.array([rec["log_p"] - given["log_p"] for rec, _ in terms]) + np.log(weights))
    low, high = np.quantile(boot[np.isfinite(boot)], [0.025, 0.975])
    bound = "upper" if any(rec["bound"] is not None for rec, _ in terms) else None
    n_evals = sum(rec["n_evals"] for rec, _ in terms) + given["n_evals"]
    reliable = all(rec.get("reliable", True) for rec, _ in terms) and given.get("reliable", True)
    return {"log_p": float(point), "ci": [None if bound else float(low), float(max(high, point))],
            "n_evals": n_evals, "bound": bound, "reliable": reliable}


def harmonic_factors(records: dict, names: list[str], key: str = "mean_inv_distinct") -> np.ndarray:
    """E[1/N | class] per class from its MCMC population; 1 where there is none (a class not
    reached: its term is an upper bound, and E[1/N] <= 1 keeps it one)."""
    return np.array([records[name].get(key) or 1.0 for name in names], float)


def _cap(v: float | None) -> float | None:
    return None if v is None else min(v, 0.0)


def capped(est: dict) -> dict:
    """min(sum, 1): the sum's point and interval capped at log 1. When the sum is only an
    upper bound (a class not reached), its value is the upper end of its interval."""
    value = est["ci"][1] if est["bound"] and est["ci"][1] is not None else est["log_p"]
    return {"log_p": _cap(value), "ci": [_cap(c) for c in est["ci"]], "n_evals": est["n_evals"],
            "bound": est["bound"]}


def log_add(parts: list[dict], shared_evals: int = 0) -> dict:
    """Sum of independent log-sums: point = log sum of points; interval = ends added
    (conservative: both ends at once); an upper bound if any part is one. `shared_evals`
    (the target's evaluations, inside every part's count) is counted once."""
    def add(values):
        return None if any(v is None for v in values) else float(np.logaddexp.reduce(values))
    return {"log_p": add([p["log_p"] for p in parts]), "ci": [add([p["ci"][i] for p in parts]) for i in (0, 1)],
            "n_evals": sum(p["n_evals"] for p in parts) - shared_evals * (len(parts) - 1),
            "bound": "upper" if any(p["bound"] for p in parts) else None}


def bracket(low: dict | None, total: dict, cross: dict) -> dict:
    """{"low": best single class (or None), "high": min(sum, 1), "cross_check": capped at 1 too}."""
    return {"low": low, "high": capped(total), "cross_check": capped(cross)}


def union_rows(brackets: dict[str, dict], m: int) -> list[dict]:
    """classes.csv rows (kind 'union', bound 'interval'): log_p stays empty (the union is only
    bracketed); ci_low = the low end's lower 95% limit (-inf without a low end), ci_high =
    the high end's upper limit; union_low / union_high = the ends' points; cross_check with
    its interval."""
    out = []
    for name, b in brackets.items():
        if b["high"]["log_p"] is None:  # target not reached: nothing to bracket
            continue
        low, high, cross = b["low"], b["high"], b["cross_check"]
        out.append({"class": name, "log_p": math.nan, "ci_low": -math.inf if low is None else low["ci"][0],
                    "ci_high": high["ci"][1], "n_evals": high["n_evals"],
                    "method": "union: max_h P(h) <= P <= min(1, sum_h P(h))", "bound": "interval",
                    "kind": "union", "m": m, "union_low": None if low is None else low["log_p"],
                    "union_high": high["log_p"], "union_high_bound": high["bound"] or "",
                    "cross_check": cross["log_p"], "cross_check_ci_low": cross["ci"][0],
                    "cross_check_ci_high": cross["ci"][1]})
    return out
