"""Batched many-seed training (volume/training/) and the trained-population experiments."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import check_kill_and_resume, run_cli
from conftest import run_in_process as _run
from volume.errors import ConfigError
from volume.experiments.path_dependence import collision, grouped_collision, shared_tv
from volume.functions import FunctionTable, unpack_bits
from volume.nets import MLP
from volume.priors import Prior
from volume.tasks import boolean_task
from tests.oracles import train_one_textbook
from volume.training import Trainer, build_trainer, train
from volume.training.order import ORDER_BLOCK, epoch_order, init_theta

ARCH = MLP([4, 6, 5, 1])
PRIOR = Prior()
TASK = boolean_task(4, "pm1", "dictator")
X, Y = TASK.x, TASK.target  # all 16 inputs of the 4-cube


TRAINERS = [
    Trainer("adam", lr=0.02, loss="mse", batch_size=0, max_steps=30),
    Trainer("adam", lr=0.02, loss="ce", batch_size=5, max_steps=30),  # 16 = 5 + 5 + 5 + 1
    Trainer("sgd", lr=0.05, momentum=0.9, loss="mse", batch_size=4, max_steps=30),
    Trainer("sgd", lr=0.1, momentum=0.0, loss="ce", batch_size=0, max_steps=30),
]


@pytest.mark.parametrize("trainer", TRAINERS, ids=lambda t: f"{t.optimizer}-{t.loss}-b{t.batch_size}")
def test_batched_equals_textbook_per_network_training(trainer):
    ids = np.arange(6)
    batched = train(ARCH, X, Y, trainer, seed=3, init_ids=ids, prior=PRIOR, keep_theta=True)
    theta0 = init_theta(ARCH, PRIOR, 3, ids)
    for j in ids:
        theta, steps, fitted = train_one_textbook(ARCH, theta0[j], X, Y, trainer, seed=3, order_id=int(j))
        assert batched.steps[j] == steps and batched.fitted[j] == fitted
        torch.testing.assert_close(batched.theta[j], theta, rtol=1e-4, atol=1e-5)
    # Stopping is per network: steps differ between networks.
    assert len(set(batched.steps.tolist())) >= 2


def test_result_does_not_depend_on_pool_size_or_company():
    trainer = Trainer("adam", lr=0.02, batch_size=5, max_steps=60)
    ids = np.arange(10)
    big = train(ARCH, X, Y, trainer, seed=1, init_ids=ids, prior=PRIOR, keep_theta=True, eval_x=X)
    small = train(ARCH, X, Y, Trainer(**{**trainer.__dict__, "pool": 3}), seed=1, init_ids=ids, prior=PRIOR,
                  keep_theta=True, eval_x=X)
    alone = train(ARCH, X, Y, trainer, seed=1, init_ids=ids[7:8], prior=PRIOR, keep_theta=True)
    np.testing.assert_array_equal(big.steps, small.steps)
    torch.testing.assert_close(big.theta, small.theta, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(big.theta[7:8], alone.theta, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(big.outputs, ARCH.forward(big.theta, X)[..., 0])


def test_stopping_is_per_network_fit_or_budget():
    trainer = Trainer("sgd", lr=0.02, momentum=0.5, batch_size=0, max_steps=25)
    out = train(ARCH, X, Y, trainer, seed=0, init_ids=np.arange(64), prior=PRIOR, keep_theta=True)
    correct = ((ARCH.forward(out.theta, X)[..., 0] > 0).numpy() == Y).all(1)
    np.testing.assert_array_equal(out.fitted, correct)  # fitted exactly when the final net fits
    assert out.fitted.any() and (~out.fitted).any()
    assert (out.steps[~out.fitted] == 25).all() and (out.steps[out.fitted] <= 25).all()
    assert set(out.stopped_reason) == {"fit", "budget"}
    # A network that fits at step s stops there: training it again with budget s gives it back.
    j = int(np.flatnonzero(out.fitted & (out.steps > 0))[0])
    again = train(ARCH, X, Y, Trainer(**{**trainer.__dict__, "max_steps": int(out.steps[j])}), seed=0,
                  init_ids=np.array([j]), prior=PRIOR, keep_theta=True)
    assert again.fitted[0]
    torch.testing.assert_close(again.theta[0], out.theta[j])


def test_data_orders_and_inits_are_counter_based():
    whole = epoch_order(7, np.arange(20), ORDER_BLOCK + 3, 16)
    assert all(sorted(row.tolist()) == list(range(16)) for row in whole)
    np.testing.assert_array_equal(epoch_order(7, np.array([13, 4]), ORDER_BLOCK + 3, 16), whole[[13, 4]])
    assert not torch.equal(epoch_order(7, np.arange(20), 0, 16), epoch_order(7, np.arange(20), 1, 16))
    theta = init_theta(ARCH, PRIOR, 2, np.array([5, 5, 2]))
    assert torch.equal(theta[0], theta[1])
    assert torch.equal(theta[2], init_theta(ARCH, PRIOR, 2, np.arange(6))[2])
    # The training stream differs from the prior-sampling stream of the same seed.
    assert not torch.equal(init_theta(ARCH, PRIOR, 2, np.arange(1)), PRIOR.sample(ARCH, 1, 2))


def test_bad_trainer_settings_raise_config_error():
    with pytest.raises(ConfigError, match="trainer.optimizer"):
        Trainer(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="trainer.loss"):
        Trainer(loss="hinge")
    with pytest.raises(ConfigError, match="trainer.lr"):
        Trainer(lr=0.0)
    with pytest.raises(ConfigError, match="trainer.beta2"):
        Trainer(beta2=1.0)
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        Trainer(max_steps=0)
    with pytest.raises(ConfigError, match="trainer: unknown key"):
        build_trainer({"optimizer": "adam", "learning_rate": 0.1})
    with pytest.raises(ConfigError, match="model.n_out"):
        train(MLP([4, 3, 2]), X, Y, Trainer(), init_ids=np.arange(2), prior=PRIOR)


SVP = ("experiment=sgd_vs_prior", "n_samples=300", "experiment.n_prior=20000", "task.n=5", "experiment.n_train=12",
       "experiment.split_seed=3", "experiment.rare_event_top=0", "trainer.max_steps=300")


def test_sgd_vs_prior_end_to_end_and_deterministic(tmp_path):
    proc = run_cli(*SVP, "threads=1", f"hydra.run.dir={tmp_path / 'a'}")
    assert proc.returncode == 0, proc.stderr
    _run(tmp_path / "b", *SVP, "threads=1")
    for name in ("functions.csv", "records.csv", "functions.npz", "prior_functions.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    records = pd.read_csv(tmp_path / "a" / "records.csv", dtype={"function": str})
    functions = pd.read_csv(tmp_path / "a" / "functions.csv", dtype={"function": str})
    summary = json.loads((tmp_path / "a" / "results.json").read_text())["summary"]
    fitted = records[records["stopped_reason"] == "fit"]
    assert len(records) == 300 and summary["n_fitted"] == len(fitted) > 0
    # P_SGD counts are exactly the fitted runs' final functions; every counted function fits S.
    assert fitted["function"].value_counts().sort_index().to_dict() == \
        functions[functions["count"] > 0].set_index("function")["count"].sort_index().to_dict()
    train_idx = summary["train_inputs"]
    target = boolean_task(5, "01", "or").target
    keys = np.array([[int(h, 16)] for h in functions["function"]], dtype=np.uint64)
    assert (unpack_bits(keys, 32)[:, train_idx] == target[train_idx]).all()
    assert functions["count_prior"].sum() == summary["n_consistent"]
    assert np.isclose(np.exp(functions.loc[functions["count"] > 0, "log_p"]).sum(), 1.0)
    # resume=true on a finished run hands back its summary without recomputing.
    assert _run(tmp_path / "a", *SVP, "threads=1", "resume=true") == summary


def test_rare_event_prior_agrees_with_counting(tmp_path):
    summary = _run(tmp_path, *SVP, "n_samples=100", "task.n=4", "experiment.n_train=6", "experiment.split_seed=0",
                   "model.hidden=[8]", "experiment.n_prior=200000", "experiment.rare_event_top=1",
                   "experiment.rare_event_below=1000000000", "+experiment.rare_event_options.n_particles=200",
                   "+experiment.rare_event_options.n_runs=4")
    frame = pd.read_csv(tmp_path / "functions.csv", dtype={"function": str})
    top = frame.iloc[0]  # training's most frequent function, also counted from the prior
    assert summary["n_consistent"] > 500 and top["count_prior"] > 100
    assert np.isfinite(top["log_p_prior_rare"]) and frame["log_p_prior_rare"].notna().sum() == 1
    # Subset simulation and plain counting estimate the same P_B(f | S): intervals overlap.
    assert top["ci_low_prior_rare"] <= top["ci_high_prior"] and top["ci_low_prior"] <= top["ci_high_prior_rare"]
    assert abs(top["log_p_prior_rare"] - top["log_p_prior"]) < 0.5


def test_killed_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    from volume import trained

    args = (*SVP[:-1], "trainer.max_steps=100", "n_samples=120", "checkpoint_seconds=0")
    monkeypatch.setattr(trained, "TRAIN_BLOCK", 40)
    check_kill_and_resume(tmp_path, monkeypatch, args, trained, 3, ("records.csv", "functions.csv"))


def test_path_dependence_end_to_end(tmp_path):
    summary = _run(tmp_path, "experiment=path_dependence", "n_samples=60", "experiment.n_prior=4000", "task.n=5",
                   "experiment.n_train=12", "experiment.split_seed=3", "experiment.widths=[4,32]",
                   "experiment.n_inits=4", "experiment.runs_per_init=3", "experiment.n_boot=20",
                   "trainer.batch_size=4", "trainer.max_steps=300")
    widths = pd.read_csv(tmp_path / "widths.csv")
    records = pd.read_csv(tmp_path / "records.csv", dtype={"function": str})
    assert widths["width"].tolist() == [4, 32] and len(summary["widths"]) == 2
    assert len(records) == 2 * (60 + 12) and (tmp_path / "path_dependence.png").exists()
    test_idx = np.setdiff1d(np.arange(32), summary["train_inputs"])
    for width, row in widths.set_index("width").iterrows():
        runs = records[(records["width"] == width) & (records["kind"] == "independent")
                       & (records["stopped_reason"] == "fit")]
        bits = unpack_bits(np.array([[int(h, 16)] for h in runs["function"]], dtype=np.uint64), 32)[:, test_idx]
        _, counts = np.unique(bits, axis=0, return_counts=True)
        n = counts.sum()
        assert row["collision"] == pytest.approx((counts * (counts - 1)).sum() / (n * (n - 1)))
        assert row["collision_low"] <= row["collision"] <= row["collision_high"] <= 1


def test_bad_experiment_settings_fail_before_work(tmp_path):
    with pytest.raises(ConfigError, match="trainer.batch_size"):
        _run(tmp_path / "a", "experiment=path_dependence", "trainer.batch_size=0")
    with pytest.raises(ConfigError, match="experiment.n_train"):
        _run(tmp_path / "b", "experiment=sgd_vs_prior", "experiment.n_train=500")
    with pytest.raises(ConfigError, match="num_shards"):
        _run(tmp_path / "c", "experiment=sgd_vs_prior", "num_shards=2")
    assert not any((tmp_path / d / "results.json").exists() for d in "abc")


def test_collision_u_statistic_is_unbiased_with_honest_intervals():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    truth = float((p**2).sum())
    rng = np.random.default_rng(0)
    values = [np.exp(collision(rng.multinomial(25, p)).log_p) for _ in range(3000)]
    assert abs(np.mean(values) - truth) < 4 * np.std(values) / np.sqrt(len(values))
    # Plug-in sum (c/n)^2 is biased upwards by (1 - sum p^2)/n; the U-statistic is not.
    assert np.mean(values) < truth + (1 - truth) / 25 / 2
    # The normal interval is honest once there are a hundred or so draws.
    ests = [collision(rng.multinomial(200, p)) for _ in range(2000)]
    covered = np.mean([np.exp(e.ci[0]) <= truth <= np.exp(e.ci[1]) for e in ests])
    assert 0.91 <= covered <= 0.985
    bound = collision(np.ones(40, dtype=int))  # no two draws coincide
    assert bound.bound == "upper" and np.exp(bound.log_p) == pytest.approx(1 - 0.05 ** (1 / 20))


def test_grouped_collision_and_shared_tv_exact_cases():
    keys = np.array([[1], [1], [2], [3], [3], [3]], dtype=np.uint64)
    group = np.array([0, 0, 0, 1, 1, 1])
    # group 0: one coinciding pair of 3 -> 1/3; group 1: all coincide -> 1.
    assert np.exp(grouped_collision(group, keys).log_p) == pytest.approx((1 / 3 + 1) / 2)
    sgd, post = FunctionTable(8), FunctionTable(8)
    sgd.add_counts(np.array([[1], [2]], np.uint64), np.array([3, 1]))
    post.add_counts(np.array([[1], [2], [5]], np.uint64), np.array([1, 1, 2]))
    out = shared_tv(sgd, post, n_boot=50, seed=0)
    assert out["tv"] == pytest.approx(0.25) and out["n_shared"] == 2
    assert out["mass_sgd"] == 1.0 and out["mass_prior"] == 0.5
    assert out["ci"][0] <= out["ci"][1]
