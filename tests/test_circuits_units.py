"""circuits.units and circuits.boolean against brute force and published counts."""

import numpy as np
import pytest
import torch

from circuits import boolean
from circuits.units import (dependence_masks, function_margins, group_extremes, pack_tables, subset_index,
                            table_keys, walsh)
from volume.functions import pack_bits


def chi(n):
    idx = np.arange(1 << n)
    s = np.where((idx[:, None] >> np.arange(n)) & 1, 1.0, -1.0)  # [N, n]
    return np.stack([np.prod(s[:, [j for j in range(n) if (S >> j) & 1]], 1) for S in range(1 << n)], 1)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_walsh_matches_definition_and_parseval(n):
    v = torch.randn(3, 1 << n, dtype=torch.float64)
    coef = walsh(v)
    expect = v.numpy() @ chi(n) / (1 << n)
    assert np.allclose(coef.numpy(), expect)
    assert np.allclose((coef ** 2).sum(1).numpy(), (v ** 2).mean(1).numpy())
    assert np.allclose(walsh(v.t(), dim=0).t().numpy(), expect)


def brute_dependence(table, n):
    idx = np.arange(1 << n)
    return sum(1 << j for j in range(n) if (table != table[idx ^ (1 << j)]).any())


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 8])
def test_dependence_masks_brute_force(n):
    rng = np.random.default_rng(n)
    tables = []
    for _ in range(60):  # random tables, and tables of random variable subsets
        keep = rng.integers(0, 2, n)
        idx = np.arange(1 << n) & sum(int(k) << j for j, k in enumerate(keep))
        tables.append(rng.integers(0, 2, 1 << n).astype(bool)[idx])
    tables.append(np.zeros(1 << n, bool))
    t = torch.from_numpy(np.array(tables))
    got = dependence_masks(t, n)
    assert list(got) == [brute_dependence(tb, n) for tb in tables]
    assert np.array_equal(pack_tables(t), pack_bits(np.array(tables)))


def test_function_margins_sign_is_exact():
    n, variables = 5, [3, 4]
    rng = np.random.default_rng(0)
    z = torch.randn(4, 1 << n, 6, dtype=torch.float64)
    # plant unit 0 of net 0 computing g = x4 xor x5 exactly
    g_on = (subset_index(n, variables) % 3 != 0)
    z[0, :, 0] = torch.from_numpy(np.where(g_on, 1.0, -1.0) * rng.uniform(0.1, 1, 1 << n))
    keys = np.arange(16, dtype=np.uint64)
    m = function_margins(z, n, variables, keys)
    sign = np.where((keys[:, None] >> subset_index(n, variables).astype(np.uint64)) & np.uint64(1), 1.0, -1.0)
    brute = (z.numpy()[:, :, :, None] * sign.T[None, :, None, :]).min(1)
    assert np.allclose(m.numpy(), brute)
    table = (z > 0).numpy()
    computes = np.array([[[(table[b, :, u] == (sign[g] > 0)).all() for g in range(16)] for u in range(6)] for b in range(4)])
    assert np.array_equal(m.numpy() > 0, computes) and computes[0, 0, 0b0110]
    assert table_keys(z > 0, n, variables)[0, 0] == 0b0110


def test_group_extremes_match_brute_force_for_any_variable_order():
    n = 5
    z = torch.randn(3, 1 << n, 4, dtype=torch.float64)
    for variables in ([3, 0], [4, 1, 2], [], list(range(n)), [2]):
        lo, hi = group_extremes(z, n, variables)
        group = subset_index(n, variables) if variables else np.zeros(1 << n, int)
        for g in range(1 << len(variables)):
            assert torch.equal(lo[:, g], z[:, group == g].amin(1)) and torch.equal(hi[:, g], z[:, group == g].amax(1))


def test_scaled_margins_equal_margins_of_the_normalised_units_bit_for_bit():
    n, variables, keys = 6, [5, 2, 3], np.arange(256, dtype=np.uint64)
    z = torch.randn(7, 1 << n, 5) * torch.logspace(-3, 3, 5)  # float32, units of very different scales
    z[1, :, 2] = 0.0  # an all-zero unit: margins 0, not NaN
    normalised = z / (z.abs().amax(1, keepdim=True) + torch.finfo(z.dtype).tiny)
    scaled = function_margins(z, n, variables, keys, scaled=True)
    assert torch.equal(scaled, function_margins(normalised, n, variables, keys))
    assert not torch.isnan(scaled).any() and (scaled.abs() <= 1).all()


def test_threshold_counts_match_published_and_lp():
    for m in range(5):
        keys, params = boolean.threshold_functions(m)
        assert len(keys) == boolean.THRESHOLD_COUNTS[m]
        x = boolean.pm1_points(m)
        pre = params[:, :m] @ x.T - params[:, m:] - 1  # realising pre-activations, margin >= 1
        assert (np.abs(pre) >= 1).all()
        assert np.array_equal(boolean._pack(pre > 0), keys)
    for m in range(4):  # LP (independent of the enumeration) on every function
        lp = np.array([boolean.separable_lp(k, m) for k in range(boolean.n_functions(m))])
        assert np.array_equal(lp, boolean.is_threshold(np.arange(boolean.n_functions(m)), m))
    assert [boolean.non_threshold_count(m) for m in (2, 3, 4)] == [2, 152, 63654]


@pytest.mark.slow
def test_threshold_count_m5():
    assert len(boolean.threshold_functions(5)[0]) == 94572


def burnside(m, member):
    """Orbits of the functions in `member` (bool over all keys) by Burnside's lemma."""
    perms = boolean.symmetry_permutations(m)
    keys = np.arange(boolean.n_functions(m), dtype=np.uint64)
    bits = ((keys[:, None] >> np.arange(1 << m, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    fixed = sum(int((member & (bits[:, g] == bits).all(1)).sum()) for g in perms)
    return fixed // len(perms)


def test_classes_up_to_permutation_negation():
    # OEIS A000231: classes of Boolean functions of m variables under permutation/negation
    assert [boolean.class_counts(m)["all_classes"] for m in (1, 2, 3, 4)] == [3, 6, 22, 402]
    for m in (2, 3, 4):
        counts = boolean.class_counts(m)
        thr = boolean.is_threshold(np.arange(boolean.n_functions(m)), m)
        assert counts["deep_classes"] == burnside(m, ~thr)
        assert counts["deep_functions"] == boolean.non_threshold_count(m)
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 1 << 16, 50).astype(np.uint64)
    g = boolean.symmetry_permutations(4)[rng.integers(0, 384)]
    bits = ((keys[:, None] >> np.arange(16, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    image = np.empty_like(bits)
    image[:, g] = bits
    moved = boolean._pack(image)
    assert np.array_equal(boolean.canonical(moved, 4), boolean.canonical(keys, 4))
    assert np.array_equal(boolean.class_table(4)[keys.astype(np.int64)], boolean.canonical(keys, 4))
