"""Batched unit analysis on the Boolean cube: truth tables, dependencies, Walsh spectra and
margins, as tensors over a whole population (no Python graphs on the hot path).

Input i of the cube has bit j of i set when variable j+1 is "on" (+1 in pm1, 1 in 01), as in
volume.tasks. The Walsh basis is chi_S(x) = prod_{j in S} s_j(x) with s_j = +1 when bit j is
set and -1 otherwise, S a bitmask; coefficients are normalised means, so a function's
coefficients square-sum to its mean square (Parseval).
"""
from __future__ import annotations

import numpy as np
import torch

from volume.functions import pack_bits


def cube_dim(n_inputs: int) -> int:
    """n with 2^n = n_inputs, or a ValueError: spectra and dependencies need the whole cube."""
    n = int(n_inputs).bit_length() - 1
    if n_inputs < 1 or 1 << n != n_inputs:
        raise ValueError(f"the whole Boolean cube is needed (2^n inputs), got {n_inputs} inputs")
    return n


def walsh(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Walsh coefficients of values along `dim` (length 2^n): out[S] = mean_x values(x) chi_S(x)."""
    v = values.movedim(dim, -1)
    n = cube_dim(v.shape[-1])
    lead = v.shape[:-1]
    v = v.to(torch.float64 if v.dtype == torch.float64 else torch.float32).reshape(-1, 1 << n)
    for j in range(n):
        pairs = v.reshape(v.shape[0], -1, 2, 1 << j)
        low, high = pairs[:, :, 0], pairs[:, :, 1]
        # butterfly (a + b, b - a): index bit j set contributes +1 to chi_S, unset -1
        v = torch.stack((low + high, high - low), dim=2).reshape(v.shape[0], -1)
    return (v / (1 << n)).reshape(*lead, 1 << n).movedim(-1, dim)


def power_fractions(spectrum: torch.Tensor) -> torch.Tensor:
    """Share of the non-constant power on each chi_S, from coefficients [..., 2^n, c] (c
    channels, e.g. stream coordinates, summed). S = 0 gets 0; an all-constant function gets 0s."""
    power = (spectrum * spectrum).sum(-1)
    power[..., 0] = 0
    total = power.sum(-1, keepdim=True)
    return torch.where(total > 0, power / total.clamp_min(torch.finfo(power.dtype).tiny), torch.zeros_like(power))


# For j < 6: the bits p of a 64-bit word whose bit j is 0 (p = input index mod 64).
_LOW_BITS = [np.uint64(sum(1 << p for p in range(64) if not (p >> j) & 1)) for j in range(6)]


def pack_tables(tables: torch.Tensor) -> np.ndarray:
    """bool tables[..., N] (inputs along the last dim) -> uint64 words [M, ceil(N/64)], M the
    product of the leading dims: volume.functions.pack_bits on the flattened rows."""
    return pack_bits(tables.reshape(-1, tables.shape[-1]).numpy())


def dependence_masks(tables: torch.Tensor, n: int) -> np.ndarray:
    """int64 [...]: bit j set when flipping variable j+1 changes the truth table
    tables[..., 2^n] (inputs along the last dim) somewhere on the cube; 0 means constant."""
    words = pack_tables(tables)
    out = np.zeros(words.shape[0], dtype=np.int64)
    for j in range(n):
        if j < 6:  # partner input inside the same word; padding bits are 0 on both sides
            diff = (words ^ (words >> np.uint64(1 << j))) & _LOW_BITS[j]
            hit = np.bitwise_or.reduce(diff, axis=1) != 0
        else:
            pairs = words.reshape(words.shape[0], -1, 2, 1 << (j - 6))
            hit = (pairs[:, :, 0] != pairs[:, :, 1]).reshape(words.shape[0], -1).any(1)
        out |= hit.astype(np.int64) << j
    return out.reshape(tables.shape[:-1])


def subset_index(n: int, variables: list[int]) -> np.ndarray:
    """For each cube input, the integer formed by the bits of `variables` (0-based), [2^n]."""
    idx = np.arange(1 << n)
    return sum(((idx >> v) & 1) << t for t, v in enumerate(variables))


def group_extremes(z: torch.Tensor, n: int, variables: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """min and max of z[B, N, U] over the inputs sharing each value of `variables`,
    each [B, 2^k, U]: the pieces of every margin against a function of those variables.
    The cube axis is viewed as n axes of size 2 (bit j of the input index is axis n - j), so
    the reduction runs over the other variables' axes without copying z."""
    cube = z.reshape(z.shape[0], *(2,) * n, z.shape[2])
    others = tuple(n - v for v in range(n) if v not in variables)
    # after a keepdim reduction, order the kept axes so that variables[t] weighs 2^t
    axes = (0, *others, *(n - v for v in reversed(variables)), n + 1)
    lo, hi = (cube.amin(others, keepdim=True), cube.amax(others, keepdim=True)) if others else (cube, cube)
    return tuple(t.permute(axes).reshape(z.shape[0], 1 << len(variables), z.shape[2]) for t in (lo, hi))


def key_bits(keys: np.ndarray, k: int) -> torch.Tensor:
    """Integer keys of functions of k variables -> bool [G, 2^k] (bit d = value on pattern d)."""
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    shifts = np.arange(1 << k, dtype=np.uint64)
    return torch.from_numpy(((keys[:, None] >> shifts) & np.uint64(1)).astype(bool))


def function_margins(z: torch.Tensor, n: int, variables: list[int], keys: np.ndarray,
                     chunk: int = 256, scaled: bool = False) -> torch.Tensor:
    """margin[B, U, G] = min over the cube of s_g(x) z(x), s_g = +1 where the function g of
    `variables` (integer truth table keys[G]) is true, -1 where false. Positive iff the unit's
    thresholded table (z > 0) is exactly g on the whole cube (z = 0 never counts as true).
    scaled: each unit's margins divided by (its max |z| over the cube + tiny), a scale-free
    margin (tiny: the dtype's smallest normal number, so an all-zero unit gives 0, not NaN);
    division by a positive number is monotone in floating point, so this equals the margins
    of z / (max |z| + tiny) bit for bit without forming that tensor."""
    lo, hi = group_extremes(z, n, variables)  # [B, 2^k, U]
    pieces = torch.stack((-hi, lo), dim=1).permute(0, 3, 1, 2)  # [B, U, 2, 2^k]: value if g false / true
    bits = key_bits(keys, len(variables)).long()  # [G, 2^k]
    cols = torch.arange(bits.shape[1])
    out = []
    for start in range(0, bits.shape[0], chunk):
        part = bits[start : start + chunk]
        out.append(pieces[:, :, part, cols].amin(-1))  # [B, U, g, 2^k] -> [B, U, g]
    margins = torch.cat(out, -1) if out else pieces.new_zeros(*pieces.shape[:2], 0)
    if scaled:
        scale = torch.maximum(hi.amax(1), -lo.amin(1)) + torch.finfo(z.dtype).tiny
        margins = margins / scale.unsqueeze(2)
    return margins


def table_keys(tables: torch.Tensor, n: int, variables: list[int]) -> np.ndarray:
    """uint64 key of each table[B, N, U] read as a function of `variables` (the other bits
    at 0; exact when the table depends on `variables` only), [B, U]. At most 6 variables."""
    k = len(variables)
    if k > 6:
        raise ValueError(f"keys of more than 6 variables do not fit one 64-bit word, got {k}")
    points = np.zeros(1 << k, dtype=np.int64)
    for t, v in enumerate(variables):
        points |= ((np.arange(1 << k) >> t) & 1) << v
    sub = tables[:, torch.from_numpy(points)].numpy().astype(np.uint64)  # [B, 2^k, U]
    shifts = np.arange(1 << k, dtype=np.uint64)[None, :, None]
    return np.bitwise_or.reduce(sub << shifts, axis=1)
