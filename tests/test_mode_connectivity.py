"""Hidden-unit permutations and weight matching (volume/alignment.py) and the experiment
mode_connectivity (loss barriers on straight paths between trained networks)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import check_kill_and_resume, make_cfg
from conftest import run_in_process as _run
from volume.alignment import hidden_widths, matching_objective, permute, weight_matching
from volume.errors import ConfigError
from volume.experiments.mode_connectivity import barrier, held_out_change, path_curves
from volume.experiments import build
from volume.nets import MLP
from volume.priors import Prior
from volume.tasks import boolean_task
from volume.training import build_trainer, train

PRIOR = Prior(sigma_b=1.0)
CUBE = boolean_task(5, "01", "majority")
TS = np.linspace(0.0, 1.0, 11)


def _random_perms(arch: MLP, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.stack([rng.permutation(w) for _ in range(n)]) for w in hidden_widths(arch)]


def test_permutation_leaves_the_function_unchanged_exactly():
    arch = MLP([5, 6, 7, 1])
    theta = PRIOR.sample(arch, 8, seed=1)
    # Dyadic parameters (multiples of 1/16, small): every sum is exact in float32 whatever its
    # order, so the permuted network's outputs must equal the original's bit for bit.
    dyadic = torch.round(theta * 16) / 16
    perms = _random_perms(arch, 8, seed=2)
    permuted = permute(arch, dyadic, perms)
    assert not torch.equal(permuted, dyadic)
    assert torch.equal(arch.forward(permuted, CUBE.x), arch.forward(dyadic, CUBE.x))
    # General parameters: the first hidden layer is exactly the original's units reordered,
    # and the outputs agree to rounding (only the order of the last sums changes).
    general = permute(arch, theta, perms)
    pre_original, pre_permuted = arch.preactivations(theta, CUBE.x)[0], arch.preactivations(general, CUBE.x)[0]
    for j in range(8):
        assert torch.equal(pre_permuted[j], pre_original[j][:, perms[0][j]])
    torch.testing.assert_close(arch.forward(general, CUBE.x), arch.forward(theta, CUBE.x), rtol=0, atol=1e-5)
    # The inverse permutations give the parameters back exactly.
    inverse = [np.argsort(p, axis=1) for p in perms]
    assert torch.equal(permute(arch, general, inverse), theta)
    with pytest.raises(ValueError, match="permutation"):
        permute(arch, theta, [np.zeros(6, int), np.arange(7)])


@pytest.mark.parametrize("hidden", [[12], [10, 9]], ids=["one_layer", "two_layers"])
def test_weight_matching_recovers_a_planted_permutation(hidden):
    arch = MLP([5, *hidden, 1])
    a = PRIOR.sample(arch, 10, seed=3)
    b = permute(arch, a, _random_perms(arch, 10, seed=4))
    perms, passes = weight_matching(arch, a, b, seeds=np.arange(10))
    assert torch.equal(permute(arch, b, perms), a)
    np.testing.assert_allclose(matching_objective(arch, a, b, perms), (a.double() ** 2).sum(1).numpy(), rtol=1e-12)
    assert (passes >= 1).all() and (passes <= 100).all()
    x, y = CUBE.x, CUBE.target
    before = path_curves(arch, a, b, x, y, "mse", TS)
    after = path_curves(arch, a, permute(arch, b, perms), x, y, "mse", TS)
    assert (np.ptp(after["loss"], axis=1) == 0).all()  # the same network at every t ...
    assert (barrier(after["loss"], TS) == 0).all()
    assert (np.ptp(before["loss"], axis=1) > 0.01).all()  # ... which it is not before alignment


def test_one_layer_matching_is_the_global_optimum_and_two_layers_a_fixed_point():
    arch = MLP([3, 5, 1])
    a, b = PRIOR.sample(arch, 4, seed=5), PRIOR.sample(arch, 4, seed=6)
    perms, _ = weight_matching(arch, a, b, seeds=np.arange(4))
    found = matching_objective(arch, a, b, perms)
    every = [matching_objective(arch, a, b, [np.array(p)]) for p in itertools.permutations(range(5))]
    np.testing.assert_allclose(found, np.max(every, axis=0), rtol=1e-12)
    # Two layers: no single layer's permutation can be improved with the other held fixed.
    arch2 = MLP([3, 4, 5, 1])
    a, b = PRIOR.sample(arch2, 4, seed=7), PRIOR.sample(arch2, 4, seed=8)
    perms, _ = weight_matching(arch2, a, b, seeds=np.arange(4))
    found = matching_objective(arch2, a, b, perms)
    start = matching_objective(arch2, a, b, [np.arange(4), np.arange(5)])
    assert (found >= start - 1e-12).all()
    for layer, width in enumerate((4, 5)):
        for p in itertools.permutations(range(width)):
            trial = [q.copy() for q in perms]
            trial[layer][:] = p
            assert (matching_objective(arch2, a, b, trial) <= found + 1e-12).all()


def test_barrier_of_a_network_with_itself_is_zero():
    arch = MLP([5, 16, 1])
    a = PRIOR.sample(arch, 5, seed=9)
    for loss in ("mse", "ce"):
        curves = path_curves(arch, a, a, CUBE.x, CUBE.target, loss, TS, test_x=CUBE.x[:7])
        assert (barrier(curves["loss"], TS) == 0).all() and (barrier(curves["error"], TS) == 0).all()
        assert (held_out_change(curves["bits"]) == 0).all()


def test_barrier_formula_and_convex_paths():
    ts = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(barrier(np.array([[0.0, 1.0, 0.0], [1.0, 3.0, 2.0], [2.0, 0.0, 2.0]]), ts),
                               [1.0, 1.5, 0.0])
    # A perceptron's output is linear in theta, so mse and logistic loss are convex along any
    # straight path: the loss stays below the chord and the barrier is 0 up to rounding.
    arch = MLP([5, 1])
    a, b = PRIOR.sample(arch, 20, seed=10), PRIOR.sample(arch, 20, seed=11) * 3
    for loss in ("mse", "ce"):
        curve = path_curves(arch, a, b, CUBE.x, CUBE.target, loss, TS)["loss"]
        assert (np.diff(curve, 2, axis=1) >= -1e-12).all()
        assert (barrier(curve, TS) <= 1e-12).all()


SMALL = ("experiment=mode_connectivity", "task.n=5", "experiment.n_train=12", "experiment.split_seed=3",
         "experiment.widths=[4,16]", "experiment.n_pairs=6", "experiment.n_points=9", "experiment.n_boot=200",
         "trainer.max_steps=300", "threads=1")


def _direct_barrier(arch: MLP, theta_a: torch.Tensor, theta_b: torch.Tensor, x: torch.Tensor, y: np.ndarray,
                    ts: np.ndarray) -> float:
    """Loss barrier by the textbook formula, one t at a time (no shared code but the forward)."""
    sign = torch.from_numpy(y).double() * 2 - 1
    losses = [float(((arch.forward(((1 - t) * theta_a + t * theta_b).double()[None], x.double())[0, :, 0] - sign)
                     ** 2).mean()) for t in ts]
    return max(loss - ((1 - t) * losses[0] + t * losses[-1]) for t, loss in zip(ts, losses))


def test_end_to_end_small_run(tmp_path):
    summary = _run(tmp_path, *SMALL)
    widths = pd.read_csv(tmp_path / "widths.csv")
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert widths["width"].tolist() == [4, 16] and (tmp_path / "mode_connectivity.png").exists()
    for column in ("n_pairs", "barrier_before", "barrier_before_low", "barrier_after_high", "connected_after",
                   "connected_after_low", "error_barrier_after", "held_out_change_before", "mean_units_moved"):
        assert column in widths.columns, column
    assert (widths["n_pairs"] == widths["n_fitted"] // 2).all() and (widths["n_pairs"] > 0).all()
    assert set(curves["alignment"]) == {"before", "after"} and len(curves) == 2 * 2 * 9
    # Alignment starts from the identity and only ever improves the objective.
    assert (pairs["objective_after"] >= pairs["objective_before"] - 1e-9).all()
    assert (pairs["distance_after"] <= pairs["distance_before"] + 1e-9).all()
    assert (pairs[["barrier_before", "barrier_after", "error_barrier_before"]] >= 0).all().all()
    threshold = summary["threshold"]
    assert threshold == 0.01  # mse: 1% of the loss of the zero output
    for width, row in widths.set_index("width").iterrows():
        part = pairs[pairs["width"] == width]
        assert row["barrier_before"] == pytest.approx(part["barrier_before"].mean())
        assert row["barrier_after_low"] <= row["barrier_after"] <= row["barrier_after_high"]
        assert row["connected_after"] == pytest.approx((part["barrier_after"] <= threshold).mean())
    # Retrain one pair from its (seed, run id) and recompute its barrier from scratch.
    setup = build(make_cfg(*SMALL))
    task, idx, arch = setup.task, np.array(summary["train_inputs"]), MLP([5, 16, 1])
    pair = pairs[pairs["width"] == 16].iloc[0]
    runs = np.array([pair["run_a"], pair["run_b"]])
    out = train(arch, task.x[idx], task.target[idx], build_trainer(setup.cfg.trainer), 0, runs, runs,
                prior=setup.prior, keep_theta=True)
    assert out.fitted.all() and out.steps.tolist() == [pair["steps_a"], pair["steps_b"]]
    direct = _direct_barrier(arch, out.theta[0], out.theta[1], task.x[idx], task.target[idx], np.linspace(0, 1, 9))
    assert pair["barrier_before"] == pytest.approx(direct, abs=1e-6)


def test_killed_run_resumes_to_the_same_files(tmp_path, monkeypatch):
    from volume import trained

    args = (*SMALL, "checkpoint_seconds=0")
    monkeypatch.setattr(trained, "TRAIN_BLOCK", 5)  # 12 runs per width: three blocks each
    # killed in the second width, after the first width's pairs are stored
    check_kill_and_resume(tmp_path, monkeypatch, args, trained, 5, ("widths.csv", "pairs.csv", "curves.csv"))


@pytest.mark.parametrize("override, key", [
    ("experiment.widths=[8,0]", "experiment.widths"),
    ("experiment.n_pairs=0", "experiment.n_pairs"),
    ("experiment.n_points=2", "experiment.n_points"),
    ("experiment.tolerance=-0.1", "experiment.tolerance"),
    ("model.activation=tanh", "model"),
    ("model=resmlp", "model"),
    ("experiment.n_train=40", "experiment.n_train"),
])
def test_bad_config_raises_config_error_before_work(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        _run(tmp_path, *SMALL, override)
    assert not any(tmp_path.iterdir())
