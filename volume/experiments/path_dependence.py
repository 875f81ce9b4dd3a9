"""Experiment `path_dependence`: does the path of gradient descent matter less as width grows?

Claim under test (seed text 002): path dependence vanishes for large networks, which then
approximate Bayesian learning. For each width in experiment.widths (hidden layers
[width] * depth), with minibatch training on experiment.n_train inputs:
- collision: the probability that two independent runs (own init, own data order) end at
  the same function on the held-out inputs; unbiased U-statistic over all pairs of runs
  that fit S (plug-in entropies are badly biased with this many possible functions);
- same-init collision: the same for runs sharing their initialisation but not their data
  order (experiment.n_inits groups of experiment.runs_per_init runs);
- the posterior's collision sum_f P_B(f | S)^2 (what a Bayesian sampler would give), and the
  total-variation distance between P_SGD and P_B renormalised on the functions both put
  mass on, with a parametric-bootstrap interval.
Writes widths.csv (one row per width), records.csv (every run) and path_dependence.png.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from volume import results
from volume.errors import ConfigError
from volume.estimate import Estimate
from volume.estimators.monte_carlo import monte_carlo_estimate
from volume.functions import FunctionTable, unique_counts
from volume.setup import Setup, positive_int
from volume.trained import (aligned_counts, common_checks, held_out_keys, prior_posterior, records_frame,
                            sweep_widths, table_of, train_population, width_architecture)

Z95 = 1.959963984540054


def collision(counts: np.ndarray) -> Estimate:
    """Probability that two independent draws coincide, sum_f p_f^2, from the counts of n
    draws: the U-statistic sum c(c-1) / (n(n-1)) (unbiased) with Hoeffding's variance
    2/(n(n-1)) [2(n-2) zeta1 + zeta2], zeta1 = sum p^3 - (sum p^2)^2, zeta2 = u(1 - u), and a
    normal 95% interval. No coinciding pair: the exact upper bound from n // 2 disjoint pairs."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    if n < 2:
        raise ValueError(f"a collision probability needs at least two draws, got {n:g}")
    pairs = float((counts * (counts - 1)).sum())
    if pairs == 0:
        bound = monte_carlo_estimate(0, int(n // 2))
        return Estimate(bound.log_p, bound.ci, int(n), "u_statistic", bound="upper")
    u = pairs / (n * (n - 1))
    cubes = float((counts * (counts - 1) * (counts - 2)).sum()) / (n * (n - 1) * (n - 2)) if n > 2 else u * u
    var = 2.0 / (n * (n - 1)) * (2 * (n - 2) * max(cubes - u * u, 0.0) + u * (1 - u))
    return _normal_estimate(u, math.sqrt(var), int(n), "u_statistic")


def _normal_estimate(value: float, se: float, n: int, method: str) -> Estimate:
    low, high = value - Z95 * se, min(1.0, value + Z95 * se)
    return Estimate(math.log(value), (math.log(low) if low > 0 else -math.inf, math.log(high)), n, method)


def grouped_collision(group: np.ndarray, keys: np.ndarray) -> Estimate:
    """Probability that two runs of one group (same init) coincide, averaged over groups:
    the mean of the groups' U-statistics, with a normal interval across groups."""
    per_group = []
    for g in np.unique(group):
        _, counts = unique_counts(keys[group == g])
        n = counts.sum()
        if n >= 2:
            per_group.append(float((counts * (counts - 1)).sum()) / (n * (n - 1)))
    if len(per_group) < 2:
        raise ValueError("need at least two groups with two runs each")
    values = np.array(per_group)
    if values.sum() == 0:
        disjoint = sum(int(c) // 2 for c in np.bincount(group))
        bound = monte_carlo_estimate(0, disjoint)
        return Estimate(bound.log_p, bound.ci, len(keys), "grouped_u_statistic", bound="upper")
    return _normal_estimate(values.mean(), values.std(ddof=1) / math.sqrt(len(values)), len(keys),
                            "grouped_u_statistic")


def shared_tv(sgd: FunctionTable, post: FunctionTable, n_boot: int, seed: int) -> dict:
    """Total variation between P_SGD and P_B, each renormalised on the functions both found,
    with a parametric-bootstrap 95% interval (both count vectors redrawn from multinomials)."""
    _, c_sgd, c_post = aligned_counts(sgd, post)
    a = c_sgd.astype(float), c_post.astype(float)

    def tv(c_sgd: np.ndarray, c_post: np.ndarray) -> float:
        shared = (c_sgd > 0) & (c_post > 0)
        if not shared.any():
            return math.nan
        p, q = c_sgd[..., shared], c_post[..., shared]
        return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())

    shared = (a[0] > 0) & (a[1] > 0)
    out = {"n_shared": int(shared.sum()), "mass_sgd": float(a[0][shared].sum() / max(a[0].sum(), 1)),
           "mass_prior": float(a[1][shared].sum() / max(a[1].sum(), 1)), "tv": tv(*a), "ci": [None, None]}
    if shared.any():
        rng = np.random.default_rng(seed)
        boot = [tv(rng.multinomial(int(a[0].sum()), a[0] / a[0].sum()).astype(float),
                   rng.multinomial(int(a[1].sum()), a[1] / a[1].sum()).astype(float)) for _ in range(n_boot)]
        boot = np.array([b for b in boot if not math.isnan(b)])
        if len(boot):
            out["ci"] = [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]
    return out


def validate(setup: Setup) -> tuple:
    """Every check of this experiment's keys, run before hydra writes anything; returns
    (trainer, split, widths) for `run`."""
    cfg = setup.cfg
    trainer, split = common_checks(setup)
    if cfg.model.name != "mlp":
        raise ConfigError(f"model.name: path_dependence varies the width of an mlp; got {cfg.model.name!r}")
    if not 1 <= trainer.batch_size < len(split.train):
        raise ConfigError(f"trainer.batch_size: path_dependence needs minibatches (data order matters only then): "
                          f"an integer in 1..{len(split.train) - 1}, got {trainer.batch_size}")
    widths = sweep_widths(cfg)
    for key in ("experiment.n_inits", "experiment.runs_per_init", "experiment.n_prior", "experiment.n_boot"):
        positive_int(cfg, key)
    if cfg.experiment.n_inits < 2 or cfg.experiment.runs_per_init < 2 or cfg.n_samples < 2:
        raise ConfigError("experiment.n_inits, experiment.runs_per_init and n_samples: each must be >= 2")
    return trainer, split, widths


def run(setup: Setup, run_dir: Path, stages: results.Stages) -> dict:
    cfg, task, exp = setup.cfg, setup.task, setup.cfg.experiment
    trainer, split, widths = validate(setup)
    ids = np.arange(cfg.n_samples)
    same_init = np.repeat(np.arange(exp.n_inits), exp.runs_per_init)
    same_order = cfg.n_samples + np.arange(len(same_init))  # orders unused by the independent runs
    rows, records = [], []
    for width in widths:
        arch = width_architecture(cfg, width, task.n_vars)
        indep = train_population(arch, setup.prior, trainer, task, split, cfg.seed, ids, ids, stages, f"w{width}_runs",
                        cfg.progress)
        same = train_population(arch, setup.prior, trainer, task, split, cfg.seed, same_init, same_order, stages,
                       f"w{width}_same", cfg.progress)
        post, n_consistent = prior_posterior(arch, setup.prior, task, split, cfg.seed, exp.n_prior, cfg.batch_size,
                                             stages, f"w{width}_prior", cfg.progress)
        fit = indep["fitted"]
        test_keys = held_out_keys(indep["keys"][fit], task.n_inputs, split)
        row = {"width": width, "n_params": arch.n_params, "n_runs": len(ids), "n_fitted": int(fit.sum()),
               "median_steps": float(np.median(indep["steps"])), "n_prior": exp.n_prior,
               "n_consistent": n_consistent}
        estimates = {"collision": collision(unique_counts(test_keys)[1]) if fit.sum() >= 2 else None}
        fit_same = same["fitted"]
        groups_ok = (np.bincount(same_init[fit_same], minlength=exp.n_inits) >= 2).sum() >= 2
        estimates["collision_same_init"] = grouped_collision(
            same_init[fit_same], held_out_keys(same["keys"][fit_same], task.n_inputs, split)) if groups_ok else None
        estimates["collision_posterior"] = collision(post.counts) if n_consistent >= 2 else None
        for name, est in estimates.items():
            row[name] = None if est is None else math.exp(est.log_p)
            row[f"{name}_low"] = None if est is None else math.exp(est.ci[0])
            row[f"{name}_high"] = None if est is None else math.exp(est.ci[1])
            row[f"{name}_bound"] = None if est is None else est.bound
        tv = shared_tv(table_of(indep["keys"][fit], task.n_inputs), post, exp.n_boot, cfg.seed)
        row.update({"tv_shared": tv["tv"], "tv_low": tv["ci"][0], "tv_high": tv["ci"][1],
                    "n_shared": tv["n_shared"], "shared_mass_sgd": tv["mass_sgd"],
                    "shared_mass_prior": tv["mass_prior"]})
        rows.append(row)
        for kind, runs, init, order in (("independent", indep, ids, ids), ("same_init", same, same_init, same_order)):
            frame = records_frame(runs, init, order, cfg.seed, task, split)
            records.append(frame.assign(width=width, kind=kind))
    table = pd.DataFrame(rows)
    results.write_csv(run_dir / "widths.csv", table)
    results.write_csv(run_dir / "records.csv", pd.concat(records, ignore_index=True))
    figure = plot(table, run_dir, f"depth {exp.depth}, {trainer.optimizer} lr={trainer.lr} batch={trainer.batch_size}, "
                                  f"{cfg.n_samples} runs/width")
    summary = {"widths": table.to_dict(orient="records"), "n_train": len(split.train),
               "train_inputs": split.train.tolist(), "figures": [figure]}
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "summary": summary,
                                                   "versions": results.versions()})
    return summary


