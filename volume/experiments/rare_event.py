"""Experiment `rare_event`: log P of one target function (with an optional margin), far
below sampling reach, by subset simulation (estimator=rare_event) or plain sampling
(estimator=monte_carlo, for cross-checks). Writes results.json with
`estimate: {log_p, ci, n_evals, method, bound}` and levels.png (each run's path of
log P(score > level) against the level, up to the class at level 0).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from volume import results
from volume.errors import ConfigError
from volume.estimators.rare_event import check_options, monte_carlo_score, splitting
from volume.estimators.scores import target_margin_score
from volume.setup import Setup

ESTIMATORS = ("rare_event", "monte_carlo")
OPTIONS = ("n_particles", "n_runs", "keep", "n_moves", "moves", "max_levels", "max_evals")


def estimator_options(setup: Setup) -> dict:
    """Validated estimator options (ConfigError names the key), before any work."""
    est = setup.cfg.estimator
    if est.get("name") not in ESTIMATORS:
        raise ConfigError(f"estimator: {est.get('name')!r} does not run in experiment rare_event; "
                          f"allowed: {list(ESTIMATORS)} (basin and conditional are Python APIs)")
    if setup.task.target is None:
        raise ConfigError("task.target: experiment rare_event needs a target function (a named target or a hex key)")
    margin = setup.cfg.experiment.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < math.inf:
        raise ConfigError(f"experiment.margin: a finite number >= 0, got {margin!r}")
    if est.name == "monte_carlo":
        return {}
    options = {key: est.get(key) for key in OPTIONS}
    try:
        check_options(**options)
    except ValueError as err:
        raise ConfigError(f"estimator.{err}") from err
    return options


def plot_levels(result, run_dir: Path, title: str) -> str:
    fig, ax = results.new_figure()
    for r, (levels, trace) in enumerate(zip(result.levels, result.log_p_levels)):
        ax.plot(levels, trace / math.log(10), ".-", ms=3, lw=0.8, label=f"run {r}" if r < 8 else None)
    ax.axvline(0.0, color="k", lw=0.5)
    return results.finish_figure(fig, run_dir / "levels.png", ax, "level of the score (class: score > 0)",
                                 "log10 P(score > level)", title, legend_size=6)


def validate(setup: Setup) -> None:
    """Every check of this experiment's keys, run before hydra writes anything."""
    estimator_options(setup)


def run(setup: Setup, run_dir: Path, stages: results.Stages) -> dict:
    options = estimator_options(setup)  # one estimate, no checkpoint: stages stay unused
    cfg = setup.cfg
    score = target_margin_score(setup.arch, setup.task.x, setup.task.target,
                                margin=float(cfg.experiment.get("margin", 0.0)))
    start = time.perf_counter()
    figures, extra = [], {}
    if cfg.estimator.name == "monte_carlo":
        estimate = monte_carlo_score(score, setup.arch, setup.prior, cfg.n_samples, cfg.seed,
                                     batch=cfg.batch_size, progress=cfg.progress)
    else:
        result = splitting(score, setup.arch, setup.prior, seed=cfg.seed, progress=cfg.progress, **options)
        estimate = result.estimate
        extra = {"run_log_p": result.run_log_p.tolist(), "reached": result.reached.tolist(),
                 "n_levels": [len(v) for v in result.levels], "mean_acceptance": result.acceptance}
        title = f"{setup.arch.describe()}, {cfg.prior.name} prior, target {cfg.task.get('target')}"
        figures.append(plot_levels(result, run_dir, title))
    seconds = time.perf_counter() - start
    summary = {"estimate": estimate.to_dict(), "log10_p": estimate.log10_p, "seconds": seconds,
               "evals_per_second": estimate.n_evals / max(seconds, 1e-9), "threads": torch.get_num_threads(),
               "figures": figures, **extra}
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "estimate": estimate.to_dict(),
                                                   "summary": summary, "versions": results.versions()})
    return summary


def describe(summary: dict) -> str:
    est = summary["estimate"]
    low, high = (c if c is not None else -math.inf for c in est["ci"])
    kind = f" ({est['bound']} bound)" if est.get("bound") else ""
    return (f"log P = {est['log_p']:.3f}{kind}, 95% CI [{low:.3f}, {high:.3f}] "
            f"(log10 P = {summary['log10_p']:.2f}) from {est['n_evals']:,} network evaluations in "
            f"{summary['seconds']:.1f} s by {est['method']}.")
