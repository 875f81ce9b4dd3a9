"""The margin-score kernels (volume.margins; ResidualMLPs: volume.residual_scores) against a
plain per-network float64 forward, and their invariances: a network's score depends on its
parameters only (not on the batch, its place in it, or the thread count)."""
import numpy as np
import pytest
import torch
from conftest import assert_network_only

from volume.estimators.scores import target_margin_score
from volume.margins import BLOCK, TILE, MarginScorer, cube_halves
from volume.nets import MLP, ResidualMLP
from volume.priors import Prior
from volume.residual_scores import ResidualMarginScorer
from volume.tasks import boolean_task


def oracle(arch, x, target, theta, output=0, margin=0.0) -> np.ndarray:
    """The score's definition, one network at a time, in float64."""
    signs = np.where(target, 1.0, -1.0)
    out = []
    for row in theta.double():
        y = arch.forward(row[None], x.double())[0, :, output].numpy()
        out.append(((signs * y).min() - margin) / (np.abs(y).max() + margin + 1e-300))
    return np.array(out)


def check(arch, x, target, theta, output=0, margin=0.0, scorer=MarginScorer):
    got = scorer(arch, x, target, output, margin)(theta).numpy()
    want = oracle(arch, x, target, theta, output, margin)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # float32 forward
    clear = np.abs(want) > 1e-4
    assert np.array_equal(got[clear] > 0, want[clear] > 0)


CASES = [  # widths (input width first), activation, bias, cube n, output, margin
    ([12, 1], "relu", True, 12, 0, 0.0),  # 4,096 inputs: a perceptron on the cube (outer sums)
    ([4, 1], "relu", False, 4, 0, 0.0),  # no bias
    ([6, 3], "relu", True, 6, 2, 0.3),  # perceptron with 3 outputs, the last one, margin
    ([7, 40, 40, 1], "relu", True, 7, 0, 0.0),  # the default model
    ([5, 8, 2], "tanh", False, 5, 1, 0.1),
    ([4, 6, 1], "sign", True, 4, 0, 0.0),
    ([3, 5, 1], "identity", True, 3, 0, 0.0),
]


@pytest.mark.parametrize("outer_sums", [True, False])  # False: perceptrons on the cube take the tiled kernel
@pytest.mark.parametrize("widths, activation, bias, n, output, margin", CASES)
def test_scores_match_per_network_oracle(widths, activation, bias, n, output, margin, outer_sums):
    arch = MLP(widths, activation, bias)
    task = boolean_task(n, "pm1")
    target = np.asarray(task.x[:, 0] > 0) ^ np.asarray(task.x[:, -1] > 0)
    theta = Prior().sample(arch, 2 * BLOCK + 5, 3, dtype=torch.float64)  # not a multiple of BLOCK
    scorer = lambda *args: MarginScorer(*args, outer_sums=outer_sums)  # noqa: E731
    assert (scorer(arch, task.x, target).cube is not None) == (outer_sums and len(widths) == 2)
    check(arch, task.x, target, theta, output, margin, scorer)


def test_inputs_not_a_multiple_of_the_tile_and_one_sided_targets():
    """Real-valued inputs, N = TILE + 77 (a partial last tile), and targets that are all true
    or all false (one part of the min/max split is empty)."""
    arch = MLP([5, 1])
    x = torch.randn(TILE + 77, 5, generator=torch.Generator().manual_seed(0))
    theta = Prior().sample(arch, 21, 0, dtype=torch.float64)
    for target in (np.arange(TILE + 77) % 3 == 0, np.ones(TILE + 77, bool), np.zeros(TILE + 77, bool)):
        check(arch, x, target, theta)


@pytest.mark.parametrize("n, encoding, bias, n_out, output, margin", [
    (9, "pm1", True, 1, 0, 0.0), (5, "01", False, 2, 1, 0.2), (2, "pm1", True, 1, 0, 0.0)])
def test_cube_perceptrons_in_any_row_order_and_any_target(n, encoding, bias, n_out, output, margin):
    """The outer-sum kernel (inputs a full cube): rows shuffled, targets with one distinct row
    per setting of the first half (random), two (a dictator) and one (constant)."""
    arch, task = MLP([n, n_out], "relu", bias), boolean_task(n, encoding)
    rng = np.random.default_rng(n)
    order = rng.permutation(2 ** n)
    theta = Prior().sample(arch, BLOCK + 3, 5, dtype=torch.float64)
    for target in (rng.random(2 ** n) < 0.5, np.asarray(task.x[:, -1] > 0.5), np.ones(2 ** n, bool)):
        assert cube_halves(np.asarray(task.x[order]), target[order]) is not None
        check(arch, task.x[order], target[order], theta, output, margin)


