"""Counter-based random numbers: value (row j, column c) depends only on (seed, j, c).

Each value is drawn from its own stream: attempt k of element e = j * n_cols + c hashes
(key(seed), e, k) with two rounds of the SplitMix64 finaliser, a 64-bit bijective mixer.
Normals come from a ziggurat (Marsaglia & Tsang 2000) with 256 layers and Marsaglia's
exact tail method, so they are exactly Gaussian up to the 53-bit resolution of the
uniforms (no approximation of the density anywhere). Every element is computed on its
own, so the numbers are bit-identical whatever the chunking or thread count, and the
loop over rows runs in parallel with numba.

Streams: one seed gives independent sequences per stream number. Every stream number the
code uses is named in the table below, so two jobs drawing from one number show up here.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch
from scipy.optimize import brentq

# Named streams (seed_key / counter_sample / Prior.sample `stream`, splitting's `stream`).
PRIOR_STREAM = 0  # prior samples: Monte Carlo, simplicity_bias, P_B; the target's splitting run in class experiments
INIT_STREAM = 1  # training initialisations (row init_id of the prior)
CLASS_STREAM = 1  # class experiments (llamaizer, depth): splitting run of class c on CLASS_STREAM + c
RARE_FUNCTION_STREAM = 1000  # sgd_vs_prior: splitting run on its i-th rare function, + i
NNGP_STREAM = 1 << 19  # NNGP function sampling: this stream and the next
ORDER_STREAM = 1 << 20  # training data order: + block of epochs
# Streams of the estimators:
CONDITIONAL_STREAMS = {"joint": 1, "given": 2, "inside": 3}  # volume/estimators/conditional.py
XOR_CASE_STREAM = 7  # volume/estimators/ground_truth.py, measure_xor_factor
# Each name's (first stream, how many consecutive streams it may take).
STREAMS: dict[str, tuple[int, int]] = {
    "prior": (PRIOR_STREAM, 1), "init": (INIT_STREAM, 1), "class": (CLASS_STREAM, 1 << 18),  # llamaizer with m <= 4 bits: < 2^18 classes
    "rare_function": (RARE_FUNCTION_STREAM, NNGP_STREAM - RARE_FUNCTION_STREAM), "nngp": (NNGP_STREAM, 2),
    "order": (ORDER_STREAM, 1 << 20), "xor_case": (XOR_CASE_STREAM, 1),
    **{f"conditional_{k}": (v, 1) for k, v in CONDITIONAL_STREAMS.items()},
}
# Streams one run draws from together, which must therefore not overlap (tested). Others may
# share numbers: e.g. conditional's joint run and training initialisation both use stream 1.
DISJOINT = (("prior", "init", "rare_function", "nngp", "order"),  # training experiments
            ("prior", "class"),  # class experiments
            ("conditional_joint", "conditional_given", "conditional_inside"))
N_LAYERS = 256
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


def _density(x: float) -> float:
    return math.exp(-0.5 * x * x)


def _ziggurat_tables(n_layers: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Layer edges X[0..n] (X[0] is the base layer's pseudo-width v / f(r), X[1] = r,
    X[n] = 0), the density at each edge, and the tail start r. Every layer has the same
    area v; r is the root of: the last layer closes exactly at the top, f(X[n-1]) + v/X[n-1] = 1."""

    def build(r: float) -> tuple[float, list[float]]:
        v = r * _density(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
        edges = [v / _density(r), r]
        for step in range(n_layers - 1):
            y = _density(edges[-1]) + v / edges[-1]
            if step == n_layers - 2:
                return y - 1.0, edges
            if y >= 1.0:  # r too small: the layers reach the top too early
                return float(n_layers - step), edges
            edges.append(math.sqrt(-2.0 * math.log(y)))
        raise AssertionError("unreachable")

    r = brentq(lambda r: build(r)[0], 2.0, 5.0, xtol=1e-15, rtol=1e-15, maxiter=500)
    edges = np.array(build(r)[1] + [0.0], dtype=np.float64)
    return edges, np.exp(-0.5 * edges**2), r


def _check_tables(edges: np.ndarray, heights: np.ndarray, r: float) -> None:
    # Layers 1..n-1 must have the base layer's area; a wrong table would bias every sample.
    v = edges[0] * heights[1]
    areas = edges[1:-1] * (heights[2:] - heights[1:-1])
    assert np.allclose(areas, v, rtol=1e-9), "ziggurat layers are not of equal area"


EDGES, HEIGHTS, TAIL_START = _ziggurat_tables(N_LAYERS)
_check_tables(EDGES, HEIGHTS, TAIL_START)


@nb.njit(inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def _draw(key, element, attempt):
    # Attempt 0 is SplitMix64 at position `element` of the stream that starts at `key`;
    # later attempts (rare) come from a stream keyed by (key, attempt).
    if attempt == 0:
        return _mix(key + element * _GOLDEN)
    return _mix(_mix(key ^ (np.uint64(attempt) * _M2)) + element * _GOLDEN)


@nb.njit(inline="always")
def _unit(h):
    # In [0, 1): the top 53 bits.
    return np.float64(np.int64(h >> np.uint64(11))) * _TO_UNIT


@nb.njit(inline="always")
def _normal(key, element, edges, heights, tail_start):
    attempt = 0
    while True:
        h = _draw(key, element, attempt)
        attempt += 1
        layer = np.int64(h & np.uint64(N_LAYERS - 1))
        negative = (h >> np.uint64(8)) & np.uint64(1)
        x = _unit(h) * edges[layer]
        if x < edges[layer + 1]:
            return -x if negative else x
        if layer == 0:
            # Tail beyond r (Marsaglia 1964): exact, by rejection.
            while True:
                u1 = 1.0 - _unit(_draw(key, element, attempt))
                u2 = 1.0 - _unit(_draw(key, element, attempt + 1))
                attempt += 2
                a = -math.log(u1) / tail_start
                b = -math.log(u2)
                if 2.0 * b > a * a:
                    x = tail_start + a
                    return -x if negative else x
        u = _unit(_draw(key, element, attempt))
        attempt += 1
        if heights[layer] + u * (heights[layer + 1] - heights[layer]) < math.exp(-0.5 * x * x):
            return -x if negative else x


@nb.njit(cache=True)
def fill_row(row, scratch, key, base, scale, gaussian, edges, heights, tail_start):
    """Elements base .. base + len(row) - 1 of the stream of `key`, element c scaled by scale[c],
    into row; scratch is a uint64 work array at least as long as row."""
    n_cols = row.shape[0]
    if not gaussian:
        for c in range(n_cols):
            # Uniform on [-sqrt(3), sqrt(3)): unit variance.
            u = _unit(_draw(key, base + np.uint64(c), 0))
            row[c] = (2.0 * u - 1.0) * 1.7320508075688772 * scale[c]
        return
    # Pass 1 vectorises: the hashes of the ziggurat's first attempt, _draw(key, base + c, 0),
    # with the counter as an additive recurrence. (Table lookups would need gathers, which are
    # slow here, and table arguments may alias row, which blocks vectorising.)
    counter = key + base * _GOLDEN
    for c in range(n_cols):
        scratch[c] = _mix(counter)
        counter += _GOLDEN
    # Pass 2, scalar: the first attempt accepts ~99% of the time; a rejected element runs
    # the full algorithm (which repeats attempt 0 identically). The sign is a multiply by
    # +-1 (exact, so the same numbers) rather than a branch: a coin-flip branch mispredicts
    # half the time, which made this pass twice as slow.
    for c in range(n_cols):
        h = scratch[c]
        layer = h & np.uint64(N_LAYERS - 1)  # unsigned: no negative-index wraparound check
        x = _unit(h) * edges[layer]
        sign = 1.0 - 2.0 * np.float64((h >> np.uint64(8)) & np.uint64(1))
        if x < edges[layer + np.uint64(1)]:
            row[c] = (x * sign) * scale[c]
        else:
            row[c] = _normal(key, base + np.uint64(c), edges, heights, tail_start) * scale[c]


@nb.njit(parallel=True, cache=True, fastmath=False)
def _fill(out, key, first_row, scale, gaussian, edges, heights, tail_start):
    n_rows, n_cols = out.shape
    for i in nb.prange(n_rows):
        scratch = np.empty(n_cols, np.uint64)
        fill_row(out[i], scratch, key, np.uint64(first_row + i) * np.uint64(n_cols), scale, gaussian,
                 edges, heights, tail_start)


def _mix_int(z: int) -> int:
    mask = 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * int(_M1)) & mask
    z = ((z ^ (z >> 27)) * int(_M2)) & mask
    return z ^ (z >> 31)


def seed_key(seed: int, stream: int = 0) -> np.uint64:
    """A 64-bit key for (seed, stream); different streams of one seed are independent."""
    mask = 0xFFFFFFFFFFFFFFFF
    return np.uint64(_mix_int((_mix_int(seed & mask) + stream * int(_GOLDEN)) & mask))


def counter_sample(seed: int, first_row: int, n_rows: int, scale: np.ndarray, distribution: str = "normal",
                   stream: int = 0, dtype=np.float32) -> np.ndarray:
    """Rows first_row .. first_row + n_rows - 1 of the counter-based array, each column c
    multiplied by scale[c]. distribution: 'normal' (standard normal) or 'uniform' (unit
    variance, on [-sqrt 3, sqrt 3))."""
    if distribution not in ("normal", "uniform"):
        raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")
    scale = np.ascontiguousarray(scale, dtype=np.float64)
    out = np.empty((n_rows, scale.shape[0]), dtype=dtype)
    if n_rows:
        _fill(out, seed_key(seed, stream), np.int64(first_row), scale, distribution == "normal",
              EDGES, HEIGHTS, TAIL_START)
    return out


@nb.njit(cache=True)
def _fill_rows(out, key, rows, scale, edges, heights, tail_start):
    scratch = np.empty(out.shape[1], np.uint64)
    for i in range(rows.shape[0]):
        fill_row(out[i], scratch, key, np.uint64(rows[i]) * np.uint64(out.shape[1]), scale, True, edges, heights,
                 tail_start)


def normal_rows(seed: int, rows: np.ndarray, n_cols: int, stream: int) -> np.ndarray:
    """Rows `rows` (any row indices) of the standard normals counter_sample(seed, ..., stream)
    draws with n_cols columns: the same numbers, for scattered rows, in one serial call (a
    parallel call per few rows would cost more in thread start-up than in drawing)."""
    out = np.empty((len(rows), n_cols), np.float64)
    _fill_rows(out, seed_key(seed, stream), np.asarray(rows, np.int64), np.ones(n_cols), EDGES, HEIGHTS, TAIL_START)
    return out


def torch_generator(seed: int, stream: int) -> torch.Generator:
    """A torch.Generator for (seed, stream), for draws that torch makes (MCMC moves); the same
    seeding as rare_event's splitting runs."""
    state = np.random.SeedSequence([int(seed), int(stream), 0x5EB5]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
