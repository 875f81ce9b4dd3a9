"""Experiment `depth`: do parallel circuits outweigh one serial circuit of the same size?

Residual MLP with L blocks, target = parity of the target bits (default 4). Classes of
circuits.depth, read from each block's Walsh spectrum with threshold tau (default 0.4, fixed
in the circuits issue before any volume was measured: > 1/3, the most one ReLU unit puts on
a pair, and < 1/2, so two parities can share a block; sweeps/fig_depth.py panel (d) shows
the result at tau = 0.3, 0.4, 0.5): serial (a chain
pair -> triple -> all in increasing blocks), parallel (two disjoint pairs, then all), single
(all in one block, no intermediate before it), mixed (serial and parallel), other. Per
class: log P(class | target) by rare-event splitting on min(target margin, class score)
(circuits.depth.class_scores: > 0 iff the network's Walsh reading is that class). Next to
the measurements: placement counts of one specific tree vs one specific chain, and of all
trees vs all chains (circuits.depth), the counting predictions of the ratio. Inside each
class (MCMC samples of the prior restricted to class and target, a cross-check only) the
path-length profile (circuits.interventions) and the share confirmed by block ablation.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits import depth as cdepth
from circuits.interventions import path_decomposition, path_length_profile
from circuits.units import power_fractions, walsh
from volume import plots, results
from volume.residual_scores import DepthScorer
from volume.errors import ConfigError
from volume.estimators.conditional import welch_difference
from volume.estimators.scores import ROWS, TINY, Score, target_margin_score, target_signs
from volume.experiments import _classes
from volume.nets import ResidualMLP
from volume.rng import CLASS_STREAM, PRIOR_STREAM
from volume.setup import Setup


def class_score(arch: ResidualMLP, task, T: int, tau: float, name: str) -> Score:
    """min(target margin / its scale, circuits.depth.class_scores[name]): one numba kernel
    (`volume.residual_scores`), equal to `torch_class_score`, which it replaced, to float32
    rounding."""
    return DepthScorer(arch, task, T, tau, name)


def torch_class_score(arch: ResidualMLP, task, T: int, tau: float, name: str) -> Score:
    """class_score through the batched torch forward (the reference the kernel is tested
    against); one forward pass gives both the block writes (for the Walsh reading) and the output."""
    signs, x = target_signs(task.target, task.n_inputs), task.x.to(torch.float32)

    def score(theta: torch.Tensor) -> torch.Tensor:
        out = torch.empty(theta.shape[0], dtype=torch.float64)
        with torch.inference_mode():
            for start in range(0, theta.shape[0], ROWS):
                th = theta[start : start + ROWS].to(torch.float32)
                writes, stream = arch.block_writes(th, x)
                y = arch.readout(th, stream)[..., 0]
                target = (y * signs).amin(1).double() / (y.abs().amax(1).double() + TINY)  # float32 extremes are exact
                frac = power_fractions(walsh(torch.stack(writes, 1), dim=2))
                cls = cdepth.class_scores(frac, T, tau)[name].to(torch.float64)
                out[start : start + ROWS] = torch.minimum(target, cls)
        return out

    return score


def _check(setup: Setup) -> tuple[float, list[str]]:
    cfg, arch = setup.cfg, setup.arch
    if not isinstance(arch, ResidualMLP) or arch.n_out != 1:
        raise ConfigError("model: experiment depth needs model=resmlp with n_out=1")
    if cfg.task.get("name") != "boolean" or cfg.task.get("target") != "parity" or setup.task.target is None:
        raise ConfigError("task: experiment depth needs task.name=boolean and task.target=parity")
    tau = cfg.experiment.get("tau")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau < 1:
        raise ConfigError(f"experiment.tau: a fraction in (0, 1), got {tau!r}")
    classes = list(cfg.experiment.get("classes") or [])
    bad = [c for c in classes if c not in cdepth.LABELS]
    if not classes or bad or len(set(classes)) != len(classes):
        raise ConfigError(f"experiment.classes: distinct names from {list(cdepth.LABELS)}, got {classes}")
    if bin(cdepth.target_set(setup.task)).count("1") != 4:
        raise ConfigError("task.target_vars: the serial/parallel placements are defined for 4-bit parity; "
                          f"got {cfg.task.get('target_vars')}")
    return float(tau), classes


def predictions(n_blocks: int, width: int) -> dict[str, dict[str, int]]:
    """Placement counts (circuits.depth): one specific chain/tree, and all of them."""
    return {"serial": {"placements_one": cdepth.chain_placement_formula(n_blocks, width),
                       "placements_all": cdepth.all_chains_formula(n_blocks, width)},
            "parallel": {"placements_one": cdepth.tree_placement_formula(n_blocks, width),
                         "placements_all": cdepth.all_trees_formula(n_blocks, width)}}


def _inspect(arch: ResidualMLP, task, tau: float):
    """Inside the class: mean path-length profile, and the share whose Walsh reading is
    confirmed by block ablation (circuits.depth.classify_depth)."""
    def inspect(result) -> dict:
        theta = result.theta.to(torch.float32)
        with torch.no_grad():
            profile = path_length_profile(path_decomposition(arch, theta, task.x.to(torch.float32)))
        r = cdepth.classify_depth(arch, theta, task, tau)
        return {"path_profile": profile.mean(0).tolist(), "frac_confirmed": float(r.confirmed.mean())}
    return inspect


def ratio(records: dict) -> dict | None:
    """log P(parallel | target) - log P(serial | target) = the difference of the joints
    (P(target) cancels), Welch interval over the independent runs; a bound when one side is."""
    if "parallel" not in records or "serial" not in records:
        return None
    par, ser = records["parallel"], records["serial"]
    reliable = par.get("reliable", True) and ser.get("reliable", True)
    if par["bound"] is None and ser["bound"] is None:
        value, (low, high) = welch_difference(np.array(par["run_log_p"]), np.array(ser["run_log_p"]))
        return {"log_p": value, "ci": [low, high], "bound": None, "reliable": reliable}
    if par["bound"] is None:  # serial only bounded above: the ratio is bounded below
        value = par["ci"][0] - ser["log_p"]
        return {"log_p": value, "ci": [value, None], "bound": "lower", "reliable": reliable}
    if ser["bound"] is None:
        value = par["log_p"] - ser["ci"][0]
        return {"log_p": value, "ci": [None, value], "bound": "upper", "reliable": reliable}
    return None


def plot(frame: pd.DataFrame, records: dict, run_dir: Path, title: str) -> str:
    fig, ax = results.new_figure()
    for name in frame["class"]:
        profile = records[name].get("path_profile")
        if profile:
            ax.plot(range(len(profile)), profile, ".-", label=name)
    return results.finish_figure(fig, run_dir / "path_profiles.png", ax, "path length (blocks on the path)",
                                 "share of output variance", title, legend_size=7)


def validate(setup: Setup) -> None:
    """Every check of this experiment's keys, run before hydra writes anything."""
    _classes.estimator_options(setup)
    _check(setup)


