"""The fused sample + forward + key kernel: same parameters and (up to float32 rounding near 0)
same outputs and keys as the torch path; bit-identical across thread counts and batch sizes."""
import numba
import numpy as np
import pytest
import torch

from volume import fused
from volume.functions import output_keys, unpack_bits
from volume.nets import MLP, ResidualMLP
from volume.population import CHUNK, batch_keys, torch_keys
from volume.priors import Prior
from volume.tasks import boolean_task, digits_task

CASES = [  # widths (input width from the task), activation, bias, prior, task n, output
    ([40, 40, 1], "relu", True, Prior(), 7, 0),
    ([], "relu", True, Prior(sigma_b=0.5), 1, 0),
    ([8], "tanh", False, Prior("uniform"), 5, 0),
    ([5, 3], "sign", True, Prior(sigma_w=2.0, fan_in_scaling=False), 4, 0),
    ([6], "identity", True, Prior(), 3, 0),
    ([12, 2], "relu", True, Prior("uniform", sigma_b=0.1), 8, 1),  # 256 inputs: 4 words, 2nd output
]


def reference(arch, prior, task, seed, first, n, output):
    """Outputs of the torch path on the very parameters prior.sample gives."""
    theta = prior.sample(arch, n, seed, offset=first)
    with torch.inference_mode():
        return arch.forward(theta, task.x)[..., output].numpy()


@pytest.mark.parametrize("hidden, activation, bias, prior, n, output", CASES)
def test_outputs_and_keys_match_torch_path(hidden, activation, bias, prior, n, output):
    task = boolean_task(n, encoding="pm1" if activation == "identity" else "01")
    arch = MLP([n, *hidden, output + 1], activation, bias)
    keys, outputs = fused.mlp_outputs(arch, prior, task, 11, 1000, 300, output)
    want = reference(arch, prior, task, 11, 1000, 300, output)
    # Same parameters (a different generator would give unrelated outputs); only rounding differs.
    np.testing.assert_allclose(outputs, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    bits = unpack_bits(keys, task.n_inputs)
    np.testing.assert_array_equal(bits, outputs > 0)  # the packing: bit i is output i > 0
    clear = np.abs(want) > 1e-4
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(bits[clear], want[clear] > 0)
    assert keys.shape == (300, -(-task.n_inputs // 64))


def test_keys_on_digits_inputs():
    # 1797 real-valued inputs: 29 words, the last one partly used.
    task = digits_task("scaled")
    arch = MLP([task.x.shape[1], 10, 1])
    keys, outputs = fused.mlp_outputs(arch, Prior(), task, 3, 0, 40)
    want = reference(arch, Prior(), task, 3, 0, 40, 0)
    np.testing.assert_allclose(outputs, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    clear = np.abs(want) > 1e-4
    np.testing.assert_array_equal(unpack_bits(keys, task.x.shape[0])[clear], want[clear] > 0)
    assert not np.any(keys[:, -1] >> np.uint64(task.x.shape[0] % 64))  # padding bits stay 0


def test_default_population_keys_match_torch_keys():
    arch, prior, task = MLP([7, 40, 40, 1]), Prior(), boolean_task(7)
    n = 3 * CHUNK + 17
    got = batch_keys(arch, prior, task, 5, range(4), n)
    want = torch_keys(arch, prior, task, 5, range(4), n)
    assert got.shape == want.shape == (n, 2)
    # A key could differ only where some output is within rounding of 0; for this seed none does
    # (measured: every key equal), so any difference is a bug, not rounding.
    np.testing.assert_array_equal(got, want)


def test_bit_identical_across_threads_and_batches():
    arch, prior, task = MLP([7, 40, 40, 1]), Prior(), boolean_task(7)
    n = 5 * CHUNK - 100
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one_thread = batch_keys(arch, prior, task, 2, range(5), n)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        whole = batch_keys(arch, prior, task, 2, range(5), n)
        pieces = np.concatenate([batch_keys(arch, prior, task, 2, range(c, c + 1), n) for c in range(5)])
        split = np.concatenate([fused.mlp_keys(arch, prior, task, 2, first, size)
                                for first, size in [(0, 1), (1, 700), (701, 3), (704, n - 704)]])
    finally:
        numba.set_num_threads(before)
    for other in (one_thread, pieces, split):
        assert np.array_equal(whole, other)


def test_dispatch_and_bad_input():
    task = boolean_task(4)
    res = ResidualMLP(4, 2, 6, 6)
    assert not fused.supports(res) and fused.supports(MLP([4, 1]))
    theta = Prior().sample(res, CHUNK, 0)
    with torch.inference_mode():
        want = output_keys(res.forward(theta, task.x)[..., 0])
    assert np.array_equal(batch_keys(res, Prior(), task, 0, range(1), CHUNK), want)  # torch path
    with pytest.raises(ValueError, match="MLPs only"):
        fused.mlp_keys(res, Prior(), task, 0, 0, 10)
    with pytest.raises(ValueError, match="output"):
        fused.mlp_keys(MLP([4, 3, 1]), Prior(), task, 0, 0, 10, output=1)
    with pytest.raises(ValueError, match="width"):
        fused.mlp_keys(MLP([5, 3, 1]), Prior(), task, 0, 0, 10)
    assert fused.mlp_keys(MLP([4, 3, 1]), Prior(), task, 0, 0, 0).shape == (0, 1)
    assert batch_keys(MLP([4, 3, 1]), Prior(), task, 0, range(2, 3), CHUNK).shape == (0, 1)


@pytest.mark.parametrize("widths, activation, bias", [([7, 40, 40, 1], "relu", True), ([5, 6, 3, 2], "tanh", False),
                                                      ([4, 3, 1], "sign", True)])
def test_preactivations_match_the_torch_forward_and_depend_on_the_network_only(widths, activation, bias):
    arch = MLP(widths, activation, bias)
    task = boolean_task(widths[0], "pm1")
    theta = Prior().sample(arch, fused.BLOCK + 3, 5, dtype=torch.float64)  # not a multiple of BLOCK
    got = fused.mlp_preactivations(arch, theta, task.x)
    with torch.inference_mode():
        want = arch.preactivations(theta.float(), task.x)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    alone = [fused.mlp_preactivations(arch, theta[i : i + 1], task.x) for i in range(len(theta))]
    for layer, g in enumerate(got):
        assert torch.equal(g, torch.cat([a[layer] for a in alone]))
    assert [p.shape[0] for p in fused.mlp_preactivations(arch, theta[:0], task.x)] == [0] * arch.n_layers
