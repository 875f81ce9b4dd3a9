"""Experiment `llamaizer`: does extra internal computation cost more volume than the
multiplicity of possible computations adds?

Task: pm1 cube over n = len(target_vars) + m bits, target (default andor) on target_vars;
the other m bits are distractors. A llama h is a non-constant function of the distractors;
deep when not linearly separable (|H_m| of them), shallow otherwise. Class "llamaizer(h)":
some hidden unit's thresholded truth table is exactly h (circuits.llama). For each symmetry
class of h (permutation/negation of the distractor bits) one representative h is measured:
log P(llamaizer(h) | target) by rare-event splitting on min(target margin, max over units of
the unit's margin against h), both margins divided by their scale (docs/counting.md, "Experiment
`llamaizer`"). The symmetry is exact: permuting/negating distractor inputs is a relabelling
of first-layer weight rows and bias shifts that keeps the symmetric Gaussian prior and the
target, so every member of a class has the same volume. Sums over classes weighted by class sizes give
sum_h P(llamaizer(h) | target) = E[number N of distinct llamas carried | target], so
P(some llama | target) lies in [max_h P(h | target), min(1, sum_h P(h | target))] (union
bound; summary[kind]['union'], classes.csv rows all_deep / all_shallow / all_llamas); the
overlap left open is measured as a cross-check, sum_h P(h) E[1/N | h] (exact identity, with
E[1/N | h] from MCMC samples inside class h: volume.estimators.sums).
No tuned threshold: a unit carries h iff its pre-activation is > 0 exactly where h holds
(margin > 0; the scale-free margins of the score move only the splitting levels).
Controls: units carrying a function of two target bits or of one target and one distractor;
and (m >= 2, LAYER_CONTROLS) a llama of d1, d2 on a first- vs a last-layer unit, and on a
last-layer unit the output uses (zero-ablating it changes the function) vs any last-layer unit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits import boolean, llama
from circuits.llama import LlamaClassifier, classify_llamas, distractor_bits, split_of
from volume import fused, plots, results
from volume.complexity import complexity_table
from volume.errors import ConfigError
from volume.estimators import sums
from volume.estimators.scores import TINY, Score, target_and_class_score, target_margin_score, target_signs
from volume.experiments import _classes
from volume.nets import ACTIVATIONS, MLP
from volume.rng import CLASS_STREAM, PRIOR_STREAM
from volume.setup import Setup, positive_int

AND, XOR = 0b1000, 0b0110  # keys over two variables
LAYERS = ("all", "first", "last", "last_used")
# Controls on two llamas of d1, d2 (m >= 2): h = d1 and d2 (shallow: a first-layer unit can carry
# it) by layer, and with the output using it; h = d1 xor d2 (deep: never a first-layer unit) in the
# last hidden layer, used or not. (name, key over d1 d2, layers of unit_class_score)
LAYER_CONTROLS = (("llama_and_first", AND, "first"), ("llama_and_last", AND, "last"),
                  ("llama_and_used", AND, "last_used"), ("llama_xor_last", XOR, "last"),
                  ("llama_xor_used", XOR, "last_used"))
KINDS = ("deep", "shallow")
INSPECTED = ("frac_used", "mean_llama_units", "mean_distinct_llamas", "share_other_llama", "mean_inv_distinct")


def unit_class_score(arch: MLP, task, variables: list[int], keys, layers: str = "all") -> Score:
    """circuits.llama.unit_class_score (units of every hidden layer; one numba kernel) or, for
    the control rows, the same score over some hidden units only (torch): layers "first" or
    "last" (that hidden layer), or "last_used" (units of the last hidden layer whose
    zero-ablation changes the network's function: `used_margins`)."""
    if layers not in LAYERS:
        raise ValueError(f"layers: unknown {layers!r}; allowed: {list(LAYERS)}")
    if layers == "all":
        return llama.unit_class_score(arch, task, variables, keys)
    keys = np.asarray(keys, np.uint64)
    signs, x, n = target_signs(task.target, task.n_inputs), task.x.to(torch.float32), task.n_vars

    def outputs_and_class(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = fused.mlp_preactivations(arch, theta, x)
        carry = llama.unit_carry_margins([pre[0] if layers == "first" else pre[-2]], n, variables, keys)  # [B, U]
        if layers == "last_used":
            carry = torch.minimum(carry, used_margins(arch, theta, pre, signs))
        return pre[-1][..., 0], carry.amax(1)

    return target_and_class_score(task.target, task.n_inputs, outputs_and_class)


def used_margins(arch: MLP, theta: torch.Tensor, pre: list[torch.Tensor], signs: torch.Tensor) -> torch.Tensor:
    """[B, U]: for each unit j of the last hidden layer, max over inputs x of s(x) (c_j(x) -
    y(x)), with y the output, c_j = w_j act(z_j) the unit's contribution to it and s = +1
    where the target holds, else -1; divided by (max |y| + max |c_j| + tiny), so scale-free.
    On a network computing the target, it is > 0 iff zero-ablating unit j (output y - c_j)
    moves the output to the other side of 0 on some input, i.e. changes the function
    (y - c_j = 0 exactly, a measure-zero set, counts as on the target's side)."""
    y = pre[-1][..., 0]  # [B, N]
    w = arch.slice(f"W{arch.n_layers - 1}").view(theta.to(torch.float32))[..., 0]  # [B, U]
    contribution = ACTIVATIONS[arch.activation](pre[-2]) * w.unsqueeze(1)  # [B, N, U]
    flip = (signs[None, :, None] * (contribution - y.unsqueeze(2))).amax(1)
    scale = y.abs().amax(1, keepdim=True) + contribution.abs().amax(1) + TINY
    return flip / scale


def _check(setup: Setup) -> int:
    """m, after validating what this experiment needs (ConfigError names the key)."""
    cfg = setup.cfg
    m = distractor_bits(setup, "experiment llamaizer", 5)
    positive_int(cfg, "experiment.n_classes_sampled")
    for key in ("deep", "shallow", "controls"):
        if not isinstance(cfg.experiment.get(key), bool):
            raise ConfigError(f"experiment.{key}: true or false, got {cfg.experiment.get(key)!r}")
    return m


def members(kind: str, m: int) -> np.ndarray:
    """Keys of every deep (non-threshold) or shallow (threshold, non-constant) llama (m <= 4)."""
    keys = np.arange(boolean.n_functions(m), dtype=np.uint64)
    thr = boolean.is_threshold(keys, m)
    return keys[~thr] if kind == "deep" else keys[thr & (keys != 0) & (keys != keys[-1])]


def population_size(kind: str, m: int) -> int:
    return boolean.non_threshold_count(m) if kind == "deep" else boolean.THRESHOLD_COUNTS[m] - 2


def choose_classes(kind: str, m: int, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Representatives, weights, and (when sampled) the class index of each draw.
    All classes with their exact sizes when there are at most `limit` (m <= 4); else `limit`
    uniform draws of a member h, grouped by class (weights: |H| x share of draws)."""
    total = population_size(kind, m)
    if total == 0:
        return np.zeros(0, np.uint64), np.zeros(0), None
    if m <= 4:
        canon = boolean.class_table(m)[members(kind, m).astype(np.int64)].astype(np.uint64)
        reps, sizes = np.unique(canon, return_counts=True)
        if len(reps) <= limit:
            return reps, sizes.astype(float), None
    rng = np.random.default_rng([seed, m, KINDS.index(kind)])
    if m <= 4:
        draws = rng.choice(members(kind, m), limit)
    else:  # rejection from uniform keys (deep) or uniform threshold functions (shallow)
        if kind == "shallow":
            table = boolean.threshold_functions(m)[0]
            draws = rng.choice(table[(table != 0) & (table != table[-1])], limit)
        else:
            draws = np.zeros(0, np.uint64)
            while len(draws) < limit:
                keys = rng.integers(0, 1 << 32, 4 * limit, dtype=np.uint64)
                draws = np.concatenate([draws, keys[~boolean.is_threshold(keys, m)]])[:limit]
    reps, index, counts = np.unique(boolean.canonical(draws, m), return_inverse=True, return_counts=True)
    return reps, total * counts / limit, index


def _inspect_llama(arch: MLP, task, h: int, kind: str = "deep"):
    """Cross-check inside the class (MCMC samples): share of networks where a unit carrying
    h is used (ablating it changes the function), their mean number of llama units, and the
    overlap between llamas: N = number of distinct llamas of this kind a network carries (h
    counts even where the classifier's own forward misses it), E[N], P(N >= 2), E[1/N], and
    E[1/N_all] over llamas of both kinds (see `summarise`)."""
    def inspect(result) -> dict:
        r = classify_llamas(arch, result.theta.to(torch.float32), task)
        llamas = r.llamas.assign(h=r.llamas["h"].astype(np.uint64))
        rows = llamas[llamas["h"] == np.uint64(h)]
        used = rows.groupby("network")["used"].any()
        n = result.theta.shape[0]
        missed = ~np.isin(np.arange(n), rows["network"].to_numpy())
        distinct = llamas.drop_duplicates(["network", "h"])
        same = np.bincount(distinct.loc[distinct["depth"] == kind, "network"], minlength=n) + missed
        every = np.bincount(distinct["network"], minlength=n) + missed
        return {"frac_used": float(used.mean()) if len(used) else None,
                "mean_llama_units": float((r.n_shallow + r.n_deep).mean()),
                "mean_distinct_llamas": float(same.mean()), "share_other_llama": float((same >= 2).mean()),
                "mean_inv_distinct": float((1 / same).mean()), "mean_inv_distinct_all": float((1 / every).mean()),
                "frac_h_missed": float(missed.mean())}
    return inspect


def _inspect_target(arch: MLP, task):
    def inspect(result) -> dict:
        return {"labels": classify_llamas(arch, result.theta.to(torch.float32), task).counts()}
    return inspect


def build_jobs(setup: Setup, m: int) -> tuple[list[_classes.Job], dict]:
    cfg, arch, task = setup.cfg, setup.arch, setup.task
    split, classifier = split_of(task), LlamaClassifier(m)
    exp = cfg.experiment
    jobs = [_classes.Job(_classes.GIVEN, target_margin_score(arch, task.x, task.target), PRIOR_STREAM,
                         _inspect_target(arch, task))]
    plans = {}
    for kind in KINDS:
        if not exp.get(kind):
            continue
        reps, weights, draws = choose_classes(kind, m, exp.n_classes_sampled, cfg.seed)
        plans[kind] = {"weights": weights.tolist(), "draws": None if draws is None else draws.tolist(),
                       "names": [f"{kind}_{int(h):x}" for h in reps]}
        stats = complexity_table(reps.reshape(-1, 1), 1 << m, True) if len(reps) else {}
        for c, h in enumerate(reps):
            jobs.append(_classes.Job(f"{kind}_{int(h):x}", classifier.class_score(arch, task, int(h)),
                                     CLASS_STREAM + 2 * (int(h) + (1 << (1 << m)) * KINDS.index(kind)),
                                     _inspect_llama(arch, task, int(h), kind),
                                     {"kind": kind, "h": f"{int(h):x}", "class_weight": weights[c],
                                      "lz": stats["lz"][c], "sensitivity": stats["sensitivity"][c]}))
    if exp.get("controls"):
        t0, t1, d0 = split.target[0], split.target[1], split.distractors[0]
        for c, (name, variables, key) in enumerate((("target_and", [t0, t1], AND), ("target_xor", [t0, t1], XOR),
                                                    ("mixed_and", [t0, d0], AND), ("mixed_xor", [t0, d0], XOR))):
            jobs.append(_classes.Job(name, unit_class_score(arch, task, variables, [key]), CLASS_STREAM + 1 + 2 * c, None,
                                     {"kind": "control", "h": f"{key:x}", "class_weight": 1.0}))
        jobs += layer_control_jobs(arch, task, split.distractors)
    return only(jobs, plans, exp.get("only"))


def only(jobs: list[_classes.Job], plans: dict, names) -> tuple[list[_classes.Job], dict]:
    """experiment.only: the target and the named classes; no sums over h then (they need every
    class), so no plans. A name not among the jobs is a ConfigError listing the allowed ones."""
    if names is None:
        return jobs, plans
    allowed = [job.name for job in jobs[1:]]
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ConfigError(f"experiment.only: null or a non-empty list of class names, got {names!r}; "
                          f"allowed (this m and seed): {allowed}")
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ConfigError(f"experiment.only: unknown classes {unknown}; allowed (this m and seed): {allowed}")
    return [jobs[0], *(job for job in jobs[1:] if job.name in names)], {}


def layer_control_jobs(arch: MLP, task, distractors: list[int]) -> list[_classes.Job]:
    """The LAYER_CONTROLS (none at m = 1: they need two distractor bits). Streams after the
    four target/mixed controls (odd offsets: never a llama class's)."""
    if len(distractors) < 2:
        return []
    return [_classes.Job(name, unit_class_score(arch, task, distractors[:2], [key], layers), CLASS_STREAM + 9 + 2 * c,
                         None, {"kind": "control", "h": f"{key:x}", "class_weight": 1.0})
            for c, (name, key, layers) in enumerate(LAYER_CONTROLS)]


def summarise(records: dict, jobs: list[_classes.Job], plans: dict, m: int, seed: int) -> tuple[pd.DataFrame, dict]:
    given = records[_classes.GIVEN]
    rows = []
    for job in jobs[1:]:
        row = _classes.conditional_row(job.name, records[job.name], given)
        extra = {k: v for k, v in records[job.name].items() if k in INSPECTED}
        rows.append({**row, **job.info, "m": m, "bits": -row["log_p"] / math.log(2), **extra})
    frame = pd.DataFrame(rows)
    summary = {"m": m, "log_p_target": {k: given[k] for k in ("log_p", "ci", "n_evals", "bound")},
               "labels_in_target_population": given.get("labels")}
    for kind, plan in plans.items():
        terms = [(records[name], w) for name, w in zip(plan["names"], plan["weights"])]
        sampled = None if plan["draws"] is None else (np.array(plan["draws"]), population_size(kind, m))
        total = sums.log_sum(terms, given, seed, sampled)
        part = frame[(frame["kind"] == kind) & (frame["bound"] == "")]  # estimates, not bounds
        best = part.loc[part["log_p"].idxmax()] if len(part) else None
        low = None if best is None else {"class": best["class"], "log_p": best["log_p"],
                                         "ci": [best["ci_low"], best["ci_high"]], "bound": None}
        cross = {f: sums.log_sum(terms, given, seed, sampled, sums.harmonic_factors(records, plan["names"], f))
                 for f in ("mean_inv_distinct", "mean_inv_distinct_all")}
        summary[kind] = {"n_functions": population_size(kind, m), "n_classes_measured": len(plan["names"]),
                         "sampled": plan["draws"] is not None, "sum_over_h": total, "union_lower": low,
                         "union": sums.bracket(low, total, cross["mean_inv_distinct"]),
                         "cross_check_all_kinds": cross["mean_inv_distinct_all"]}
    if len(plans) < len(KINDS):
        return frame, summary
    present = [k for k in KINDS if summary[k]["n_functions"]]  # no deep llama of m = 1 bit: that sum is 0
    uppers = [summary[k]["sum_over_h"]["ci"][1] for k in present]
    if all(u is not None for u in uppers):
        any_llama = float(np.logaddexp.reduce(uppers))  # upper end: deep sum + shallow sum
        summary["direct_lower_bound"] = math.log1p(-math.exp(any_llama)) if any_llama < 0 else None
    # deep or shallow: low = the larger low end, high = both sums
    lows = [summary[k]["union_lower"] for k in present if summary[k]["union_lower"] is not None]
    summary["any_llama"] = sums.bracket(
        max(lows, key=lambda e: e["log_p"], default=None),
        sums.log_add([summary[k]["sum_over_h"] for k in present], given["n_evals"]),
        sums.log_add([summary[k]["cross_check_all_kinds"] for k in present], given["n_evals"]))
    return frame, summary


def union_rows(summary: dict) -> list[dict]:
    """classes.csv rows all_deep, all_shallow, all_llamas: the bracket of P(union | target)
    and its cross-check (volume.estimators.sums)."""
    brackets = {f"all_{k}": summary[k]["union"] for k in KINDS if k in summary}
    if "any_llama" in summary:
        brackets["all_llamas"] = summary["any_llama"]
    return sums.union_rows(brackets, summary["m"])


def plot(frame: pd.DataFrame, run_dir: Path, title: str) -> str:
    fig, ax = results.new_figure()
    for kind, marker in (("deep", "o"), ("shallow", "s")):
        part = frame[frame["kind"] == kind]
        if len(part):
            bits, low, high, bound = plots.as_bits(part["log_p"], part["ci_low"], part["ci_high"], part["bound"])
            # an upper bound's ci_low is -inf: its bits are drawn as a bound (arrow up), no interval
            plots.plot_estimates(ax, part["sensitivity"], bits, low, high, bound, part["reliable"], marker=marker,
                                    line=False,
                                    ms=4, label=f"{kind} llamas")
    return results.finish_figure(fig, run_dir / "bits_per_h.png", ax, "average sensitivity of h",
                                 "constraint bits  -log2 P(llamaizer(h) | target)\n(open, arrow: bounds)",
                                 title, legend_size=7)


def validate(setup: Setup) -> None:
    """Every check of this experiment's keys, run before hydra writes anything."""
    _classes.estimator_options(setup)
    build_jobs(setup, _check(setup))  # checks experiment.only against the class names


def run(setup: Setup, run_dir: Path, stages: results.Stages) -> dict:
    options = _classes.estimator_options(setup)
    m = _check(setup)
    jobs, plans = build_jobs(setup, m)
    records = _classes.run_jobs(setup, stages, jobs, options)
    frame, summary = summarise(records, jobs, plans, m, setup.cfg.seed)
    plots.write_classes(run_dir, frame.to_dict("records") + union_rows(summary))
    summary["seconds"] = sum(r["seconds"] for r in records.values())
    summary["n_evals"] = sum(r["n_evals"] for r in records.values())
    summary["figures"] = [plot(frame, run_dir, f"{setup.arch.describe()}, m = {m}")]
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "summary": summary, "estimates": records,
                                                   "versions": results.versions()})
    return summary


def _fmt(est: dict) -> str:
    if est.get("log_p") is None:
        return "undefined (target not reached)"
    lo, hi = (math.nan if c is None else c / math.log(10) for c in est["ci"])
    kind = f" ({est['bound']} bound)" if est.get("bound") else ""
    return f"log10 P = {est['log_p'] / math.log(10):.2f}{kind} [{lo:.2f}, {hi:.2f}]"


def describe(summary: dict) -> str:
    parts = [f"m = {summary['m']}: P(target) {_fmt(summary['log_p_target'])}."]
    for kind in KINDS:
        if kind in summary and not summary[kind]["n_functions"]:
            parts.append(f"no {kind} llamas of {summary['m']} bit(s) exist.")
        elif kind in summary:
            s = summary[kind]
            parts.append(f"{kind} llamas (|H| = {s['n_functions']:,}, {s['n_classes_measured']} classes"
                         f"{', sampled' if s['sampled'] else ''}): sum_h P(llamaizer(h) | target) "
                         f"{_fmt(s['sum_over_h'])}; P(some {kind} llama | target) in {_bracket(s['union'])}.")
    if "any_llama" in summary:
        parts.append(f"P(some llama | target) in {_bracket(summary['any_llama'])}.")
    parts.append(f"{summary['n_evals']:,} network evaluations in {summary['seconds']:.0f} s.")
    return " ".join(parts)


def _bracket(b: dict) -> str:
    if b["high"]["log_p"] is None:
        return "undefined (target not reached)"
    log10 = lambda v: v / math.log(10)  # noqa: E731
    low = "0" if b["low"] is None else f"10^{log10(b['low']['log_p']):.2f}"
    cross = b["cross_check"]["log_p"]
    return (f"[{low}, 10^{log10(b['high']['log_p']):.2f}{' (bound)' if b['high']['bound'] else ''}] "
            f"(max_h, union bound; cross-check sum_h P(h) E[1/N | h] = "
            f"{'n/a' if cross is None else f'10^{log10(cross):.2f}'})")