def plot(table: pd.DataFrame, run_dir: Path, title: str) -> str:
    fig, axes = results.new_figure(1, 2, figsize=(10, 4))
    for name, label in (("collision", "independent runs"), ("collision_same_init", "same init, other order"),
                        ("collision_posterior", "posterior P_B (Bayes)")):
        part = table[table[name].notna()]
        value = part[name].astype(float)
        low = part[f"{name}_low"].astype(float).fillna(0.0)
        err = np.vstack([value - low.clip(lower=value * 1e-3), part[f"{name}_high"].astype(float) - value])
        axes[0].errorbar(part["width"], value, yerr=err, marker="o", ms=3, capsize=2, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("P(two runs agree on held-out inputs)")
    part = table[table["tv_shared"].notna()]
    err = np.vstack([part["tv_shared"] - part["tv_low"], part["tv_high"] - part["tv_shared"]]).astype(float)
    axes[1].errorbar(part["width"], part["tv_shared"], yerr=err, marker="o", ms=3, capsize=2)
    axes[1].set_ylabel("TV(P_SGD, P_B) on shared functions")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=8)
    return results.finish_figure(fig, run_dir / "path_dependence.png")


def describe(summary: dict) -> str:
    parts = []
    for row in summary["widths"]:
        coll = "n/a" if row["collision"] is None else f"{row['collision']:.3g}"
        same = "n/a" if row["collision_same_init"] is None else f"{row['collision_same_init']:.3g}"
        post = "n/a" if row["collision_posterior"] is None else f"{row['collision_posterior']:.3g}"
        tv = "n/a" if row["tv_shared"] is None or math.isnan(row["tv_shared"]) else f"{row['tv_shared']:.3f}"
        parts.append(f"width {row['width']}: agree {coll} (same init {same}, posterior {post}), TV {tv}")
    return "Path dependence vs width (held-out agreement of two runs): " + "; ".join(parts) + "."
