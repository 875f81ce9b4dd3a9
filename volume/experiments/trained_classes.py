"""Experiment `trained_classes`: does training land in each circuit class as often as the prior holds it?

n_samples networks are trained (each from its own initialisation and data order, volume.training)
on every input of the task, so a network that fits computes the target exactly. The ones
that fit are sorted into circuit classes (experiment.circuits: `llama` or `depth`, see
circuits.registry); P_SGD(class | target) is the share of them in each class,
with an exact (Clopper-Pearson) interval. Next to it, P(class | target) under the prior, read
from a finished run of the counting experiment given as experiment.prior_run (llamaizer or
depth; null leaves those columns empty). For the first experiment.basin_per_class trained
networks of every class, the local volume of the target's region around the network
(volume.estimators.basin: prior mass of the star-shaped set where the network still
computes the target, a lower bound). Writes classes.csv, records.csv, basins.csv and
trained_classes.png.

The prior's side of every event (circuits.classifier: `events`) comes from the prior run's
classes.csv and results.json:
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
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits.classifier import Classifier
from circuits.registry import classifier as classifier_of
from volume import results
from volume.errors import ConfigError
from volume.estimators.basin import basin
from volume.estimators.scores import target_margin_score
from volume.functions import output_keys
from volume.plots import read_classes
from volume.setup import Setup, positive_int
from volume.trained import Split, frequencies, records_frame, train_population
from volume.training import build_trainer, train

SAME_KEYS = ("model", "prior", "task")  # must match between the trained run and its prior run


def _check(setup: Setup) -> dict:
    cfg = setup.cfg
    if cfg.num_shards != 1:
        raise ConfigError(f"num_shards: trained_classes runs in one process; must be 1, got {cfg.num_shards}")
    if setup.task.target is None:
        raise ConfigError("task.target: trained_classes trains on a target; set one, not null")
    return {"basin_per_class": positive_int(cfg, "experiment.basin_per_class", minimum=0),
            "basin_directions": positive_int(cfg, "experiment.basin_directions", minimum=2)}


def _basins(setup: Setup, trainer, runs: dict, label_names: tuple[str, ...], per_class: int, directions: int,
            stages: results.Stages) -> pd.DataFrame:
    """Basin lower bounds for the first `per_class` fitted networks of every class. Their
    parameters are retrained (a network's run depends only on its seed and ids), and the
    retrained function must equal the recorded one."""
    cfg, arch, task = setup.cfg, setup.arch, setup.task
    fitted = np.flatnonzero(runs["fitted"])
    chosen = np.concatenate([fitted[runs["label"][fitted] == i][:per_class] for i in range(len(label_names))])
    if per_class == 0 or len(chosen) == 0:
        return pd.DataFrame(columns=["network", "class", "log_volume", "median_radius", "ess", "n_evals"])
    chosen.sort()
    have = stages.get("basins")
    if not stages.done("basins"):
        out = train(arch, task.x, task.target, trainer, cfg.seed, chosen, chosen, prior=setup.prior, eval_x=task.x,
                    keep_theta=True)
        if not np.array_equal(output_keys(out.outputs), runs["keys"][chosen]):
            raise RuntimeError("retraining the basin networks gave other functions than the recorded runs")
        score = target_margin_score(arch, task.x, task.target)  # > 0 exactly where the target is computed

        def loss(theta: torch.Tensor) -> torch.Tensor:
            return -score(theta)

        found = [basin(loss, out.theta[j], arch, setup.prior, 0.0, n_directions=directions, seed=cfg.seed + int(net),
                       progress=cfg.progress) for j, net in enumerate(chosen)]
        have = {"log_volume": np.array([b.estimate.log_p for b in found]), "ess": np.array([b.ess for b in found]),
                "median_radius": np.array([np.median(b.radii) for b in found]),
                "n_evals": np.array([b.estimate.n_evals for b in found])}
        stages.put("basins", have, complete=True)
    return pd.DataFrame({"network": chosen, "class": np.array(label_names)[runs["label"][chosen]],
                         "log_volume": have["log_volume"], "median_radius": have["median_radius"], "ess": have["ess"],
                         "n_evals": have["n_evals"]})


def load_prior_run(setup: Setup, classifier: Classifier) -> dict | None:
    """classes.csv and the summary of experiment.prior_run (null: none), after checking it
    is a finished run of the matching counting experiment on the same model, prior and task."""
    path = setup.cfg.experiment.get("prior_run")
    if path is None:
        return None
    run_dir = Path(str(path))
    if not (run_dir / results.RESULTS).is_file() or not (run_dir / "classes.csv").is_file():
        raise ConfigError(f"experiment.prior_run: {run_dir} holds no finished run (results.json and classes.csv)")
    stored = json.loads((run_dir / results.RESULTS).read_text())
    want = classifier.prior_experiment
    if stored["config"]["experiment"]["name"] != want:
        raise ConfigError(f"experiment.prior_run: needs a finished {want} run for experiment.circuits="
                          f"{classifier.name}, got a {stored['config']['experiment']['name']} run")
    for key in SAME_KEYS:
        if stored["config"][key] != setup.config[key]:
            raise ConfigError(f"experiment.prior_run: its {key} differs from this run's: {stored['config'][key]} "
                              f"vs {setup.config[key]}")
    for key in classifier.same_keys:
        if stored["config"]["experiment"][key] != setup.cfg.experiment[key]:
            raise ConfigError(f"experiment.{key}: the prior run used {key} = {stored['config']['experiment'][key]}")
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


def _class_frame(events: pd.DataFrame, n_fitted: int, basins: pd.DataFrame) -> pd.DataFrame:
    log_p, low, high = frequencies(events["count"].to_numpy(), n_fitted)
    frame = events.assign(n_fitted=n_fitted, log_p_sgd=log_p, ci_low_sgd=low, ci_high_sgd=high)
    stats = basins.groupby("class").agg(basin_n=("log_volume", "count"), basin_log_median=("log_volume", "median"),
                                        basin_log_min=("log_volume", "min"), basin_log_max=("log_volume", "max"),
                                        basin_median_radius=("median_radius", "median"))
    return frame.merge(stats, how="left", left_on="class", right_index=True)


def class_panel(ax, frame: pd.DataFrame, title: str) -> None:
    """Per class: log10 P_SGD(class | target) (dot, exact interval; none found: open
    triangle at the upper end) and the prior's P(class | target) interval (bar)."""
    ln10 = math.log(10)
    shown = frame[(frame["count"] > 0) | frame["prior_high"].notna()].reset_index(drop=True)
    x = np.arange(len(shown))
    sgd, low, high = shown["log_p_sgd"] / ln10, shown["ci_low_sgd"] / ln10, shown["ci_high_sgd"] / ln10
    low = np.maximum(low, sgd - 3)  # a zero count's -inf lower end, drawn as 3 decades
    hit = (shown["count"] > 0).to_numpy()
    ax.errorbar(x[hit] - 0.1, sgd[hit], yerr=[sgd[hit] - low[hit], high[hit] - sgd[hit]], fmt="o", ms=4,
                label="P_SGD(class | target), trained")
    ax.scatter(x[~hit] - 0.1, high[~hit], marker="v", facecolors="none", edgecolors="C0",
               label="P_SGD: upper bound (none found)")
    prior = shown["prior_high"].notna().to_numpy()
    p_low = np.maximum(shown["prior_low"] / ln10, shown["prior_high"] / ln10 - 30)  # -inf drawn as 30 decades
    ax.vlines(x[prior] + 0.1, p_low[prior], shown["prior_high"][prior] / ln10, color="C1", lw=3,
              label="P(class | target), prior (95% ends)")
    ax.set_xticks(x, shown["class"], rotation=70, fontsize=7)
    ax.set_ylabel("log10 probability")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)


