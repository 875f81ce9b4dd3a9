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
    return {**result.estimate.to_dict(), "run_log_p": result.run_log_p.tolist(),
            "reached": result.reached.tolist(), "seconds": seconds, **extra}


def to_result(record: dict) -> SplittingResult:
    """The parts of a SplittingResult that `combine` and the sums need, from a record."""
    ci = tuple(-math.inf if c is None else c for c in record["ci"])
    est = Estimate(record["log_p"], ci, record["n_evals"], record["method"], record["bound"])
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
                "bound": "target_not_reached"}
    est = combine(to_result(record), to_result(given))
    return {"class": name, "log_p": est.log_p, "ci_low": est.ci[0], "ci_high": est.ci[1], **joint,
            "n_evals": est.n_evals, "method": est.method, "bound": est.bound or ""}


def _run_draws(record: dict, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws of a record's log P: mean + standard error x Student t (a bound, or a
    single distinct run value, stays fixed)."""
    runs = np.array(record["run_log_p"])
    if record["bound"] is not None or runs.std() == 0:
        return np.full(DRAWS, record["log_p"])
    se = runs.std(ddof=1) / math.sqrt(len(runs))
    return runs.mean() + se * rng.standard_t(len(runs) - 1, DRAWS)


def log_sum(terms: list[tuple[dict, float]], given: dict, seed: int, sampled: tuple[np.ndarray, float] | None = None
            ) -> dict:
    """log of sum_c w_c P(C_c | target), with a 95% bootstrap interval.

    terms: (joint record, weight w_c) per class. With `sampled` = (draws, total) the classes
    come from `draws` (class index of each of k uniform draws of a member) and the weights
    are total * count / k: the bootstrap then also resamples the draws (sampling error).
    If any term is only an upper bound, so is the sum (bound = 'upper'). The sum is the
    expected number of members carried, so it may exceed 1 (log > 0)."""
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
    with np.errstate(divide="ignore"):
        boot = logsumexp(cond + np.log(w_draws), axis=0)
        point = logsumexp(np.array([rec["log_p"] - given["log_p"] for rec, _ in terms]) + np.log(weights))
    low, high = np.quantile(boot[np.isfinite(boot)], [0.025, 0.975])
    bound = "upper" if any(rec["bound"] is not None for rec, _ in terms) else None
    n_evals = sum(rec["n_evals"] for rec, _ in terms) + given["n_evals"]
    return {"log_p": float(point), "ci": [None if bound else float(low), float(max(high, point))],
            "n_evals": n_evals, "bound": bound}


def write_classes(run_dir: Path, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    results.write_csv(run_dir / "classes.csv", frame)
    return frame
