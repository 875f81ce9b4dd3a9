"""The depth class-score kernel (volume.residual_scores) against the torch score it replaced and a
float64 evaluation of the same definition (float32 rounding), on both signs of every class,
and its invariances: a network's score depends on its parameters only."""
import numpy as np
import pytest
import torch
from conftest import assert_network_only

from circuits import depth as cdepth
from circuits.reference import parity_chain, parity_single, parity_tree
from volume.residual_scores import DepthScorer, _parallel, _serial, _single
from volume.estimators.scores import TINY
from circuits.depth import class_score, torch_class_score
from volume.margins import BLOCK
from volume.nets import ResidualMLP
from volume.priors import Prior

ROUNDING = 1e-6  # float32 rounding of a power fraction in [0, 1] (measured: <= 2.4e-7)


def float64_score(arch, task, T, tau, name, theta) -> np.ndarray:
    """The score's definition through the torch functions in float64."""
    theta, x = theta.double(), task.x.double()
    y = arch.forward(theta, x)[..., 0]
    signs = torch.from_numpy(np.where(task.target, 1.0, -1.0))
    target = (y * signs).amin(1) / (y.abs().amax(1) + TINY)
    cls = cdepth.class_scores(cdepth.block_fractions(arch, theta, x), T, tau)[name]
    return torch.minimum(target, cls).numpy()


def perturbed(arch: ResidualMLP, theta: torch.Tensor, n_each: int, seed: int) -> torch.Tensor:
    """A hand-built circuit plus Gaussian noise of growing size: scores of both signs."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([theta.double() + eps * torch.randn(n_each, arch.n_params, generator=g, dtype=torch.float64)
                      for eps in (0.0, 0.01, 0.03, 0.1, 0.3)])


def check(arch, task, T, tau, name, theta) -> np.ndarray:
    got = class_score(arch, task, tau, name)(theta).numpy()
    for want in (torch_class_score(arch, task, tau, name)(theta).numpy(),
                 float64_score(arch, task, T, tau, name, theta)):
        assert got.dtype == np.float64 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=10 * ROUNDING)
        clear = np.abs(want) > 10 * ROUNDING
        assert np.array_equal(got[clear] > 0, want[clear] > 0)
    return got


@pytest.mark.parametrize("truth", ["serial", "parallel", "single"])
def test_kernel_matches_torch_on_both_signs_of_every_class(truth):
    task = cdepth.parity_task(4)
    T = cdepth.target_set(task)
    arch, theta = {"serial": parity_chain(5, 4, (0, 2, 4)), "parallel": parity_tree(5, 4, (0, 1, 3)),
                   "single": parity_single(5, 4, 2)}[truth]
    theta = perturbed(arch, theta, 10, 0)
    for name in cdepth.LABELS:
        got = check(arch, task, T, cdepth.DEFAULT_TAU, name, theta)
        assert (got[0] > 0) == (name == truth)  # the planted circuit itself
        if name == truth:
            assert (got > 0).sum() >= 10 and (got < 0).sum() >= 5  # both signs exercised


@pytest.mark.parametrize("arch, bits", [(ResidualMLP(4, 4, 4, 6), None),
                                        (ResidualMLP(5, 3, 3, 5, bias=False), [1, 2, 4, 5]),
                                        (ResidualMLP(4, 2, 5, 4, activation="tanh"), None),
                                        (ResidualMLP(4, 1, 4, 6), None)])  # one or two blocks: no placements
def test_kernel_matches_torch_on_prior_samples(arch, bits):
    task = cdepth.parity_task(arch.n_in, bits)
    T = cdepth.target_set(task)
    theta = Prior().sample(arch, 2 * BLOCK + 3, 5, dtype=torch.float64)
    for name in cdepth.LABELS:
        for tau in (0.2, cdepth.DEFAULT_TAU):
            check(arch, task, T, tau, name, theta)


def test_score_depends_on_the_network_only():
    task = cdepth.parity_task(4)
    arch, theta = parity_tree(5, 4, (0, 1, 3))
    theta = perturbed(arch, theta, 8, 1)
    score = class_score(arch, task, cdepth.DEFAULT_TAU, "parallel")
    assert_network_only(score, theta)


def test_bad_arguments_are_refused():
    task = cdepth.parity_task(4)
    with pytest.raises(ValueError, match="one output"):
        DepthScorer(ResidualMLP(4, 2, 3, 5, n_out=2), task, 15, 0.4, "serial")
    with pytest.raises(ValueError, match="name"):
        DepthScorer(ResidualMLP(4, 2, 3, 5), task, 15, 0.4, "chain")


@pytest.mark.parametrize("T", [0b1111, 0b10111, 0b111])
def test_running_maxima_equal_the_listed_placements(T):
    """The kernel's serial / parallel / single readings (running maxima over blocks) against
    circuits.depth.reading_scores (every placement listed): only min and max, so exactly equal."""
    g = torch.Generator().manual_seed(T)
    for n_blocks in range(1, 8):
        frac = torch.rand(20, n_blocks, 32, generator=g)
        want = cdepth.reading_scores(frac, T, 0.4)
        a = (frac - 0.4).numpy()
        scorer = DepthScorer(ResidualMLP(5, n_blocks, 3, 5), cdepth.parity_task(5), T, 0.4, "serial")
        run = np.empty(n_blocks, np.float32)
        for b in range(len(frac)):
            assert _serial(a[b], scorer.chains, run) == want["serial"][b].item()
            assert _parallel(a[b], T, scorer.splits) == want["parallel"][b].item()
            assert _single(a[b], T, scorer.inter) == want["single"][b].item()
