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

from volume.functions import pack_bits, unpack_bits


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
            out[r] = scale * 0.5 * (lz76_words(row) + lz76_words(row[::-1]))  # a reversed view, no copy


def lz_complexity(bits: np.ndarray) -> np.ndarray:
    """Symmetrised LZ76 complexity of each row of bool/uint8 bits[D, N]."""
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    out = np.empty(bits.shape[0], np.float64)
    _lz_many(bits, out)
    return out


def average_sensitivity(bits: np.ndarray) -> np.ndarray:
    """Average sensitivity of each truth table bits[D, 2^n] (input i has x_j = bit j-1 of i)."""
    n_inputs = bits.shape[1]
    if 2 ** int(round(math.log2(n_inputs))) != n_inputs:
        raise ValueError("average sensitivity needs a full Boolean cube (N = 2^n inputs)")
    return key_sensitivity(pack_bits(bits), n_inputs)


# Within a 64-bit word, flipping input bit j (j < 6) swaps blocks of 2^j bits: the mask
# selects the lower block of each pair.
_SWAP_MASKS = tuple(np.uint64(m) for m in (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F,
                                           0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF, 0x00000000FFFFFFFF))


def key_sensitivity(keys: np.ndarray, n_inputs: int) -> np.ndarray:
    """Average sensitivity straight from packed keys uint64 [D, W] on the cube of N = 2^n
    inputs: sum over j of popcount(key XOR key with input bit j flipped), over N. Equal to
    counting, per input, the one-bit flips that change the output (each pair twice)."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    n = int(round(math.log2(n_inputs)))
    flips = np.zeros(keys.shape[0], np.int64)
    words = np.arange(keys.shape[1])
    for j in range(n):
        if j < 6:
            shift, mask = np.uint64(1 << j), _SWAP_MASKS[j]
            flipped = ((keys >> shift) & mask) | ((keys & mask) << shift)
        else:
            flipped = keys[:, words ^ (1 << (j - 6))]
        flips += np.bitwise_count(keys ^ flipped).sum(1, dtype=np.int64)
    return flips / n_inputs


def complexity_table(keys: np.ndarray, n_inputs: int, boolean_cube: bool, chunk: int = 65536) -> dict[str, np.ndarray]:
    """lz, ones and (on the cube) sensitivity for every key; ones and sensitivity straight
    from the packed keys, LZ from the bits unpacked in chunks to bound memory."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    lz = [lz_complexity(unpack_bits(keys[start : start + chunk], n_inputs)) for start in range(0, len(keys), chunk)]
    return {"lz": np.concatenate(lz) if lz else np.zeros(0, np.float64),
            "ones": np.bitwise_count(keys).sum(1, dtype=np.int64),
            "sensitivity": key_sensitivity(keys, n_inputs) if boolean_cube else np.full(len(keys), np.nan)}
