"""Experiment `sgd_vs_prior`: does training find f about as often as the prior holds it?

Following Mingard et al. (arXiv 2006.15191): n_samples networks are trained from their own
initialisation and data order on experiment.n_train inputs of the cube, labelled by
task.target; P_SGD(f | S) is the fraction of the runs that fit S which end at f (on all
inputs). P_B(f | S) = P(f) / P(S) is counted from experiment.n_prior prior samples: the
fraction of those consistent with S that compute f. Writes functions.csv (every function
either side found), records.csv (one row per run), the two count tables, a scatter of
log P_SGD vs log P_B with intervals and the diagonal, and the summary numbers.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from volume import results
from volume.errors import ConfigError
from volume.estimators.monte_carlo import monte_carlo_estimate
from volume.functions import FunctionTable, keys_to_hex
from volume.setup import Setup

from volume.experiments._trained import (Stages, aligned_counts, common_checks, finished_summary, frequencies,
                                         prior_posterior, records_frame, table_of, trained)

TABLE, PRIOR_TABLE = "functions.npz", "prior_functions.npz"


def joint_frame(sgd: FunctionTable, post: FunctionTable) -> pd.DataFrame:
    """functions.csv: every function found by training or by the prior's posterior, most
    frequent under training first. log_p/ci are P_SGD(f | S); *_prior are P_B(f | S)."""
    union, count, count_prior = aligned_counts(sgd, post)
    log_p, ci_low, ci_high = frequencies(count, sgd.total)
    log_b, b_low, b_high = frequencies(count_prior, post.total)
    frame = pd.DataFrame({"function": keys_to_hex(union, sgd.n_inputs), "count": count, "log_p": log_p,
                          "ci_low": ci_low, "ci_high": ci_high, "count_prior": count_prior,
                          "log_p_prior": log_b, "ci_low_prior": b_low, "ci_high_prior": b_high})
    return frame.sort_values(["count", "count_prior"], ascending=False, kind="stable").reset_index(drop=True)


def top_mass(frame: pd.DataFrame, n_sgd: int, ks: list[int]) -> dict:
    """P_SGD's mass on the prior posterior's top-k functions, with exact intervals."""
    by_prior = frame.sort_values("count_prior", ascending=False, kind="stable")
    out = {}
    for k in ks:
        top = by_prior.head(k)
        top = top[top["count_prior"] > 0]
        est = monte_carlo_estimate(int(top["count"].sum()), n_sgd)
        prior_share = float(top["count_prior"].sum() / max(frame["count_prior"].sum(), 1))
        out[str(k)] = {"p_sgd": math.exp(est.log_p), "ci": [math.exp(c) for c in est.ci],
                       "p_prior": prior_share}
    return out


def rare_event_prior(frame: pd.DataFrame, setup: Setup, p_s, top: int, below: int, options: dict,
                     stages: Stages) -> pd.DataFrame:
    """log P_B(f | S) = log P(f) - log P(S) by subset simulation (volume.estimators) for the
    `top` functions training finds most often whose prior count is below `below`; the
    interval combines both ends conservatively (P(f) low minus P(S) high, and vice versa).
    prior_rare_bound is 'upper' where the estimator could only bound P(f) from above."""
    from volume.estimators.rare_event import rare_event
    from volume.estimators.scores import target_margin_score
    from volume.tasks import key_to_bits

    frame = frame.assign(log_p_prior_rare=np.nan, ci_low_prior_rare=np.nan, ci_high_prior_rare=np.nan,
                         prior_rare_bound="")
    chosen = frame[(frame["count"] > 0) & (frame["count_prior"] < below)].head(top)
    for i, (row, key) in enumerate(zip(chosen.index, chosen["function"])):
        name = f"rare{i}"
        if not stages.done(name):
            score = target_margin_score(setup.arch, setup.task.x, key_to_bits(key, setup.task.n_inputs))
            est = rare_event(score, setup.arch, setup.prior, seed=setup.cfg.seed, stream=1000 + i,
                             progress=setup.cfg.progress, **options)
            stages.put(name, {"log_p": est.log_p, "ci": np.array(est.ci), "upper": est.bound == "upper"},
                       complete=True)
        got = stages.get(name)
        low, high = got["ci"]
        frame.loc[row, ["log_p_prior_rare", "ci_low_prior_rare", "ci_high_prior_rare"]] = [
            float(got["log_p"]) - p_s.log_p, low - p_s.ci[1], high - p_s.ci[0]]
        frame.loc[row, "prior_rare_bound"] = "upper" if bool(got["upper"]) else ""
    return frame


def plot(frame: pd.DataFrame, run_dir: Path, title: str) -> str:
    ln10 = math.log(10)
    fig, ax = results.new_figure(figsize=(5, 5))
    both = frame[(frame["count"] > 0) & (frame["count_prior"] > 0)]
    for part, style, label in ((both, "o", "found by both"),
                               (frame[(frame["count"] > 0) & (frame["count_prior"] == 0)], "<", "P_B: upper bound"),
                               (frame[(frame["count"] == 0) & (frame["count_prior"] > 0)], "v", "P_SGD: upper bound")):
        if len(part) == 0:
            continue
        x, y = part["log_p_prior"] / ln10, part["log_p"] / ln10
        xerr = np.vstack([x - np.maximum(part["ci_low_prior"] / ln10, x - 3), part["ci_high_prior"] / ln10 - x])
        yerr = np.vstack([y - np.maximum(part["ci_low"] / ln10, y - 3), part["ci_high"] / ln10 - y])
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=style, ms=3, lw=0.5, alpha=0.6, label=label)
    rare = frame[frame["log_p_prior_rare"].notna()] if "log_p_prior_rare" in frame else frame.iloc[:0]
    if len(rare):
        x, y = rare["log_p_prior_rare"] / ln10, rare["log_p"] / ln10
        low = np.maximum(rare["ci_low_prior_rare"] / ln10, x - 3)
        xerr = np.vstack([x - low, rare["ci_high_prior_rare"] / ln10 - x])
        yerr = np.vstack([y - rare["ci_low"] / ln10, rare["ci_high"] / ln10 - y])
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="s", ms=4, lw=0.8, color="C3", label="P_B by rare-event estimator")
    lows = [frame["log_p"].min(), frame["log_p_prior"].min()]
    if len(rare):
        lows.append(rare["log_p_prior_rare"].min())
    low = float(min(lows) / ln10) - 0.5
    ax.plot([low, 0], [low, 0], "k--", lw=1, label="P_SGD = P_B")
    return results.finish_figure(fig, run_dir / "sgd_vs_prior.png", ax, "log10 P_B(f | S)  (prior, counted)",
                                 "log10 P_SGD(f | S)  (training runs)", title, legend_size=7)


def run(setup: Setup, run_dir: Path, state: dict | None) -> dict:
    cfg, task, arch = setup.cfg, setup.task, setup.arch
    trainer, split = common_checks(setup)
    if (summary := finished_summary(run_dir, state)) is not None:
        return summary
    n_prior = cfg.experiment.get("n_prior")
    if not isinstance(n_prior, int) or isinstance(n_prior, bool) or n_prior < 1:
        raise ConfigError(f"experiment.n_prior: a positive integer (prior samples), got {n_prior!r}")
    rare_top, rare_below = cfg.experiment.get("rare_event_top", 0), cfg.experiment.get("rare_event_below", 10)
    for key, value in (("rare_event_top", rare_top), ("rare_event_below", rare_below)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"experiment.{key}: a non-negative integer, got {value!r}")
    rare_options = dict(cfg.experiment.get("rare_event_options") or {})
    allowed = {"n_particles", "n_runs", "keep", "n_moves", "max_levels", "max_evals"}
    if set(rare_options) - allowed:
        raise ConfigError(f"experiment.rare_event_options: unknown {sorted(set(rare_options) - allowed)}; "
                          f"allowed: {sorted(allowed)}")
    top_k = list(cfg.experiment.get("top_k", [1, 10, 100]))
    if not top_k or any(not isinstance(k, int) or k < 1 for k in top_k):
        raise ConfigError(f"experiment.top_k: a list of positive integers, got {top_k}")
    stages = Stages(run_dir, setup.config, state, cfg.checkpoint_seconds)
    ids = np.arange(cfg.n_samples)
    runs = trained(arch, setup.prior, trainer, task, split, cfg.seed, ids, ids, stages, "sgd", cfg.progress)
    post, n_consistent = prior_posterior(arch, setup.prior, task, split, cfg.seed, n_prior, cfg.batch_size,
                                         stages, "prior", cfg.progress)
    sgd = table_of(runs["keys"][runs["fitted"]], task.n_inputs)
    frame = joint_frame(sgd, post)
    p_s = monte_carlo_estimate(n_consistent, n_prior)
    if rare_top and n_consistent:
        frame = rare_event_prior(frame, setup, p_s, rare_top, rare_below, rare_options, stages)
    results.write_npz(run_dir / TABLE, sgd.state())
    results.write_npz(run_dir / PRIOR_TABLE, post.state())
    results.write_csv(run_dir / "functions.csv", frame)
    results.write_csv(run_dir / "records.csv", records_frame(runs, ids, ids, cfg.seed, task, split))
    both = frame[(frame["count"] > 0) & (frame["count_prior"] > 0)]
    title = (f"{arch.describe()}, {trainer.optimizer} lr={trainer.lr} batch={trainer.batch_size or 'full'}; "
             f"{sgd.total:,} fitted runs, {n_consistent:,} of {n_prior:,} prior samples fit S")
    figure = plot(frame, run_dir, title) if len(frame) else None
    summary = {
        "n_runs": int(cfg.n_samples), "n_fitted": int(sgd.total),
        "fraction_budget": float(1 - runs["fitted"].mean()),
        "median_steps": float(np.median(runs["steps"])), "max_steps_taken": int(runs["steps"].max()),
        "n_train": len(split.train), "train_inputs": split.train.tolist(),
        "n_prior": n_prior, "n_consistent": n_consistent, "log_p_train_set": p_s.to_dict(),
        "n_functions_sgd": len(sgd), "n_functions_prior": len(post), "n_functions_shared": len(both),
        "pearson_log": float(both["log_p"].corr(both["log_p_prior"])) if len(both) > 2 else None,
        "spearman_log": float(both["log_p"].corr(both["log_p_prior"], method="spearman")) if len(both) > 2 else None,
        "sgd_mass_on_prior_top": top_mass(frame, sgd.total, top_k) if sgd.total and n_consistent else None,
        "figures": [figure] if figure else [],
    }
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "summary": summary,
                                                   "versions": results.versions()})
    results.clear_checkpoint(run_dir)
    return summary


def describe(summary: dict) -> str:
    def num(v):
        return "n/a" if v is None else f"{v:.3f}"

    top = summary["sgd_mass_on_prior_top"] or {}
    masses = ", ".join(f"top {k}: {v['p_sgd']:.3f} (prior {v['p_prior']:.3f})" for k, v in top.items())
    return (f"Trained {summary['n_runs']:,} networks: {summary['n_fitted']:,} fit the {summary['n_train']} training "
            f"points (median {summary['median_steps']:.0f} steps), ending at {summary['n_functions_sgd']:,} distinct "
            f"functions. Of {summary['n_prior']:,} prior samples {summary['n_consistent']:,} fit them "
            f"({summary['n_functions_prior']:,} functions); {summary['n_functions_shared']:,} functions are shared. "
            f"Correlation of log P_SGD with log P_B on shared functions: Pearson {num(summary['pearson_log'])}, "
            f"Spearman {num(summary['spearman_log'])}. P_SGD's mass on the prior's top functions: {masses or 'n/a'}.")
