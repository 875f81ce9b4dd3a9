"""Boolean functions of a few variables as integer keys: threshold (linearly separable)
functions, their counts, and symmetry classes under permutation/negation of the variables.

A function h of k variables has key sum_d h(d) 2^d over the 2^k patterns d (bit t of d is
variable t), the same bit order as volume.functions keys.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from volume.functions import pack_bits

# Published numbers of threshold functions of m variables (OEIS A000609), m = 0..6.
THRESHOLD_COUNTS = (2, 4, 14, 104, 1882, 94572, 15028134)
# Weight bound that realises every threshold function of m variables with integer weights:
# enumeration with this bound reproduces THRESHOLD_COUNTS (checked in the tests).
_WEIGHT_BOUND = {0: 0, 1: 1, 2: 1, 3: 2, 4: 3, 5: 5}


def n_functions(m: int) -> int:
    return 1 << (1 << m)


def non_threshold_count(m: int) -> int:
    """|H_m| = 2^(2^m) - T(m), from the published T(m)."""
    return n_functions(m) - THRESHOLD_COUNTS[m]


def pm1_points(m: int) -> np.ndarray:
    """The 2^m patterns as +-1 vectors [2^m, m] (bit t set -> +1)."""
    idx = np.arange(1 << m)
    return np.where((idx[:, None] >> np.arange(m)) & 1, 1, -1).astype(np.int64)


def _pack(bits: np.ndarray) -> np.ndarray:
    """bool [..., 2^m] -> uint64 keys [...] (m <= 6: one word each, volume.functions.pack_bits)."""
    return pack_bits(bits.reshape(-1, bits.shape[-1]))[:, 0].reshape(bits.shape[:-1])


@lru_cache(maxsize=None)
def threshold_functions(m: int, bound: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every threshold function [w.x > t] of m variables reachable with integer weights in
    [-bound, bound]: sorted unique keys (uint64) and one realising (w, t) row each [K, m+1],
    so that w.x - t - 1 is a pre-activation with margin >= 1 (w.x values differ by even steps)."""
    if not 0 <= m <= 5:
        raise ValueError(f"threshold functions are enumerated for m in 0..5, got {m}")
    bound = _WEIGHT_BOUND[m] if bound is None else bound
    x = pm1_points(m)
    combos = list(itertools.product(range(-bound, bound + 1), repeat=m))
    grid = np.array(combos, dtype=np.int64).reshape(len(combos), m)
    keys, params = [], []
    for start in range(0, len(grid), 4096):
        w = grid[start : start + 4096]
        vals = w @ x.T  # [V, 2^m]
        # cut above each attained value p: [w.x > w.x_p]; plus constant true (cut below min)
        above = vals[:, None, :] > vals[:, :, None]  # [V, p, 2^m]
        keys.append(_pack(above).reshape(-1))
        t = vals.reshape(-1)
        params.append(np.concatenate([np.repeat(w, x.shape[0], 0), t[:, None]], 1))
    keys.append(np.array([_pack(np.ones(1 << m, bool))], np.uint64))
    params.append(np.array([[0] * m + [-2]], np.int64))  # constant true: 0 - (-2) - 1 = 1
    keys, params = np.concatenate(keys), np.concatenate(params)
    uniq, first = np.unique(keys, return_index=True)
    return uniq, params[first]


def is_threshold(keys: np.ndarray, m: int) -> np.ndarray:
    """bool per key: is the function linearly separable (enumeration for m <= 5, LP above)."""
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    if m <= 5:
        table = threshold_functions(m)[0]
        pos = np.clip(np.searchsorted(table, keys), 0, len(table) - 1)
        return table[pos] == keys
    return np.array([separable_lp(int(k), m) for k in keys], dtype=bool)


@lru_cache(maxsize=65536)
def separable_lp(key: int, m: int) -> bool:
    """Linear separability by LP feasibility: exists (w, b) with s_d (w.x_d + b) >= 1."""
    from scipy.optimize import linprog

    x = pm1_points(m).astype(float)
    s = np.array([1.0 if (key >> d) & 1 else -1.0 for d in range(1 << m)])
    a_ub = -s[:, None] * np.concatenate([x, np.ones((len(x), 1))], 1)
    res = linprog(np.zeros(m + 1), A_ub=a_ub, b_ub=-np.ones(len(x)), bounds=[(None, None)] * (m + 1),
                  method="highs")
    return res.status == 0


@lru_cache(maxsize=None)
def symmetry_permutations(m: int) -> np.ndarray:
    """The 2^m m! permutations/negations of m variables as permutations of the 2^m patterns
    [G, 2^m]: row g maps pattern d to g[d]."""
    idx = np.arange(1 << m)
    rows = []
    for perm in itertools.permutations(range(m)):
        for neg in range(1 << m):
            flipped = idx ^ neg
            rows.append(sum(((flipped >> t) & 1) << perm[t] for t in range(m)))
    return np.array(rows, dtype=np.int64).reshape(-1, 1 << m)


def _unpack(keys: np.ndarray, m: int) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    return ((keys[:, None] >> np.arange(1 << m, dtype=np.uint64)) & np.uint64(1)).astype(bool)


def canonical(keys: np.ndarray, m: int) -> np.ndarray:
    """Smallest key in each key's class under permutation/negation of the m variables."""
    bits = _unpack(keys, m)
    best = np.full(len(bits), np.iinfo(np.uint64).max, dtype=np.uint64)
    for g in symmetry_permutations(m):
        image = np.empty_like(bits)
        image[:, g] = bits  # the value at d moves to g[d]
        best = np.minimum(best, _pack(image))
    return best


@lru_cache(maxsize=None)
def class_table(m: int) -> np.ndarray:
    """canonical key of every function of m <= 4 variables, indexed by key (orbit by orbit)."""
    if m > 4:
        raise ValueError(f"the full class table is built for m <= 4, got {m}; use canonical()")
    size = n_functions(m)
    out = np.full(size, -1, dtype=np.int64)
    perms = symmetry_permutations(m)
    for key in range(size):
        if out[key] >= 0:
            continue
        bits = _unpack(np.array([key]), m)[0]
        image = np.zeros((len(perms), 1 << m), bool)
        image[np.arange(len(perms))[:, None], perms] = bits[None, :]
        out[_pack(image).astype(np.int64)] = key  # key is the orbit's smallest member
    return out


def class_counts(m: int) -> dict[str, int]:
    """Functions and classes (up to permutation/negation) of m <= 4 variables, split into
    deep candidates (non-threshold), shallow (threshold, non-constant) and constant."""
    table = class_table(m)
    keys = np.arange(n_functions(m), dtype=np.uint64)
    thr = is_threshold(keys, m)
    const = (keys == 0) | (keys == n_functions(m) - 1)
    out = {}
    for name, sel in (("deep", ~thr), ("shallow", thr & ~const), ("all", np.ones_like(thr))):
        out[f"{name}_functions"] = int(sel.sum())
        out[f"{name}_classes"] = len(np.unique(table[sel]))
    return out
