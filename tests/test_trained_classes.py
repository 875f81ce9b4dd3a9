"""Experiment trained_classes: trained networks sorted into circuit classes, next to the prior."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from circuits import boolean
from circuits.depth import classify_depth
from circuits.llama import classify_llamas
from conftest import count_calls, interrupt_on_call, make_cfg
from conftest import run_in_process as _run
from volume.errors import ConfigError
from volume.experiments import build
from circuits.registry import classifier
from volume.training import build_trainer, train

TINY = ("experiment=trained_classes", "task.target=and", "task.target_vars=[1,2]", "task.n=4", "model.hidden=[6,6]",
        "n_samples=160", "trainer.max_steps=400", "experiment.basin_per_class=1", "experiment.basin_directions=20",
        "threads=1")
TINY_LLAMAIZER = ("experiment=llamaizer", "task.target=and", "task.target_vars=[1,2]", "task.n=4",
                  "model.hidden=[6,6]", "estimator.n_particles=30", "estimator.n_runs=3", "estimator.n_moves=2",
                  "estimator.moves=global", "estimator.max_levels=40", "experiment.n_classes_sampled=2", "experiment.controls=false", "threads=1")


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"function": str})


@pytest.mark.parametrize("m", [1, 2, 3])
def test_llama_classes_partition_the_non_constant_distractor_functions(m):
    setup = build(make_cfg(*TINY, f"task.n={2 + m}"))
    label = classifier(setup)
    assert label.m == m
    assert label.class_sizes.sum() == boolean.n_functions(m) - 2  # every non-constant h, once
    deep = ~boolean.is_threshold(label.class_reps, m)
    assert label.class_sizes[deep].sum() == boolean.non_threshold_count(m)  # |H_m| = 0, 2, 152


@pytest.fixture(scope="module")
def llama_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained_classes")
    _run(root / "prior", *TINY_LLAMAIZER)
    summary = _run(root / "a", *TINY, f"experiment.prior_run={root / 'prior'}")
    return root, summary


def test_llama_counts_are_the_classifier_on_the_trained_networks(llama_runs):
    root, summary = llama_runs
    frame, records = _csv(root / "a" / "classes.csv"), _csv(root / "a" / "records.csv")
    setup = build(make_cfg(*TINY))
    # Train the same networks directly and classify them: the experiment's counts must match.
    ids = np.arange(160)
    out = train(setup.arch, setup.task.x, setup.task.target, build_trainer(setup.cfg.trainer), 0, ids, ids,
                prior=setup.prior, keep_theta=True)
    r = classify_llamas(setup.arch, out.theta[out.fitted], setup.task)
    counts = frame.set_index("class")["count"]
    assert summary["n_fitted"] == out.fitted.sum() == (records["stopped_reason"] == "fit").sum()
    assert r.solves.all()  # training on the whole cube: fitting means computing the target
    for name, count in r.counts().items():
        assert counts[name] == count
    assert counts["any_deep"] == (r.n_deep > 0).sum() and counts["any_shallow"] == (r.n_shallow > 0).sum()
    assert (records.loc[out.fitted, "class"].to_numpy() == r.label).all()
    # P_SGD is the share of fitted runs, with an exact interval around it.
    hit = frame["count"] > 0
    assert np.allclose(np.exp(frame.loc[hit, "log_p_sgd"]), frame.loc[hit, "count"] / summary["n_fitted"])
    assert (frame.loc[hit, "ci_low_sgd"] < frame.loc[hit, "log_p_sgd"]).all()
    assert (frame.loc[hit, "log_p_sgd"] < frame.loc[hit, "ci_high_sgd"]).all()


def test_prior_columns_come_from_the_prior_run(llama_runs):
    root, _ = llama_runs
    frame = _csv(root / "a" / "classes.csv").set_index("class")
    prior = _csv(root / "prior" / "classes.csv").set_index("class")
    prior_summary = json.loads((root / "prior" / "results.json").read_text())["summary"]
    measured = [c for c in prior.index if c in frame.index]
    assert measured
    for name in measured:  # one member's interval, and |class| times it (the union bound)
        assert frame.loc[name, "prior_low"] == pytest.approx(prior.loc[name, "ci_low"])
        high = min(0.0, prior.loc[name, "ci_high"] + math.log(frame.loc[name, "class_size"]))
        assert frame.loc[name, "prior_high"] == pytest.approx(high)
    for kind in ("deep", "shallow"):
        total = prior_summary[kind]["sum_over_h"]["ci"][1]
        assert frame.loc[f"any_{kind}", "prior_high"] == pytest.approx(min(0.0, total))


def test_basins_are_lower_bounds_for_the_first_networks_of_each_class(llama_runs):
    root, _ = llama_runs
    basins, records = _csv(root / "a" / "basins.csv"), _csv(root / "a" / "records.csv")
    fitted = records[records["stopped_reason"] == "fit"]
    first = fitted.groupby("class")["network"].min()
    assert sorted(basins["network"]) == sorted(first.to_numpy())
    assert (basins.set_index("network")["class"] == records.set_index("network").loc[basins["network"], "class"]).all()
    assert (basins["log_volume"] < 0).all() and np.isfinite(basins["log_volume"]).all()
    assert (basins["median_radius"] > 0).all() and np.isfinite(basins["median_radius"]).all()


def test_result_does_not_depend_on_pool_and_resumes_after_a_kill(llama_runs, tmp_path, monkeypatch):
    from volume import trained

    root, _ = llama_runs
    args = (*TINY, f"experiment.prior_run={root / 'prior'}", "checkpoint_seconds=0")
    monkeypatch.setattr(trained, "TRAIN_BLOCK", 64)
    real_train = interrupt_on_call(monkeypatch, trained, "train", 2)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, *args, "trainer.pool=37")
    assert (tmp_path / "checkpoint.npz").exists()
    monkeypatch.setattr(trained, "train", real_train)
    resumed = count_calls(monkeypatch, trained, "train")
    _run(tmp_path, *args, "trainer.pool=37", "resume=true")
    # Continued: only the blocks of 64 and 32 networks after the checkpointed first block; a
    # restart from scratch would train all three blocks of 160 networks.
    assert len(resumed) == 2
    for name in ("classes.csv", "records.csv", "basins.csv"):
        assert (tmp_path / name).read_bytes() == (root / "a" / name).read_bytes(), name


def test_depth_counts_are_the_classifier_on_the_trained_networks(tmp_path):
    args = ("experiment=trained_classes_depth", "n_samples=40", "trainer.max_steps=600", "experiment.basin_per_class=0",
            "threads=1")
    summary = _run(tmp_path, *args)
    frame = _csv(tmp_path / "classes.csv").set_index("class")
    setup = build(make_cfg(*args))
    ids = np.arange(40)
    out = train(setup.arch, setup.task.x, setup.task.target, build_trainer(setup.cfg.trainer), 0, ids, ids,
                prior=setup.prior, keep_theta=True)
    r = classify_depth(setup.arch, out.theta[out.fitted], setup.task, 0.4)
    assert summary["n_fitted"] == out.fitted.sum() > 0
    assert frame["count"].to_dict() == r.counts(walsh=True)
    assert frame["count_confirmed"].to_dict() == r.counts()
    assert frame["prior_low"].isna().all()  # no prior_run given


def test_bad_settings_fail_before_any_work(llama_runs, tmp_path):
    root, _ = llama_runs
    bad = [(("experiment.circuits=walsh",), "experiment.circuits"),
           (("experiment.circuits=depth",), "model"),
           (("experiment.basin_directions=1",), "experiment.basin_directions"),
           ((f"experiment.prior_run={tmp_path / 'nothing'}",), "experiment.prior_run"),
           ((f"experiment.prior_run={root / 'a'}",), "needs a finished llamaizer run"),
           ((f"experiment.prior_run={root / 'prior'}", "model.hidden=[5,5]"), "its model differs"),
           (("num_shards=2",), "num_shards")]
    for overrides, message in bad:
        run_dir = tmp_path / "run"
        with pytest.raises(ConfigError, match=message):
            _run(run_dir, *TINY, *overrides)
        assert not any(run_dir.iterdir())
