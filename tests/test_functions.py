"""Keys, tables, complexity measures, and Monte Carlo intervals against independent references."""
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from volume.complexity import average_sensitivity, lz76_words, lz_complexity
from volume.estimators.monte_carlo import clopper_pearson_log, monte_carlo_estimate
from volume.errors import ConfigError
from volume.functions import FunctionTable, hex_to_keys, keys_to_hex, output_keys, pack_bits, unpack_bits
from volume.nets import MLP
from volume.tasks import boolean_task, cube_inputs, digits_task, key_to_bits


def perceptron_key(weights, bias, n, encoding):
    """Key of a hand-built perceptron, via the batched forward."""
    arch = MLP([n, 1])
    theta = torch.tensor([list(weights) + [bias]], dtype=torch.float32)
    return keys_to_hex(output_keys(arch.forward(theta, cube_inputs(n, encoding))), 2**n)[0]


def test_keys_of_hand_built_networks():
    assert perceptron_key([1, 0, 0, 0, 0, 0, 0], -0.5, 7, "01") == "a" * 32  # dictator x_1
    assert perceptron_key([0] * 7, 1.0, 7, "01") == "f" * 32  # constant true
    assert perceptron_key([0] * 7, -1.0, 7, "01") == "0" * 32
    assert perceptron_key([0, 1, 0], 0.0, 3, "pm1") == "cc"  # x_2 on pm1: inputs 2,3,6,7
    assert perceptron_key([1, 1], -1.5, 2, "01") == "8"  # AND: only input 3
    # Strictly > 0: an output of exactly 0 is a 0 bit.
    assert perceptron_key([1, 0], 0.0, 2, "01") == "a"


def test_named_targets_match_definitions():
    task = boolean_task(4, target="parity")
    bits = np.array(list(itertools.product([0, 1], repeat=4)))[:, ::-1]  # row i: bits of i
    assert np.array_equal(task.target, bits.sum(1) % 2 == 1)
    assert keys_to_hex(pack_bits(boolean_task(7, target="dictator").target[None]), 128)[0] == "a" * 32
    assert keys_to_hex(pack_bits(boolean_task(3, target="and").target[None]), 8)[0] == "80"
    assert keys_to_hex(pack_bits(boolean_task(3, target="or").target[None]), 8)[0] == "fe"
    assert keys_to_hex(pack_bits(boolean_task(3, target="majority").target[None]), 8)[0] == "e8"
    sub = boolean_task(6, "pm1", "parity", target_vars=[2, 5]).target
    i = np.arange(64)
    assert np.array_equal(sub, ((i >> 1) ^ (i >> 4)) & 1 == 1)
    # A hex key over the target variables only.
    assert np.array_equal(boolean_task(5, target="8", target_vars=[1, 3]).target, (i[:32] & 1) & (i[:32] >> 2) & 1 == 1)


@pytest.mark.parametrize("key,n_inputs", [("abc", 16), ("g" * 4, 16), ("ff", 2), ("1" * 33, 128)])
def test_bad_hex_keys(key, n_inputs):
    with pytest.raises(ConfigError, match="task.target"):
        key_to_bits(key, n_inputs)


