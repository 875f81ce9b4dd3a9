"""Experiment `mode_connectivity`: are two trained networks joined by a low-loss straight
path once the permutation symmetry of their hidden units is removed, and how does that
depend on width? (Seed text 001; Frankle et al. 2020, Entezari et al. 2021, Ainsworth et al.
2022.)

For each width in experiment.widths (hidden layers [width] * depth, ReLU), 2 * n_pairs
independent runs (own init, own data order) train on the experiment.n_train inputs as in
path_dependence; the runs that fit are paired in order (runs 0 and 1 of the fitted ones, 2
and 3, ...). For each pair (A, B), along theta(t) = theta_A + t (theta_B - theta_A) on
n_points values of t in [0, 1], before and after permuting B's hidden units to match A
(weight matching, volume/alignment.py):
- loss barrier: max_t [L(t) - ((1 - t) L(0) + t L(1))], L the trainer's loss (mse on +-1
  targets or logistic) averaged over the training inputs (the convention of Frankle et al.
  2020 and Entezari et al. 2021; >= 0, since t = 0 is on the grid);
- error barrier: the same for the training error rate (the ends fit, so it is the worst
  error on the path);
- held-out change: the fraction of interior t where the thresholded outputs on the
  held-out inputs differ from both ends' functions.
Per width: mean barriers with 95% percentile-bootstrap intervals over pairs (experiment.n_boot
resamples), and the fraction of pairs whose loss barrier is at most experiment.tolerance
times the loss scale (the loss of the zero output: 1 for mse, log 2 for logistic), with
Clopper-Pearson intervals. Writes widths.csv, pairs.csv, curves.csv (mean loss along t) and
mode_connectivity.png.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from volume import results
from volume.alignment import identity_perms, matching_objective, permute, weight_matching
from volume.errors import ConfigError
from volume.estimators.monte_carlo import monte_carlo_estimate
from volume.nets import Architecture
from volume.setup import Setup, positive_int
from volume.trained import Split, common_checks, sweep_widths, train_population, width_architecture
from volume.training.losses import point_losses

PATH_ELEMENTS = 1 << 22  # hidden activations per forward chunk along the paths (float64: 32 MB)
LOSS_SCALE = {"mse": 1.0, "ce": math.log(2.0)}  # the loss of the zero output


def path_curves(arch: Architecture, theta_a: torch.Tensor, theta_b: torch.Tensor, x: torch.Tensor,
                labels: np.ndarray, loss: str, ts: np.ndarray, test_x: torch.Tensor | None = None) -> dict:
    """Along theta_A + t (theta_B - theta_A) for each pair and each t (float64): training loss
    and error rate ([B, T], means over x), and the thresholded outputs on test_x ([B, T, N])."""
    a, delta = theta_a.double(), theta_b.double() - theta_a.double()
    inputs = (x if test_x is None else torch.cat([x, test_x])).double()
    label = torch.as_tensor(np.asarray(labels, dtype=bool))
    sign, n_train, t = label.double() * 2 - 1, len(x), torch.as_tensor(ts, dtype=torch.float64)
    step = max(1, PATH_ELEMENTS // (len(ts) * len(inputs) * max(arch.widths[1:])))
    parts = {"loss": [], "error": [], "bits": []}
    for first in range(0, max(len(a), 1), step):  # one (empty) chunk when there are no pairs
        theta = a[first : first + step, None] + t[None, :, None] * delta[first : first + step, None]
        out = arch.forward(theta.reshape(-1, a.shape[1]), inputs)[..., 0].reshape(len(theta), len(ts), len(inputs))
        parts["loss"].append(point_losses(out[..., :n_train], sign, loss).mean(-1))
        parts["error"].append(((out[..., :n_train] > 0) != label).double().mean(-1))
        parts["bits"].append(out[..., n_train:] > 0)
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


def barrier(curve: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """max_t [curve(t) - (curve(0) + t (curve(1) - curve(0)))] per row of curve[B, T]
    (ts runs from 0 to 1; written so that a constant curve gives exactly 0)."""
    chord = curve[:, :1] + ts[None, :] * (curve[:, -1:] - curve[:, :1])
    return (curve - chord).max(1)


def held_out_change(bits: np.ndarray) -> np.ndarray:
    """Fraction of interior path points whose held-out function differs from both ends'."""
    differs = (bits != bits[:, :1]).any(-1) & (bits != bits[:, -1:]).any(-1)
    return differs[:, 1:-1].mean(1)


