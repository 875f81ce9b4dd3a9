"""Shared by the counting experiments (llamaizer, depth): conditional class volumes.

Each class C is measured as log P(C | target) = log P(C and target) - log P(target): one
rare-event splitting run per class on a joint score (positive iff both hold) and one for
the target, each on its own random stream. A checkpoint is written after every finished
estimate, so resume=true skips finished classes and gives the same numbers as an
uninterrupted run. Sums over classes and union brackets: `volume.estimators.sums`; plots and
classes.csv: `volume.plots`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from volume import results
from volume.errors import ConfigError
from volume.estimate import Estimate
from volume.estimators.conditional import combine
from volume.estimators.rare_event import SplittingResult, splitting
from volume.estimators.scores import Score
from volume.experiments import rare_event as rare_event_experiment
from volume.setup import Setup

GIVEN = "target"  # name of the condition's estimate (P(target)) among the records


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


def run_jobs(setup: Setup, stages: results.Stages, jobs: list[Job], options: dict) -> dict[str, dict]:
    """Run every job whose stage is not complete in the checkpoint; checkpoint after each
    (stage job.name holds its record as JSON). name -> record, in job order."""
    records: dict[str, dict] = {}
    cfg = setup.cfg
    for k, job in enumerate(jobs):
        if stages.done(job.name):
            records[job.name] = json.loads(str(stages.get(job.name)["record"]))
            continue
        if cfg.progress:
            print(f"[{k + 1}/{len(jobs)}] {job.name}", flush=True)
        start = time.perf_counter()
        result = splitting(job.score, setup.arch, setup.prior, seed=cfg.seed, stream=job.stream,
                           final_population=job.inspect is not None, progress=cfg.progress, **options)
        extra = job.inspect(result) if job.inspect is not None and result.theta is not None else {}
        records[job.name] = _record(result, time.perf_counter() - start, extra)
        stages.put(job.name, {"record": np.array(json.dumps(records[job.name]))}, complete=True)
    return records


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
