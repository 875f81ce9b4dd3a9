"""Shared by the counting experiments (llamaizer, depth): conditional class volumes.

Each class C is measured as log P(C | target) = log P(C and target) - log P(target): one
rare-event splitting run per class on a joint score (positive iff both hold) and one for
the target, each on its own random stream. A checkpoint is written after every finished
estimate, so resume=true skips finished classes and gives the same numbers as an
uninterrupted run. Sums over classes (unions up to overlaps) get intervals by a parametric
bootstrap over the independent runs behind each term.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from volume import results
from volume.errors import ConfigError
from volume.estimate import Estimate
from volume.estimators.conditional import combine
from volume.estimators.rare_event import SplittingResult, splitting
from volume.estimators.scores import Score
from volume.experiments import rare_event as rare_event_experiment
from volume.setup import Setup

GIVEN = "target"  # name of the condition's estimate (P(target)) among the records
DRAWS = 4000  # bootstrap draws for sums over classes
UNRELIABLE_LABEL = "unreliable (runs disagree or never arrived)"


@dataclass
class Job:
    """One estimate: log P(score > 0). `inspect` looks at the final population inside the
    class (prior restricted to it, MCMC samples) and returns extra JSON-safe numbers."""

    name: str
    score: Score
    stream: int
    inspect: Callable | None = None
    info: dict = field(default_factory=dict)


def estimator_options(setup: Setup) -> dict:
    """Validated splitting options from the estimator group (which must be rare_event)."""
    if setup.cfg.estimator.get("name") != "rare_event":
        raise ConfigError(f"estimator: experiment {setup.cfg.experiment.name} measures classes far below sampling "
                          f"reach and needs estimator=rare_event, got {setup.cfg.estimator.get('name')!r}")
    return rare_event_experiment.estimator_options(setup)


def _record(result: SplittingResult, seconds: float, extra: dict) -> dict:
    diagnostics = {k: v for k, v in result.diagnostics.items() if k != "reliable"}
    return {**result.estimate.to_dict(), "diagnostics": diagnostics, "run_log_p": result.run_log_p.tolist(),
            "reached": result.reached.tolist(), "seconds": seconds, **extra}


def to_result(record: dict) -> SplittingResult:
    """The parts of a SplittingResult that `combine` and the sums need, from a record."""
    ci = tuple(-math.inf if c is None else c for c in record["ci"])
    est = Estimate(record["log_p"], ci, record["n_evals"], record["method"], record["bound"],
                   record.get("reliable", True))
    return SplittingResult(est, np.array(record["run_log_p"]), np.array(record["reached"], bool))


def run_jobs(setup: Setup, run_dir: Path, state: dict | None, jobs: list[Job], options: dict) -> dict[str, dict]:
    """Run every job not already in the checkpoint; checkpoint after each. name -> record."""
    done: dict[str, dict] = json.loads(str(state["records"])) if state is not None and "records" in state else {}
    cfg = setup.cfg
    for k, job in enumerate(jobs):
        if job.name in done:
            continue
        if cfg.progress:
            print(f"[{k + 1}/{len(jobs)}] {job.name}", flush=True)
        start = time.perf_counter()
        result = splitting(job.score, setup.arch, setup.prior, seed=cfg.seed, stream=job.stream,
                           final_population=job.inspect is not None, progress=cfg.progress, **options)
        extra = job.inspect(result) if job.inspect is not None and result.theta is not None else {}
        done[job.name] = _record(result, time.perf_counter() - start, extra)
        results.write_checkpoint(run_dir, setup.config, {"records": np.array(json.dumps(done))})
    return done


def conditional_row(name: str, record: dict, given: dict) -> dict:
    """One classes.csv row: log P(class | target) with its interval, and the joint. When the
    target itself was never reached the conditional is undefined: NaN (empty in the CSV), and said so."""
    joint = {"log_p_joint": record["log_p"], "joint_ci_low": record["ci"][0], "joint_ci_high": record["ci"][1],
             "seconds": record["seconds"]}
    if given["bound"] is not None:
        return {"class": name, "log_p": math.nan, "ci_low": math.nan, "ci_high": math.nan, **joint,
                "n_evals": record["n_evals"] + given["n_evals"], "method": record["method"],
                "bound": "target_not_reached", "reliable": False}
    est = combine(to_result(record), to_result(given))
    return {"class": name, "log_p": est.log_p, "ci_low": est.ci[0], "ci_high": est.ci[1], **joint,
            "n_evals": est.n_evals, "method": est.method, "bound": est.bound or "", "reliable": est.reliable}


def _run_draws(record: dict, rng: np.random.Generator) -> np.ndarray:
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
    joint = np.stack([_run_draws(rec, rng) for rec, _ in terms])  # [C, DRAWS]
    cond = joint - _run_draws(given, rng)[None, :]
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


def estimate_columns(ests: list[dict | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[bool]]:
    """(log_p, ci_low, ci_high, bound, reliable) for plot_estimates from Estimate-like dicts
    (log_p, ci, bound, reliable); None values and missing dicts become NaN (not drawn). A
    bound is drawn at its conservative end (an upper bound at its interval's top, a lower
    one at its bottom)."""
    ests = [e or {"log_p": None, "ci": [None, None], "bound": None} for e in ests]
    table = np.array([[math.nan if v is None else v for v in (e["log_p"], *e["ci"])] for e in ests], float)
    table = table.reshape(-1, 3)
    for row, e in zip(table, ests):
        end = {"upper": 2, "lower": 1}.get(e["bound"])
        if end is not None and np.isfinite(row[end]):
            row[0] = row[end]
    return table[:, 0], table[:, 1], table[:, 2], [e["bound"] or "" for e in ests], [e.get("reliable", True) for e in ests]


def as_bits(log_p, ci_low, ci_high, bound) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Constraint bits -log2 P with their interval, and what each point is: an upper bound on
    P is a lower bound on the bits."""
    bits = lambda v: -np.asarray(v, float) / math.log(2)  # noqa: E731
    flip = {"upper": "lower", "lower": "upper"}
    return bits(log_p), bits(ci_high), bits(ci_low), [flip.get(b, "") if isinstance(b, str) else "" for b in bound]


