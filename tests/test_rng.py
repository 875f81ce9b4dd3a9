"""The counter-based generator: exact distribution (statistical tests) and the counter property."""
import numba
import numpy as np
import pytest
import torch
from scipy import stats

from volume import rng
from volume.rng import EDGES, HEIGHTS, TAIL_START, counter_sample

N_ROWS, N_COLS = 2000, 500  # 1e6 draws


@pytest.fixture(scope="module")
def normals():
    return counter_sample(123, 0, N_ROWS, np.ones(N_COLS), "normal", dtype=np.float64).ravel()


def test_ziggurat_tables_are_a_valid_partition():
    # Known tail start of the 256-layer ziggurat (Marsaglia & Tsang 2000): r = 3.6541528853610088.
    assert abs(TAIL_START - 3.6541528853610088) < 1e-12
    v = EDGES[0] * HEIGHTS[1]
    areas = EDGES[1:-1] * (HEIGHTS[2:] - HEIGHTS[1:-1])
    np.testing.assert_allclose(areas, v, rtol=1e-9)
    assert EDGES[-1] == 0 and np.all(np.diff(EDGES[1:]) < 0)


def test_normal_moments(normals):
    n = normals.size
    assert abs(normals.mean()) < 5 / np.sqrt(n)
    assert abs(normals.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(normals)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(normals)) < 5 * np.sqrt(24 / n)


def test_normal_goodness_of_fit(normals):
    assert stats.kstest(normals, "norm").pvalue > 1e-3
    # Chi-square on bins that resolve the tails, where ziggurat bugs hide.
    edges = np.array([-np.inf, -4, -3.5, -3, -2, -1, 0, 1, 2, 3, 3.5, 4, np.inf])
    observed, _ = np.histogram(normals, edges)
    expected = normals.size * np.diff(stats.norm.cdf(edges))
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, len(observed) - 1) > 1e-3
    # The tail beyond r (sampled by the separate tail algorithm) has the right mass.
    beyond = (np.abs(normals) > TAIL_START).sum()
    want = normals.size * 2 * stats.norm.sf(TAIL_START)
    assert abs(beyond - want) < 5 * np.sqrt(want)


def test_normal_no_serial_correlation(normals):
    grid = normals.reshape(N_ROWS, N_COLS)
    lag_col = np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())[0, 1]
    lag_row = np.corrcoef(grid[:-1].ravel(), grid[1:].ravel())[0, 1]
    assert abs(lag_col) < 5 / np.sqrt(grid.size) and abs(lag_row) < 5 / np.sqrt(grid.size)


def test_uniform_distribution():
    u = counter_sample(7, 0, 1000, np.ones(500), "uniform", dtype=np.float64).ravel()
    a = np.sqrt(3)
    assert u.min() >= -a and u.max() < a
    assert abs(u.var() - 1) < 5 * np.sqrt(0.8 / u.size)
    assert stats.kstest(u, stats.uniform(loc=-a, scale=2 * a).cdf).pvalue > 1e-3


def test_counter_property_and_seeds():
    scale = np.linspace(0.5, 2, 37)
    whole = counter_sample(5, 0, 100, scale)
    pieces = np.concatenate([counter_sample(5, start, 10, scale) for start in range(0, 100, 10)])
    assert np.array_equal(whole, pieces)
    assert np.array_equal(counter_sample(5, 42, 1, scale)[0], whole[42])
    assert not np.array_equal(counter_sample(6, 0, 100, scale), whole)
    assert not np.array_equal(counter_sample(5, 0, 100, scale, stream=1), whole)
    np.testing.assert_allclose(whole / scale, counter_sample(5, 0, 100, np.ones(37)), rtol=1e-6)


def test_thread_count_does_not_change_numbers():
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = counter_sample(9, 0, 300, np.ones(101))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = counter_sample(9, 0, 300, np.ones(101))
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, many)


def test_named_streams_that_one_run_draws_together_do_not_overlap():
    for group in rng.DISJOINT:
        spans = sorted(rng.STREAMS[name] for name in group)
        for (first, count), (next_first, _) in zip(spans, spans[1:]):
            assert first + count <= next_first, f"streams of {group} overlap"


def test_torch_generator_is_one_sequence_per_seed_and_stream():
    draw = lambda gen: torch.rand(8, generator=gen)  # noqa: E731
    assert torch.equal(draw(rng.torch_generator(3, 5)), draw(rng.torch_generator(3, 5)))
    assert not torch.equal(draw(rng.torch_generator(3, 5)), draw(rng.torch_generator(3, 6)))
    assert not torch.equal(draw(rng.torch_generator(3, 5)), draw(rng.torch_generator(4, 5)))


@numba.njit
def _by_the_full_algorithm(key, n_rows, n_cols):
    out = np.empty((n_rows, n_cols))
    for j in range(n_rows):
        for c in range(n_cols):
            out[j, c] = rng._normal(key, np.uint64(j * n_cols + c), EDGES, HEIGHTS, TAIL_START)
    return out


def test_fast_path_draws_what_the_full_algorithm_draws():
    """fill_row's two passes (hash, then a first ziggurat attempt with the rare rejects sent
    back to the full algorithm) are an optimisation of `_normal`, element by element: they must
    give the same numbers exactly, rejected elements and signs included (5e5 draws, ~5e3 rejects)."""
    n_rows, n_cols = 1000, 500
    fast = counter_sample(77, 0, n_rows, np.ones(n_cols), dtype=np.float64)
    assert np.array_equal(fast, _by_the_full_algorithm(rng.seed_key(77, 0), n_rows, n_cols))