def test_pack_hex_roundtrip_all_sizes():
    rng = np.random.default_rng(0)
    for n_inputs in (2, 4, 8, 64, 65, 128, 1797, 2**16):
        bits = rng.random((5, n_inputs)) < 0.5
        keys = pack_bits(bits)
        assert np.array_equal(unpack_bits(keys, n_inputs), bits)
        texts = keys_to_hex(keys, n_inputs)
        assert all(len(t) == -(-n_inputs // 4) for t in texts)
        assert texts[0] == format(sum(int(b) << i for i, b in enumerate(bits[0])), f"0{len(texts[0])}x")
        assert np.array_equal(hex_to_keys(texts, n_inputs), keys)


def test_function_table_counts_and_merges_exactly():
    rng = np.random.default_rng(1)
    keys = pack_bits(rng.random((5000, 8)) < 0.3)
    whole = FunctionTable(8)
    whole.add(keys)
    halves = [FunctionTable(8), FunctionTable(8)]
    halves[0].add(keys[:1234])
    halves[1].add(keys[1234:])
    assert halves[0].merge(halves[1]) == whole
    assert whole.total == 5000
    texts = keys_to_hex(keys, 8)
    _, want = np.unique(texts, return_counts=True)
    assert sorted(whole.counts.tolist()) == sorted(want.tolist())
    assert whole.count_of(texts[0]) == texts.count(texts[0])
    assert FunctionTable.from_state(whole.state()) == whole


def test_lz76_known_values():
    # Lempel & Ziv (1976) / Kaspar & Schuster (1987): 0·001·10·100·1000·101.
    assert lz76_words(np.array([int(c) for c in "0001101001000101"], np.uint8)) == 6
    assert lz76_words(np.array([0, 1] * 8, np.uint8)) == 3  # 0·1·01010101010101
    assert lz76_words(np.array([0, 0, 0, 1], np.uint8)) == 2  # 0·001
    assert lz76_words(np.array([1, 0, 0, 0], np.uint8)) == 3  # 1·0·00 (a copy may overlap itself)
    # The symmetrised measure: constant strings get log2 N; otherwise log2 N * mean(c, c_rev).
    assert lz_complexity(np.zeros((1, 128), bool))[0] == 7.0
    s = np.array([[int(c) for c in "0001101001000101"]], bool)
    c_rev = lz76_words(s[0, ::-1].astype(np.uint8))
    assert lz_complexity(s)[0] == pytest.approx(4 * (6 + c_rev) / 2)


def test_average_sensitivity_against_definition():
    n = 5
    rng = np.random.default_rng(2)
    tables = rng.random((20, 2**n)) < 0.5
    brute = [np.mean([sum(t[i] != t[i ^ (1 << j)] for j in range(n)) for i in range(2**n)]) for t in tables]
    np.testing.assert_allclose(average_sensitivity(tables), brute)
    assert average_sensitivity(boolean_task(n, target="parity").target[None])[0] == n
    assert average_sensitivity(boolean_task(n, target="dictator").target[None])[0] == 1


def test_clopper_pearson_by_definition():
    """The exact interval's ends solve P(X >= k | p_low) = P(X <= k | p_high) = 2.5%."""
    for k, n in [(0, 10), (1, 10), (7, 100), (100, 100), (3, 10**9), (12345, 10**8)]:
        low, high = np.exp(clopper_pearson_log(np.array([k]), n))
        if k > 0:
            assert stats.binom.sf(k - 1, n, low[0]) == pytest.approx(0.025, rel=1e-6)
        else:
            assert low[0] == 0
        if k < n:
            assert stats.binom.cdf(k, n, high[0]) == pytest.approx(0.025, rel=1e-6)
        else:
            assert high[0] == 1
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        assert low[0] == pytest.approx(ci.low, rel=1e-3) and high[0] == pytest.approx(ci.high, rel=1e-3)


def test_monte_carlo_zero_hits_is_an_upper_bound():
    est = monte_carlo_estimate(0, 1000)
    assert est.bound == "upper" and np.isfinite(est.log_p)
    assert np.exp(est.log_p) == pytest.approx(1 - 0.05 ** (1 / 1000))  # (1-p)^n = 0.05
    assert monte_carlo_estimate(10, 1000).bound is None


def test_digits_task():
    task = digits_task("binary", "lt5")
    assert task.x.shape == (1797, 64) and set(task.x.unique().tolist()) == {0.0, 1.0}
    assert task.target.sum() == sum(1 for d in __import__("sklearn.datasets").datasets.load_digits().target if d < 5)
    assert len(keys_to_hex(pack_bits(task.target[None]), task.n_inputs)[0]) == 450


def test_rank_plot_corners_and_lz_groups_hold_every_function():
    from volume.experiments.simplicity_bias import lz_groups, rank_curve

    rng = np.random.default_rng(0)
    counts = np.sort(rng.geometric(0.3, size=500))[::-1]
    rank, p = rank_curve(counts, 10_000)
    # Oracle: every rank r has P = counts[r-1]/N; each corner pair (first, last) spans one run.
    assert rank[0] == 1 and rank[-1] == len(counts) and np.all(np.diff(rank) >= 0)
    for first, last, p_first, p_last in zip(rank[::2], rank[1::2], p[::2], p[1::2]):
        assert p_first == p_last and np.all(counts[first - 1:last] / 10_000 == p_first)
    assert len(rank) == 2 * len(np.unique(counts))
    assert [r.tolist() for r in rank_curve(np.array([4]), 8)] == [[1, 1], [0.5, 0.5]]
    assert [len(r) for r in rank_curve(np.zeros(0, int), 8)] == [0, 0]
    frame = pd.DataFrame({"lz": rng.integers(3, 6, 500), "log_p": np.log(counts / 10_000)})
    groups = lz_groups(frame)
    assert groups["n_functions"].sum() == len(frame)
    expected = frame.value_counts(["lz", "log_p"])
    assert all(expected[(row.lz, row.log_p)] == row.n_functions for row in groups.itertuples())
