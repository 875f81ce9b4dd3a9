"""Complexity of Boolean functions given as truth tables, vectorised over many functions.

- Lempel-Ziv: the symmetrised LZ76 measure of the simplicity-bias literature (Dingle et al.
  2018; Valle-Perez et al. 2019): log2(N) * (c(s) + c(reverse s)) / 2, where c is the number
  of words of the Lempel-Ziv 1976 parsing (Kaspar & Schuster 1987) of the output string s
  in input order i = 0..N-1; a constant string gets log2(N).
- ones: number of inputs mapped to 1.
- sensitivity: average over inputs of the number of one-bit flips that change the output
  (Boolean cube only).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from volume.functions import unpack_bits


@nb.njit(cache=True)
def lz76_words(s) -> int:
    """Number of words in the LZ76 parsing of the 0/1 sequence s (Kaspar-Schuster scan)."""
    n = s.shape[0]
    if n <= 1:
        return n
    words, start, match, length, longest = 1, 0, 1, 1, 1
    while True:
        if s[start + length - 1] == s[match + length - 1]:
            length += 1
            if match + length > n:
                words += 1
                break
        else:
            longest = max(length, longest)
            start += 1
            if start == match:
                words += 1
                match += longest
                if match + 1 > n:
                    break
                start, length, longest = 0, 1, 1
            else:
                length = 1
    return words


@nb.njit(parallel=True, cache=True)
def _lz_many(bits, out):
    n_rows, n = bits.shape
    scale = math.log2(n) if n > 1 else 1.0
    for r in nb.prange(n_rows):
        row = bits[r]
        first = row[0]
        constant = True
        for i in range(n):
            if row[i] != first:
                constant = False
                break
        if constant:
            out[r] = scale
        else:
            out[r] = scale * 0.5 * (lz76_words(row) + lz76_words(row[::-1].copy()))


def lz_complexity(bits: np.ndarray) -> np.ndarray:
    """Symmetrised LZ76 complexity of each row of bool/uint8 bits[D, N]."""
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    out = np.empty(bits.shape[0], np.float64)
    _lz_many(bits, out)
    return out


def average_sensitivity(bits: np.ndarray) -> np.ndarray:
    """Average sensitivity of each truth table bits[D, 2^n] (input i has x_j = bit j-1 of i)."""
    n_inputs = bits.shape[1]
    n = int(round(math.log2(n_inputs)))
    if 2**n != n_inputs:
        raise ValueError("average sensitivity needs a full Boolean cube (N = 2^n inputs)")
    index = np.arange(n_inputs)
    flips = np.zeros(bits.shape[0], np.int64)
    for j in range(n):
        flips += (bits != bits[:, index ^ (1 << j)]).sum(1)
    return flips / n_inputs


def complexity_table(keys: np.ndarray, n_inputs: int, boolean_cube: bool, chunk: int = 65536) -> dict[str, np.ndarray]:
    """lz, ones and (on the cube) sensitivity for every key, in chunks to bound memory."""
    lz, ones, sens = [], [], []
    for start in range(0, keys.shape[0], chunk):
        bits = unpack_bits(keys[start : start + chunk], n_inputs)
        lz.append(lz_complexity(bits))
        ones.append(bits.sum(1))
        sens.append(average_sensitivity(bits) if boolean_cube else np.full(bits.shape[0], np.nan))
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    return {"lz": cat(lz, np.float64), "ones": cat(ones, np.int64), "sensitivity": cat(sens, np.float64)}
