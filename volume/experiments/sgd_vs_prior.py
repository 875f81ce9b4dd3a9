"""Experiment `sgd_vs_prior`: does training find f about as often as the prior holds it?

Following Mingard et al. (arXiv 2006.15191): n_samples networks are trained from their own
initialisation and data order on experiment.n_train inputs of the cube, labelled by
task.target; P_SGD(f | S) is the fraction of the runs that fit S which end at f (on all
inputs). P_B(f | S) = P(f) / P(S) is counted from experiment.n_prior prior samples: the
fraction of those consistent with S that compute f. Writes functions.csv (every function
either side found), records.csv (one row per run), the two count tables, a scatter of
log P_SGD vs log P_B with intervals and the diagonal, and the summary numbers.
With experiment.n_nngp > 0 (MLPs) it also counts P_NNGP(f | S) from that many samples of the
network's infinite-width Gaussian process (volume.nngp): columns *_nngp in functions.csv,
nngp_functions.npz, and two more panels (P_SGD vs P_NNGP, P_B vs P_NNGP).
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
from volume.nets import MLP
from volume.nngp import check_nngp, gp_keys, nngp_kernel, ordered_factor
from volume.rng import RARE_FUNCTION_STREAM
from volume.setup import Setup, positive_int
from volume.trained import (aligned_counts, common_checks, frequencies, prior_posterior, records_frame, table_of,
                            train_population)

TABLE, PRIOR_TABLE, NNGP_TABLE = "functions.npz", "prior_functions.npz", "nngp_functions.npz"


def nngp_size(setup: Setup) -> int:
    """experiment.n_nngp, checked (with the model and prior it needs) before any work."""
    n_nngp = setup.cfg.experiment.get("n_nngp", 0)
    if not isinstance(n_nngp, int) or isinstance(n_nngp, bool) or n_nngp < 0:
        raise ConfigError(f"experiment.n_nngp: a non-negative integer (Gaussian-process samples; 0 turns the "
                          f"NNGP off), got {n_nngp!r}")
    if n_nngp and not isinstance(setup.arch, MLP):
        raise ConfigError(f"experiment.n_nngp: the NNGP is implemented for model=mlp only; set 0 for "
                          f"model={setup.cfg.model.get('name')}")
    if n_nngp:
        try:
            check_nngp(setup.arch, setup.prior)
        except ConfigError as error:
            raise ConfigError(f"{error} (or set experiment.n_nngp=0)") from None
    return n_nngp


def nngp_posterior(setup: Setup, split, n_nngp: int, stages: results.Stages) -> tuple[FunctionTable, int, str]:
    """P_NNGP(f | S): counts of the functions of n_nngp samples of the NNGP that fit S (drawn
    conditionally: the held-out outputs only for samples that fit), and how the kernel was factored."""
    cfg, task = setup.cfg, setup.task
    factor, order, method = ordered_factor(nngp_kernel(setup.arch, setup.prior, task.x), split.train)
    labels = split.labels(task)
    table, n_consistent = prior_posterior(
        setup.arch, setup.prior, task, split, cfg.seed, n_nngp, cfg.batch_size, stages, "nngp", cfg.progress,
        draw=lambda batch: gp_keys(factor, order, cfg.seed, batch, n_nngp, labels))
    return table, n_consistent, method


def _correlations(frame: pd.DataFrame, a: str, b: str) -> dict:
    """Pearson and Spearman correlation of log P_a with log P_b on the functions both found."""
    both = frame[(frame[f"count{a}"] > 0) & (frame[f"count{b}"] > 0)]
    if len(both) <= 2:
        return {"n_shared": len(both), "pearson": None, "spearman": None}
    x, y = both[f"log_p{a}"], both[f"log_p{b}"]
    return {"n_shared": len(both), "pearson": float(x.corr(y)), "spearman": float(x.corr(y, method="spearman"))}


def nngp_summary(frame: pd.DataFrame, n_nngp: int, n_consistent: int, n_functions: int, method: str) -> dict:
    return {"n_nngp": n_nngp, "n_consistent_nngp": n_consistent, "n_functions_nngp": n_functions,
            "nngp_factor": method, "log_p_train_set_nngp": monte_carlo_estimate(n_consistent, n_nngp).to_dict(),
            "sgd_vs_nngp": _correlations(frame, "", "_nngp"), "prior_vs_nngp": _correlations(frame, "_prior", "_nngp")}


def joint_frame(sgd: FunctionTable, post: FunctionTable, gp: FunctionTable | None = None) -> pd.DataFrame:
    """functions.csv: every function found by training, the prior's posterior or (when given)
    the NNGP's posterior, most frequent under training first. log_p/ci are P_SGD(f | S);
    *_prior are P_B(f | S); *_nngp are P_NNGP(f | S)."""
    tables = {"": sgd, "_prior": post, **({"_nngp": gp} if gp is not None else {})}
    union, *counts = aligned_counts(*tables.values())
    frame = pd.DataFrame({"function": keys_to_hex(union, sgd.n_inputs)})
    for (suffix, table), count in zip(tables.items(), counts):
        log_p, low, high = frequencies(count, table.total)
        frame = frame.assign(**{f"count{suffix}": count, f"log_p{suffix}": log_p, f"ci_low{suffix}": low,
                                f"ci_high{suffix}": high})
    order = [f"count{suffix}" for suffix in tables]
    return frame.sort_values(order, ascending=False, kind="stable").reset_index(drop=True)


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
                     stages: results.Stages) -> pd.DataFrame:
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
            est = rare_event(score, setup.arch, setup.prior, seed=setup.cfg.seed, stream=RARE_FUNCTION_STREAM + i,
                             progress=setup.cfg.progress, **options)
            stages.put(name, {"log_p": est.log_p, "ci": np.array(est.ci), "upper": est.bound == "upper"},
                       complete=True)
        got = stages.get(name)
        low, high = got["ci"]
        frame.loc[row, ["log_p_prior_rare", "ci_low_prior_rare", "ci_high_prior_rare"]] = [
            float(got["log_p"]) - p_s.log_p, low - p_s.ci[1], high - p_s.ci[0]]
        frame.loc[row, "prior_rare_bound"] = "upper" if bool(got["upper"]) else ""
    return frame


NAMES = {"": "P_SGD", "_prior": "P_B", "_nngp": "P_NNGP"}
AXES = {"": "log10 P_SGD(f | S)  (training runs)", "_prior": "log10 P_B(f | S)  (prior, counted)",
        "_nngp": "log10 P_NNGP(f | S)  (Gaussian process, counted)"}


def _scatter(ax, frame: pd.DataFrame, x: str, y: str) -> float:
    """log P_y against log P_x per function, with intervals (a function one side never found
    shows at that side's upper bound); returns the lowest value drawn (log10)."""
    ln10, lows = math.log(10), [0.0]
    cx, cy = frame[f"count{x}"], frame[f"count{y}"]
    for part, style, label in ((frame[(cx > 0) & (cy > 0)], "o", "found by both"),
                               (frame[(cx == 0) & (cy > 0)], "<", f"{NAMES[x]}: upper bound"),
                               (frame[(cx > 0) & (cy == 0)], "v", f"{NAMES[y]}: upper bound")):
        if len(part) == 0:
            continue
        px, py = part[f"log_p{x}"] / ln10, part[f"log_p{y}"] / ln10
        xerr = np.vstack([px - np.maximum(part[f"ci_low{x}"] / ln10, px - 3), part[f"ci_high{x}"] / ln10 - px])
        yerr = np.vstack([py - np.maximum(part[f"ci_low{y}"] / ln10, py - 3), part[f"ci_high{y}"] / ln10 - py])
        ax.errorbar(px, py, xerr=xerr, yerr=yerr, fmt=style, ms=3, lw=0.5, alpha=0.6, label=label)
        lows += [px.min(), py.min()]
    return float(min(lows))


def _rare(ax, frame: pd.DataFrame) -> float:
    """The rare-event estimates of P_B on the P_SGD vs P_B panel; returns their lowest (log10)."""
    rare = frame[frame["log_p_prior_rare"].notna()] if "log_p_prior_rare" in frame else frame.iloc[:0]
    if len(rare) == 0:
        return 0.0
    ln10 = math.log(10)
    x, y = rare["log_p_prior_rare"] / ln10, rare["log_p"] / ln10
    low = np.maximum(rare["ci_low_prior_rare"] / ln10, x - 3)
    xerr = np.vstack([x - low, rare["ci_high_prior_rare"] / ln10 - x])
    yerr = np.vstack([y - rare["ci_low"] / ln10, rare["ci_high"] / ln10 - y])
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="s", ms=4, lw=0.8, color="C3", label="P_B by rare-event estimator")
    return float(x.min())


