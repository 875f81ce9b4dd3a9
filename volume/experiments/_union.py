"""Bracketing P(union of classes | target) from per-class volumes (experiment llamaizer).

For classes C_h (here: "some unit carries llama h") with N = number of classes a network is
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


def rows(brackets: dict[str, dict], m: int) -> list[dict]:
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