def run(setup: Setup, run_dir: Path, state: dict | None) -> dict:
    options = _classes.estimator_options(setup)
    tau, classes = _check(setup)
    arch, task = setup.arch, setup.task
    T = cdepth.target_set(task)
    jobs = [_classes.Job(_classes.GIVEN, target_margin_score(arch, task.x, task.target), PRIOR_STREAM)]
    jobs += [_classes.Job(name, class_score(arch, task, T, tau, name), CLASS_STREAM + cdepth.LABELS.index(name),
                          _inspect(arch, task, tau)) for name in classes]
    records = _classes.run_jobs(setup, run_dir, state, jobs, options)
    pred = predictions(arch.n_blocks, arch.block_width)
    rows = []
    for name in classes:
        row = _classes.conditional_row(name, records[name], records[_classes.GIVEN])
        profile = records[name].get("path_profile")
        mean_len = float(np.dot(profile, np.arange(len(profile)))) if profile else None
        rows.append({**row, "n_blocks": arch.n_blocks, "block_width": arch.block_width, "tau": tau,
                     **pred.get(name, {"placements_one": None, "placements_all": None}),
                     "frac_confirmed": records[name].get("frac_confirmed"), "mean_path_length": mean_len})
    frame = plots.write_classes(run_dir, rows)
    given = records[_classes.GIVEN]
    summary = {"n_blocks": arch.n_blocks, "block_width": arch.block_width, "stream_width": arch.stream_width,
               "tau": tau, "log_p_target": {k: given[k] for k in ("log_p", "ci", "n_evals", "bound", "reliable")},
               "log_ratio_parallel_serial": ratio(records),
               "predicted_log_ratio_one": _log_ratio(pred["parallel"]["placements_one"], pred["serial"]["placements_one"]),
               "predicted_log_ratio_all": _log_ratio(pred["parallel"]["placements_all"], pred["serial"]["placements_all"]),
               "seconds": sum(r["seconds"] for r in records.values()),
               "n_evals": sum(r["n_evals"] for r in records.values())}
    summary["figures"] = [plot(frame, records, run_dir, f"{arch.describe()}, tau = {tau}")]
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "summary": summary, "estimates": records,
                                                   "versions": results.versions()})
    results.clear_checkpoint(run_dir)
    return summary


def _log_ratio(a: int, b: int) -> float | None:
    return math.log(a / b) if a > 0 and b > 0 else None


def describe(summary: dict) -> str:
    r = summary["log_ratio_parallel_serial"]
    measured = "not measured" if r is None else (
        f"{r['log_p']:.2f}{' (' + r['bound'] + ' bound)' if r['bound'] else ''}")
    pred_one, pred_all = summary["predicted_log_ratio_one"], summary["predicted_log_ratio_all"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    return (f"L = {summary['n_blocks']}, block width {summary['block_width']}: log P(target) = "
            f"{summary['log_p_target']['log_p']:.2f}; log(P(parallel | target) / P(serial | target)) = {measured} "
            f"(placement counts predict {fmt(pred_one)} for one tree vs one chain, {fmt(pred_all)} for all). "
            f"{summary['n_evals']:,} network evaluations in {summary['seconds']:.0f} s.")