def test_inputs_that_are_not_a_cube_take_the_tiled_kernel():
    cube = np.asarray(boolean_task(4, "pm1").x)
    repeated = cube.copy()
    repeated[3] = repeated[2]
    three_values = cube.copy()
    three_values[0, 0] = 0.5
    for x in (repeated, three_values, cube[:8]):
        assert cube_halves(x, np.ones(len(x), bool)) is None
    arch, target = MLP([4, 1]), np.arange(16) % 3 == 0
    assert MarginScorer(arch, torch.from_numpy(repeated), target).cube is None
    theta = Prior().sample(arch, 7, 0, dtype=torch.float64)
    check(arch, torch.from_numpy(repeated), target, theta)


def test_single_network_and_empty_batch():
    arch, task = MLP([7, 40, 40, 1]), boolean_task(7, "pm1")
    target = np.asarray(task.x[:, 1] > 0)
    score = MarginScorer(arch, task.x, target)
    theta = Prior().sample(arch, 1, 0, dtype=torch.float64)
    np.testing.assert_allclose(score(theta).numpy(), oracle(arch, task.x, target, theta), rtol=1e-4, atol=1e-5)
    assert score(theta[:0]).shape == (0,)


def test_the_zero_network_scores_zero():
    arch, task = MLP([3, 1]), boolean_task(3, "pm1")
    assert MarginScorer(arch, task.x, np.ones(8, bool))(torch.zeros(2, arch.n_params)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("widths, outer_sums", [([12, 1], True), ([12, 1], False), ([7, 40, 40, 1], True)])
def test_score_depends_on_the_network_only(widths, outer_sums):
    """Bit-identical whatever the batch, the network's place in it and the thread count
    (BLAS's block GEMM would break this: it rounds edge columns differently)."""
    arch, task = MLP(widths), boolean_task(widths[0], "pm1")
    score = MarginScorer(arch, task.x, np.asarray(task.x[:, 0] > 0), outer_sums=outer_sums)
    theta = Prior().sample(arch, 3 * BLOCK + 1, 1, dtype=torch.float64)
    assert_network_only(score, theta)


def test_target_margin_score_routes_mlps_and_residual_mlps_to_kernels():
    task = boolean_task(4, "pm1")
    target = np.asarray(task.x[:, 0] > 0)
    assert isinstance(target_margin_score(MLP([4, 3, 1]), task.x, target), MarginScorer)
    res = ResidualMLP(4, 2, 3, 5)
    assert isinstance(target_margin_score(res, task.x, target), ResidualMarginScorer)
    theta = Prior().sample(res, 9, 0, dtype=torch.float64)
    np.testing.assert_allclose(target_margin_score(res, task.x, target)(theta).numpy(),
                               oracle(res, task.x, target, theta), rtol=1e-4, atol=1e-5)


RESIDUAL = [  # n_in, blocks, block width, stream, n_out, activation, bias, output, margin
    (4, 4, 4, 6, 1, "relu", True, 0, 0.0),  # the depth experiment's model
    (5, 2, 3, 7, 3, "tanh", False, 2, 0.2),
    (3, 1, 2, 3, 2, "sign", True, 1, 0.0),
]


@pytest.mark.parametrize("n_in, blocks, width, stream, n_out, activation, bias, output, margin", RESIDUAL)
def test_residual_scores_match_per_network_oracle(n_in, blocks, width, stream, n_out, activation, bias, output, margin):
    arch = ResidualMLP(n_in, blocks, width, stream, n_out, activation, bias)
    x = torch.randn(300, n_in, generator=torch.Generator().manual_seed(1))  # not a cube: any inputs
    theta = Prior().sample(arch, 2 * BLOCK + 5, 2, dtype=torch.float64)
    own = np.asarray(arch.forward(theta[:1], x.double())[0, :, output] > 0)  # network 0 computes it: score > 0
    for target in (np.arange(300) % 3 == 0, np.ones(300, bool), np.zeros(300, bool), own):
        check(arch, x, target, theta, output, margin, ResidualMarginScorer)
    assert ResidualMarginScorer(arch, x, own, output)(theta[:1]).item() > 0
    assert_network_only(ResidualMarginScorer(arch, x, target, output, margin), theta)