def pair_measures(arch: Architecture, theta_a: torch.Tensor, theta_b: torch.Tensor, task, split: Split, loss: str,
                  ts: np.ndarray, seeds: Sequence, max_passes: int) -> dict[str, np.ndarray]:
    """Every per-pair number, before and after aligning B to A, plus the loss curves."""
    perms, passes = weight_matching(arch, theta_a, theta_b, seeds, max_passes)
    aligned = permute(arch, theta_b, perms)
    out = {"passes": passes, "units_moved": np.concatenate([p != np.arange(p.shape[1]) for p in perms], 1).mean(1)}
    for when, other, p in (("before", theta_b, identity_perms(arch, len(theta_b))), ("after", aligned, perms)):
        curves = path_curves(arch, theta_a, other, split.x(task), split.labels(task), loss, ts,
                             task.x[torch.from_numpy(split.test)])
        out |= {f"objective_{when}": matching_objective(arch, theta_a, theta_b, p),
                f"distance_{when}": (theta_a.double() - other.double()).norm(dim=1).numpy(),
                f"barrier_{when}": barrier(curves["loss"], ts),
                f"error_barrier_{when}": barrier(curves["error"], ts),
                f"held_out_change_{when}": held_out_change(curves["bits"]), f"curve_{when}": curves["loss"]}
    return out


def validate(setup: Setup) -> tuple:
    """Every check of this experiment's keys, run before hydra writes anything; returns
    (trainer, split, widths) for `run`."""
    cfg, exp = setup.cfg, setup.cfg.experiment
    trainer, split = common_checks(setup)
    if cfg.model.name != "mlp" or cfg.model.get("activation") != "relu":
        raise ConfigError(f"model: mode_connectivity aligns the hidden units of a relu mlp (name mlp, activation "
                          f"relu; other activations have symmetries beyond permutations), got name "
                          f"{cfg.model.name!r}, activation {cfg.model.get('activation')!r}")
    widths = sweep_widths(cfg)
    for key in ("experiment.n_pairs", "experiment.n_boot", "experiment.max_passes"):
        positive_int(cfg, key)
    positive_int(cfg, "experiment.n_points", minimum=3)  # points on the path, ends included
    tol = exp.get("tolerance")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 0 < tol < math.inf:
        raise ConfigError(f"experiment.tolerance: a positive number (fraction of the loss scale), got {tol!r}")
    return trainer, split, widths


def run(setup: Setup, run_dir: Path, stages: results.Stages) -> dict:
    cfg, task, exp = setup.cfg, setup.task, setup.cfg.experiment
    trainer, split, widths = validate(setup)
    ids = np.arange(2 * exp.n_pairs)
    ts = np.linspace(0.0, 1.0, exp.n_points)
    rows, pairs, curves = [], [], []
    for width in widths:
        arch = width_architecture(cfg, width, task.n_vars)
        runs = train_population(arch, setup.prior, trainer, task, split, cfg.seed, ids, ids, stages, f"w{width}_runs",
                       cfg.progress, extra=lambda out: {"theta": out.theta.numpy()}, extra_fields=("theta",))
        fit = np.flatnonzero(runs["fitted"])
        a_ids, b_ids = fit[0 : len(fit) // 2 * 2 : 2], fit[1 : len(fit) // 2 * 2 : 2]
        name = f"w{width}_pairs"
        measures = stages.get(name)
        if not stages.done(name):
            theta = torch.from_numpy(runs["theta"])
            seeds = [np.random.SeedSequence([cfg.seed, width, int(a)]) for a in a_ids]
            measures = pair_measures(arch, theta[a_ids], theta[b_ids], task, split, trainer.loss, ts, seeds,
                                     exp.max_passes)
            stages.put(name, measures, complete=True)
        frame = pd.DataFrame({"width": width, "pair": np.arange(len(a_ids)), "run_a": a_ids, "run_b": b_ids,
                              "steps_a": runs["steps"][a_ids], "steps_b": runs["steps"][b_ids],
                              "loss_a": runs["loss"][a_ids], "loss_b": runs["loss"][b_ids],
                              **{k: v for k, v in measures.items() if not k.startswith(("curve", "_"))}})
        pairs.append(frame)
        rows.append(width_row(width, arch.n_params, runs, frame, exp, trainer.loss, cfg.seed))
        for when in ("before", "after"):
            if len(a_ids):
                curves.append(pd.DataFrame({"width": width, "alignment": when, "t": ts,
                                            "mean_loss": measures[f"curve_{when}"].mean(0)}))
    table = pd.DataFrame(rows)
    results.write_csv(run_dir / "widths.csv", table)
    results.write_csv(run_dir / "pairs.csv", pd.concat(pairs, ignore_index=True))
    curve_table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["width", "t"])
    results.write_csv(run_dir / "curves.csv", curve_table)
    threshold = exp.tolerance * LOSS_SCALE[trainer.loss]
    figure = plot(table, curve_table, threshold, run_dir, f"depth {exp.depth}, {trainer.optimizer} lr={trainer.lr} "
                  f"batch={trainer.batch_size}, loss {trainer.loss}, {2 * exp.n_pairs} runs/width")
    summary = {"widths": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                          for r in rows],
               "n_train": len(split.train), "train_inputs": split.train.tolist(), "t": ts.tolist(),
               "threshold": threshold, "figures": [figure]}
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "summary": summary,
                                                   "versions": results.versions()})
    return summary