def plot(frame: pd.DataFrame, basins: pd.DataFrame, run_dir: Path, title: str) -> str:
    fig, (left, right) = results.new_figure(1, 2, figsize=(11, 4.5))
    class_panel(left, frame, title)
    names = list(dict.fromkeys(basins["class"]))
    for i, name in enumerate(names):
        values = basins.loc[basins["class"] == name, "median_radius"]
        right.scatter(np.full(len(values), i), values, marker="^", s=14)
    right.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
    right.set_ylabel("median radius of the target region (prior std units)")
    right.set_title("how far each trained network is from changing its function, along random directions\n"
                    "(log-volume lower bounds in basins.csv)", fontsize=8)
    return results.finish_figure(fig, run_dir / "trained_classes.png")


def validate(setup: Setup) -> None:
    """Every check of this experiment's keys, run before hydra writes anything."""
    _check(setup)
    load_prior_run(setup, classifier_of(setup))
    build_trainer(setup.cfg.trainer)


def run(setup: Setup, run_dir: Path, stages: results.Stages) -> dict:
    cfg, task, arch = setup.cfg, setup.task, setup.arch
    options = _check(setup)
    classifier = classifier_of(setup)
    prior = load_prior_run(setup, classifier)
    trainer = build_trainer(cfg.trainer)
    everything = Split(np.arange(task.n_inputs), np.zeros(0, np.int64))
    ids = np.arange(cfg.n_samples)
    runs = train_population(arch, setup.prior, trainer, task, everything, cfg.seed, ids, ids, stages, "sgd", cfg.progress,
                   extra=lambda out: classifier.arrays(classifier.label(arch, out.theta, task)),
                   extra_fields=classifier.fields)
    fitted = runs["fitted"]
    events = classifier.events({k: runs[k][fitted] for k in classifier.fields})
    basins = _basins(setup, trainer, runs, classifier.labels, options["basin_per_class"],
                     options["basin_directions"], stages)
    frame = prior_columns(_class_frame(events, int(fitted.sum()), basins), prior)
    records = records_frame(runs, ids, ids, cfg.seed, task, everything)
    records["class"] = np.array(classifier.labels)[runs["label"]]
    records.loc[~fitted, "class"] = ""
    results.write_csv(run_dir / "classes.csv", frame)
    results.write_csv(run_dir / "records.csv", records)
    results.write_csv(run_dir / "basins.csv", basins)
    title = (f"{arch.describe()}, {trainer.optimizer} lr={trainer.lr} batch={trainer.batch_size or 'full'}; "
             f"{int(fitted.sum()):,} of {cfg.n_samples:,} runs fit")
    summary = {
        "circuits": classifier.name, "n_runs": int(cfg.n_samples), "n_fitted": int(fitted.sum()),
        "median_steps": float(np.median(runs["steps"])), "prior_run": None if prior is None else prior["dir"],
        "classes": {row["class"]: {"count": int(row["count"]), "log_p_sgd": row["log_p_sgd"],
                                   "ci_sgd": [row["ci_low_sgd"], row["ci_high_sgd"]],
                                   "prior": [row["prior_low"], row["prior_high"]], "prior_meaning": row["prior_meaning"]}
                    for _, row in frame[frame["kind"] != "h_class"].iterrows()},
        "n_basins": len(basins), "figures": [plot(frame, basins, run_dir, title)],
    }
    results.write_json(run_dir / results.RESULTS, {"config": setup.config, "summary": summary,
                                                   "versions": results.versions()})
    return summary


def describe(summary: dict) -> str:
    def fmt(v: float) -> str:
        return "n/a" if v is None or math.isnan(v) else f"{v / math.log(10):.2f}"

    parts = [f"Trained {summary['n_runs']:,} networks on the whole cube; {summary['n_fitted']:,} fit "
             f"(median {summary['median_steps']:.0f} steps). log10 P_SGD(class | target) [95%] vs the prior's:"]
    for name, c in summary["classes"].items():
        prior = (f"prior [{fmt(c['prior'][0])}, {fmt(c['prior'][1])}] ({c['prior_meaning']})"
                 if c["prior_meaning"] else "prior: not measured")
        parts.append(f"{name}: {c['count']:,} runs, {fmt(c['log_p_sgd'])} [{fmt(c['ci_sgd'][0])}, "
                     f"{fmt(c['ci_sgd'][1])}]; {prior}.")
    return " ".join(parts)