def plot(frame: pd.DataFrame, run_dir: Path, title: str) -> str:
    """P_SGD vs P_B; with the NNGP also P_SGD vs P_NNGP and P_B vs P_NNGP (how well the
    Gaussian process stands in for the counted prior), one panel each."""
    pairs = [("_prior", "")] + ([("_nngp", ""), ("_nngp", "_prior")] if "count_nngp" in frame else [])
    fig, axes = results.new_figure(1, len(pairs), figsize=(5 * len(pairs), 5))
    for ax, (x, y) in zip(np.atleast_1d(axes), pairs):
        low = min(_scatter(ax, frame, x, y), _rare(ax, frame) if (x, y) == ("_prior", "") else 0.0) - 0.5
        ax.plot([low, 0], [low, 0], "k--", lw=1, label=f"{NAMES[y]} = {NAMES[x]}")
        ax.set(xlabel=AXES[x], ylabel=AXES[y])
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=8)
    return results.finish_figure(fig, run_dir / "sgd_vs_prior.png")


def _options(setup: Setup) -> tuple[int, int, int, dict, list[int]]:
    """(n_prior, rare_event_top, rare_event_below, rare_event_options, top_k), each checked."""
    cfg = setup.cfg
    n_prior = positive_int(cfg, "experiment.n_prior")
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
    return n_prior, rare_top, rare_below, rare_options, top_k