def mean_interval(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean and its 95% percentile-bootstrap interval (NaN when there are no values)."""
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def width_row(width: int, n_params: int, runs: dict, frame: pd.DataFrame, exp, loss: str, seed: int) -> dict:
    row = {"width": width, "n_params": n_params, "n_runs": len(runs["steps"]), "n_fitted": int(runs["fitted"].sum()),
           "n_pairs": len(frame), "median_steps": float(np.median(runs["steps"])),
           "mean_end_loss": float(frame[["loss_a", "loss_b"]].to_numpy().mean()) if len(frame) else math.nan}
    rng = np.random.default_rng([seed, width])
    threshold = exp.tolerance * LOSS_SCALE[loss]
    for when in ("before", "after"):
        for measure in ("barrier", "error_barrier", "held_out_change"):
            value, low, high = mean_interval(frame[f"{measure}_{when}"].to_numpy(), exp.n_boot, rng)
            row |= {f"{measure}_{when}": value, f"{measure}_{when}_low": low, f"{measure}_{when}_high": high}
        hits = int((frame[f"barrier_{when}"] <= threshold).sum())
        est = monte_carlo_estimate(hits, len(frame)) if len(frame) else None
        row |= {f"connected_{when}": hits / len(frame) if len(frame) else math.nan,
                f"connected_{when}_low": math.exp(est.ci[0]) if est else math.nan,
                f"connected_{when}_high": math.exp(est.ci[1]) if est else math.nan}
    row["mean_units_moved"] = float(frame["units_moved"].mean()) if len(frame) else math.nan
    return row


def plot(table: pd.DataFrame, curves: pd.DataFrame, threshold: float, run_dir: Path, title: str) -> str:
    fig, axes = results.new_figure(1, 3, figsize=(14, 4))
    for when, label in (("before", "as trained"), ("after", "after weight matching")):
        for ax, measure in ((axes[0], "barrier"), (axes[1], "connected")):
            value = table[f"{measure}_{when}"].astype(float)
            err = np.vstack([value - table[f"{measure}_{when}_low"], table[f"{measure}_{when}_high"] - value])
            ax.errorbar(table["width"], value, yerr=err.astype(float), marker="o", ms=3, capsize=2, label=label)
    axes[0].set_ylabel("loss barrier on the straight path (mean over pairs)")
    axes[1].set_ylabel(f"fraction of pairs with loss barrier <= {threshold:.3g}")
    for ax in axes[:2]:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width")
        ax.legend(fontsize=7)
    if len(curves):
        for width in sorted({curves["width"].min(), curves["width"].max()}):
            for when, style in (("before", "-"), ("after", "--")):
                part = curves[(curves["width"] == width) & (curves["alignment"] == when)]
                axes[2].plot(part["t"], part["mean_loss"], style, label=f"width {width}, {when} alignment")
        axes[2].legend(fontsize=7)
    axes[2].set_xlabel("t (0 = network A, 1 = network B)")
    axes[2].set_ylabel("mean training loss along the path")
    fig.suptitle(title, fontsize=8)
    return results.finish_figure(fig, run_dir / "mode_connectivity.png")


def describe(summary: dict) -> str:
    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3g}"

    parts = [f"width {r['width']} ({r['n_pairs']} pairs): barrier {fmt(r['barrier_before'])} -> "
             f"{fmt(r['barrier_after'])}, connected {fmt(r['connected_before'])} -> {fmt(r['connected_after'])}"
             for r in summary["widths"]]
    return "Mode connectivity (loss barrier as trained -> after weight matching): " + "; ".join(parts) + "."
