"""The llama class-score kernel (volume.unit_scores) against the torch score it replaced
(bit for bit) and a per-network float64 oracle (float32 rounding), and its invariances: a
network's score depends on its parameters only (not the batch, its place in it, the threads)."""
import numpy as np
import pytest
import torch
from conftest import assert_network_only

from circuits.llama import llama_task, split_of
from circuits.reference import llama_network
from circuits.units import subset_index
from circuits.llama import torch_unit_class_score, unit_class_score
from volume.margins import BLOCK
from volume.nets import MLP
from volume.priors import Prior
from volume.unit_scores import UnitScorer

DEEP_3, OTHER_3 = 0b01101001, 0b00010110  # 3-bit parity of the distractors; another deep llama


def oracle(arch: MLP, task, variables: list[int], keys, theta: torch.Tensor) -> np.ndarray:
    """The score's definition, one network, unit and key at a time, in float64."""
    group = subset_index(task.n_vars, variables)
    signs = np.where(task.target, 1.0, -1.0)
    out = []
    for row in theta.double():
        pre = [z[0].numpy() for z in arch.preactivations(row[None], task.x.double())]
        y = pre[-1][:, 0]
        best = -np.inf
        for z in np.concatenate(pre[:-1], 1).T:  # every hidden unit
            for key in keys:
                s = np.where((int(key) >> group) & 1, 1.0, -1.0)
                best = max(best, (s * z).min() / (np.abs(z).max() + 1e-300))
        out.append(min((signs * y).min() / (np.abs(y).max() + 1e-300), best))
    return np.array(out)


def perturbed_llamas(m: int, n_each: int, seed: int) -> tuple[MLP, torch.Tensor, int]:
    """The hand-built deep llama network plus Gaussian noise of growing size: a population
    with scores of both signs (a prior sample almost never has a positive one)."""
    arch, theta, info = llama_network("deep_used", m)
    g = torch.Generator().manual_seed(seed)
    noise = torch.cat([eps * torch.randn(n_each, arch.n_params, generator=g, dtype=torch.float64)
                       for eps in (0.0, 0.03, 0.1, 0.3, 1.0)])
    return arch, theta.double() + noise, info["h"]


def check_against_oracle(arch, task, variables, keys, theta):
    got = unit_class_score(arch, task, variables, keys)(theta).numpy()
    want = oracle(arch, task, variables, keys, theta)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # float32 forward
    clear = np.abs(want) > 1e-5
    assert np.array_equal(got[clear] > 0, want[clear] > 0)
    return got


def test_kernel_equals_the_torch_score_bit_for_bit_on_prior_samples():
    task = llama_task(3)
    variables = split_of(task).distractors
    for widths, activation, bias in (([7, 40, 40, 1], "relu", True), ([7, 5, 9, 3, 1], "tanh", False),
                                     ([7, 6, 1], "sign", True)):
        arch = MLP(widths, activation, bias)
        theta = Prior().sample(arch, 3 * BLOCK + 5, 4, dtype=torch.float64)
        for keys in ([DEEP_3], [DEEP_3, OTHER_3, 0b1000_0000]):
            got = unit_class_score(arch, task, variables, keys)(theta)
            assert torch.equal(got, torch_unit_class_score(arch, task, variables, keys)(theta))


def test_kernel_equals_the_torch_score_and_the_oracle_on_both_signs():
    task = llama_task(3)
    variables = split_of(task).distractors
    arch, theta, h = perturbed_llamas(3, 12, 0)
    for keys in ([h], [OTHER_3], [OTHER_3, h]):
        got = check_against_oracle(arch, task, variables, keys, theta)
        assert torch.equal(torch.from_numpy(got), torch_unit_class_score(arch, task, variables, keys)(theta))
        if h in keys:
            assert (got > 0).sum() >= 12 and (got < 0).sum() >= 12  # both signs exercised
        else:
            assert (got < 0).all()


def test_controls_on_target_bits_and_a_prior_sample_against_the_oracle():
    task = llama_task(2)
    arch = MLP([6, 7, 5, 1])
    theta = Prior().sample(arch, 2 * BLOCK + 3, 1, dtype=torch.float64)
    check_against_oracle(arch, task, [0, 1], [0b1000], theta)
    check_against_oracle(arch, task, [0, 4], [0b0110, 0b0001], theta)


def test_hand_built_networks_in_and_out_of_the_class():
    task = llama_task(3)
    variables = split_of(task).distractors
    for kind in ("deep_used", "deep_inert", "shallow_used"):
        arch, theta, info = llama_network(kind, 3)
        assert unit_class_score(arch, task, variables, [info["h"]])(theta.double()).item() > 0
        assert unit_class_score(arch, task, variables, [info["h"] ^ 0xFF])(theta.double()).item() < 0
    arch, theta, _ = llama_network("direct", 3)
    assert unit_class_score(arch, task, variables, [DEEP_3])(theta.double()).item() < 0


def test_score_depends_on_the_network_only():
    """Bit-identical whatever the batch, the network's place in it and the thread count."""
    task = llama_task(3)
    variables = split_of(task).distractors
    arch, theta, h = perturbed_llamas(3, 2 * BLOCK // 5 + 1, 2)
    score = unit_class_score(arch, task, variables, [h, OTHER_3])
    assert_network_only(score, theta)
    assert torch.equal(score(theta), torch.cat([score(part) for part in theta.split(7)]))


def test_the_zero_network_scores_zero_and_bad_arguments_are_refused():
    task, arch = llama_task(3), MLP([7, 4, 1])
    assert unit_class_score(arch, task, [4, 5, 6], [DEEP_3])(torch.zeros(2, arch.n_params)).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="hidden layer"):
        UnitScorer(MLP([7, 1]), task, [4, 5, 6], [DEEP_3])
    with pytest.raises(ValueError, match="key"):
        UnitScorer(arch, task, [4, 5, 6], [])