def validate(setup: Setup) -> None:
    """Every check of this experiment's keys, run before hydra writes anything."""
    common_checks(setup)
    _options(setup)
    nngp_size(setup)


def run(setup: Setup, run_dir: Path, stages: results.Stages) -> dict:
    cfg, task, arch = setup.cfg, setup.task, setup.arch
    trainer, split = common_checks(setup)
    n_prior, rare_top, rare_below, rare_options, top_k = _options(setup)
    n_nngp = nngp_size(setup)
    ids = np.arange(cfg.n_samples)
    runs = train_population(arch, setup.prior, trainer, task, split, cfg.seed, ids, ids, stages, "sgd", cfg.progress)
    post, n_consistent = prior_posterior(arch, setup.prior, task, split, cfg.seed, n_prior, cfg.batch_size,
                                         stages, "prior", cfg.progress)
    gp, n_consistent_gp, method = nngp_posterior(setup, split, n_nngp, stages) if n_nngp else (None, 0, None)
    sgd = table_of(runs["keys"][runs["fitted"]], task.n_inputs)
    frame = joint_frame(sgd, post, gp)
    p_s = monte_carlo_estimate(n_consistent, n_prior)
    if rare_top and n_consistent:
        frame = rare_event_prior(frame, setup, p_s, rare_top, rare_below, rare_options, stages)
    results.write_npz(run_dir / TABLE, sgd.state())
    results.write_npz(run_dir / PRIOR_TABLE, post.state())
    if gp is not None:
        results.write_npz(run_dir / NNGP_TABLE, gp.state())
    results.write_csv(run_dir / "functions.csv", frame)
    results.write_csv(run_dir / "records.csv", records_frame(runs, ids, ids, cfg.seed, task, split))
    both = frame[(frame["count"] > 0) & (frame["count_prior"] > 0)]
    title = (f"{arch.describe()}, {trainer.optimizer} lr={trainer.lr} batch={trainer.batch_size or 'full'}; "
             f"{sgd.total:,} fitted runs, {n_consistent:,} of {n_prior:,} prior samples fit S"
             + (f", {n_consistent_gp:,} of {n_nngp:,} NNGP samples" if gp is not None else ""))
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
        **(nngp_summary(frame, n_nngp, n_consistent_gp, len(gp), method) if gp is not None else {"n_nngp": 0}),
    }
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "summary": summary,
                                                   "versions": results.versions()})
    return summary


def num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def describe(summary: dict) -> str:
    top = summary["sgd_mass_on_prior_top"] or {}
    masses = ", ".join(f"top {k}: {v['p_sgd']:.3f} (prior {v['p_prior']:.3f})" for k, v in top.items())
    return (f"Trained {summary['n_runs']:,} networks: {summary['n_fitted']:,} fit the {summary['n_train']} training "
            f"points (median {summary['median_steps']:.0f} steps), ending at {summary['n_functions_sgd']:,} distinct "
            f"functions. Of {summary['n_prior']:,} prior samples {summary['n_consistent']:,} fit them "
            f"({summary['n_functions_prior']:,} functions); {summary['n_functions_shared']:,} functions are shared. "
            f"Correlation of log P_SGD with log P_B on shared functions: Pearson {num(summary['pearson_log'])}, "
            f"Spearman {num(summary['spearman_log'])}. P_SGD's mass on the prior's top functions: {masses or 'n/a'}."
            + nngp_text(summary))


def nngp_text(summary: dict) -> str:
    if not summary.get("n_nngp"):
        return ""
    sgd, prior = summary["sgd_vs_nngp"], summary["prior_vs_nngp"]
    return (f" NNGP (the infinite-width Gaussian process): {summary['n_consistent_nngp']:,} of "
            f"{summary['n_nngp']:,} samples fit S ({summary['n_functions_nngp']:,} functions); Pearson of log P_NNGP "
            f"with log P_SGD {num(sgd['pearson'])} ({sgd['n_shared']:,} shared functions), with log P_B "
            f"{num(prior['pearson'])} ({prior['n_shared']:,} shared).")