def plot_estimates(ax, x, y, low, high, bound, reliable=None, color=None, marker: str = "o",
                   label: str | None = None, line: bool = True, ms: float = 5) -> None:
    """Draw points that may be estimates or bounds, never one like the other: estimates as
    filled markers with their intervals (joined by a line when `line`); bounds ('upper' /
    'lower': the plotted value is at most / at least y) as open markers with an arrow
    pointing where the value may lie, no interval, never joined. Points whose diagnostics
    failed (`reliable` False) get a red ring. NaN points are skipped."""
    x, y, low, high = (np.asarray(v, float) for v in (x, y, low, high))
    if reliable is not None:
        doubtful = ~np.asarray(reliable, bool) & np.isfinite(y)
        if doubtful.any():
            ax.plot(x[doubtful], y[doubtful], "o", ls="none", mfc="none", mec="red", ms=ms + 7, mew=1.2,
                    label=UNRELIABLE_LABEL if UNRELIABLE_LABEL not in ax.get_legend_handles_labels()[1] else None)
    bound = np.array([b if b in ("upper", "lower") else "" for b in bound])
    est = (bound == "") & np.isfinite(y)
    if est.any():
        err = np.nan_to_num(np.array([y[est] - low[est], high[est] - y[est]]), nan=0.0, posinf=0.0, neginf=0.0)
        bars = ax.errorbar(x[est], y[est], yerr=np.clip(err, 0, None), fmt=marker + ("-" if line else ""),
                           color=color, ms=ms, capsize=2, label=label)
        color, label = bars.lines[0].get_color(), None
    for kind, direction in (("upper", -1), ("lower", 1)):
        sel = (bound == kind) & np.isfinite(y)
        if not sel.any():
            continue
        dots = ax.plot(x[sel], y[sel], marker, ls="none", color=color, mfc="none", ms=ms + 2,
                       label=None if label is None else f"{label} ({kind} bounds)")
        color, label = dots[0].get_color(), None
        for xi, yi in zip(x[sel], y[sel]):
            ax.annotate("", (xi, yi), xytext=(0, 18 * direction), textcoords="offset points",
                        arrowprops={"arrowstyle": "<-", "color": color, "lw": 1})


def write_classes(run_dir: Path, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    results.write_csv(run_dir / "classes.csv", frame)
    return frame


def read_classes(run_dir: Path) -> pd.DataFrame:
    """A run's classes.csv as written: `h` stays text (hex keys) and `bound` is "", "upper",
    ... (an empty cell would otherwise read as NaN)."""
    frame = pd.read_csv(run_dir / "classes.csv", dtype={"h": str, "bound": str})
    frame["bound"] = frame["bound"].fillna("")
    return frame
