"""Circuit classes of trained networks, and the prior's P(class | target) for the same classes.

Two classifiers (circuits/): `llama` (MLPs on a target + distractor-bit task: direct vs
shallow/deep llamaizers, and which symmetry class of llama h each network carries) and
`depth` (residual MLPs on 4-bit parity: serial, parallel, single, mixed, other from each
block's Walsh reading with threshold tau, plus the share confirmed by block ablation).

Each classifier turns a block of trained networks into per-network arrays (fixed width, so
they can be checkpointed with the training records) and those arrays into events: one row
per class with the number of networks in it. The prior's side of every event comes from a
finished run of the counting experiment (llamaizer or depth) with the same model, prior and
task, read from its classes.csv and results.json:
- depth classes and llama symmetry classes c are measured there per class; for a symmetry
  class the llamaizer run measures one member h_c, so P(some unit carries a member of c) lies
  between P(h_c) (one member) and |c| P(h_c) (union bound over members, symmetric by
  permuting/negating distractor bits, which the prior, the task and full-cube training all
  respect);
- any deep / any shallow llama: between the best single class and the sum over classes;
- direct (no llama unit): the llamaizer run's lower bound 1 - (deep sum + shallow sum).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits import boolean
from circuits import depth as cdepth
from circuits.llama import LABELS as LLAMA_LABELS
from circuits.llama import classify_llamas, split_of
from volume import results
from volume.errors import ConfigError
from volume.plots import read_classes
from volume.experiments.llamaizer import distractor_bits
from volume.nets import ResidualMLP
from volume.setup import Setup

CIRCUITS = ("llama", "depth")
PRIOR_EXPERIMENT = {"llama": "llamaizer", "depth": "depth"}
SAME_KEYS = ("model", "prior", "task")  # must match between the trained run and its prior run


@dataclass(frozen=True)
class Labeller:
    """fields: names of the per-network arrays label(theta) returns; label_names: the
    values of the integer `label` array; basin_label: the array whose classes get basin volumes."""

    circuit: str
    fields: tuple[str, ...]
    label_names: tuple[str, ...]
    class_reps: np.ndarray  # llama: canonical keys of every non-constant distractor function class
    class_sizes: np.ndarray  # llama: members of each class
    tau: float

    def label(self, arch, theta: torch.Tensor, task) -> dict[str, np.ndarray]:
        if self.circuit == "llama":
            r = classify_llamas(arch, theta, task)
            m = len(split_of(task).distractors)
            carried = np.zeros((theta.shape[0], len(self.class_reps)), bool)
            rows = r.llamas
            if len(rows):
                cls = np.searchsorted(self.class_reps, boolean.canonical(rows["h"].to_numpy(np.uint64), m))
                carried[rows["network"].to_numpy(np.int64), cls] = True
            return {"label": _codes(r.label, self.label_names), "n_shallow": r.n_shallow, "n_deep": r.n_deep,
                    "carried": carried}
        r = cdepth.classify_depth(arch, theta, task, self.tau)
        return {"label": _codes(r.walsh_label, self.label_names),
                "confirmed_label": _codes(r.label, self.label_names)}

    def events(self, arrays: dict[str, np.ndarray], m: int) -> pd.DataFrame:
        """One row per class: its name, kind and the number of networks in it."""
        label = arrays["label"]
        rows = [{"class": name, "kind": "label", "count": int((label == i).sum())}
                for i, name in enumerate(self.label_names)]
        if self.circuit == "depth":
            confirmed = arrays["confirmed_label"]
            for row, i in zip(rows, range(len(self.label_names))):
                row["count_confirmed"] = int((confirmed == i).sum())
            return pd.DataFrame(rows)
        rows += [{"class": "any_deep", "kind": "union", "count": int((arrays["n_deep"] > 0).sum())},
                 {"class": "any_shallow", "kind": "union", "count": int((arrays["n_shallow"] > 0).sum())}]
        deep = ~boolean.is_threshold(self.class_reps, m)
        for c, rep in enumerate(self.class_reps):
            rows.append({"class": f"{'deep' if deep[c] else 'shallow'}_{int(rep):x}", "kind": "h_class",
                         "class_size": int(self.class_sizes[c]), "count": int(arrays["carried"][:, c].sum())})
        return pd.DataFrame(rows)


def _codes(labels: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    return np.array([names.index(x) for x in labels], dtype=np.int8)


def labeller(setup: Setup) -> tuple[Labeller, int]:
    """The classifier experiment.circuits names, after checking the model and task fit it;
    also m, the number of distractor bits (0 for depth)."""
    cfg, arch, task = setup.cfg, setup.arch, setup.task
    circuit = cfg.experiment.get("circuits")
    if circuit not in CIRCUITS:
        raise ConfigError(f"experiment.circuits: unknown {circuit!r}; allowed: {list(CIRCUITS)}")
    if circuit == "depth":
        tau = cfg.experiment.get("tau")
        if not isinstance(arch, ResidualMLP) or arch.n_out != 1:
            raise ConfigError("model: experiment.circuits=depth needs model=resmlp with n_out=1")
        if cfg.task.get("target") != "parity" or bin(cdepth.target_set(task)).count("1") != 4:
            raise ConfigError("task: experiment.circuits=depth needs task.target=parity of 4 bits")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau < 1:
            raise ConfigError(f"experiment.tau: a fraction in (0, 1), got {tau!r}")
        fields = ("label", "confirmed_label")
        return Labeller(circuit, fields, tuple(cdepth.LABELS), np.zeros(0, np.uint64), np.zeros(0, int), float(tau)), 0
    m = distractor_bits(setup, "experiment.circuits=llama", 4)  # the class table is built for m <= 4
    if arch.activation == "sign":
        raise ConfigError("model.activation: 'sign' has zero gradient almost everywhere; train with relu, tanh or "
                          "identity")
    keys = np.arange(1, boolean.n_functions(m) - 1)  # every non-constant h
    reps, sizes = np.unique(boolean.class_table(m)[keys], return_counts=True)
    return Labeller(circuit, ("label", "n_shallow", "n_deep", "carried"), LLAMA_LABELS, reps.astype(np.uint64),
                    sizes, 0.0), m


def load_prior_run(setup: Setup, circuit: str) -> dict | None:
    """classes.csv and the summary of experiment.prior_run (null: none), after checking it
    is a finished run of the matching counting experiment on the same model, prior and task."""
    path = setup.cfg.experiment.get("prior_run")
    if path is None:
        return None
    run_dir = Path(str(path))
    if not (run_dir / results.RESULTS).is_file() or not (run_dir / "classes.csv").is_file():
        raise ConfigError(f"experiment.prior_run: {run_dir} holds no finished run (results.json and classes.csv)")
    stored = json.loads((run_dir / results.RESULTS).read_text())
    want = PRIOR_EXPERIMENT[circuit]
    if stored["config"]["experiment"]["name"] != want:
        raise ConfigError(f"experiment.prior_run: needs a finished {want} run for experiment.circuits={circuit}, "
                          f"got a {stored['config']['experiment']['name']} run")
    for key in SAME_KEYS:
        if stored["config"][key] != setup.config[key]:
            raise ConfigError(f"experiment.prior_run: its {key} differs from this run's: {stored['config'][key]} "
                              f"vs {setup.config[key]}")
    if circuit == "depth" and stored["config"]["experiment"]["tau"] != setup.cfg.experiment.tau:
        raise ConfigError(f"experiment.tau: the prior run used tau = {stored['config']['experiment']['tau']}")
    classes = read_classes(run_dir)  # bound: "", "upper" or "target_not_reached"
    return {"classes": classes,
            "summary": stored["summary"], "dir": str(run_dir)}


def prior_columns(events: pd.DataFrame, prior: dict | None) -> pd.DataFrame:
    """log P(class | target) under the prior as an interval [log_low, log_high] (natural
    log; 95% ends of the estimates behind each end) and what the interval means."""
    out = events.assign(prior_low=np.nan, prior_high=np.nan, prior_meaning="")
    if prior is None:
        return out
    measured = prior["classes"].set_index("class")
    summary = prior["summary"]
    for i, row in out.iterrows():
        name = row["class"]
        one = measured.loc[name] if name in measured.index else None
        if one is not None and one["bound"] == "target_not_reached":
            out.loc[i, "prior_meaning"] = "not measured: the prior run never reached the target"
        elif one is not None and row["kind"] == "h_class":
            out.loc[i, ["prior_low", "prior_high", "prior_meaning"]] = [
                one["ci_low"], min(0.0, one["ci_high"] + math.log(row["class_size"])),
                "[one member, union bound over the class]" + (" (upper bound only)" if one["bound"] else "")]
        elif one is not None and row["kind"] == "label":  # depth classes
            out.loc[i, ["prior_low", "prior_high", "prior_meaning"]] = [
                one["ci_low"], one["ci_high"], "upper bound" if one["bound"] else "estimate"]
        elif row["kind"] == "union" and (kind := name.removeprefix("any_")) in summary:
            total, best = summary[kind]["sum_over_h"], summary[kind].get("union_lower")
            if total["ci"][1] is None:  # the sum has no upper end: the prior run never reached the target
                out.loc[i, "prior_meaning"] = "not measured: the prior run never reached the target"
                continue
            low = best["ci"][0] if best and best["ci"][0] is not None else -math.inf
            out.loc[i, ["prior_low", "prior_high", "prior_meaning"]] = [
                low, min(0.0, total["ci"][1]), "[best class, sum over classes]"]
        elif name == "direct" and summary.get("direct_lower_bound") is not None:
            out.loc[i, ["prior_low", "prior_high", "prior_meaning"]] = [
                summary["direct_lower_bound"], 0.0, "lower bound (1 - all llamas)"]
    return out
