"""Function keys and mergeable count tables.

A key is a network's thresholded outputs on the N inputs packed into bits: bit i is 1 when
the output on input i is strictly > 0. In memory a key is W = ceil(N/64) little-endian
uint64 words (word w holds inputs 64w .. 64w+63); as text it is the lowercase hex of the
N-bit integer, ceil(N/4) digits. Memory grows with the number of distinct functions,
never with the number of samples.
"""
from __future__ import annotations

import numpy as np
import torch

from volume.tasks import hex_digits


def n_words(n_inputs: int) -> int:
    return -(-n_inputs // 64)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """bool [B, N] -> uint64 [B, W] keys."""
    bits = np.ascontiguousarray(bits, dtype=bool)
    n_rows, n_inputs = bits.shape
    packed = np.packbits(bits, axis=1, bitorder="little")
    width = n_words(n_inputs) * 8
    if packed.shape[1] != width:
        packed = np.concatenate([packed, np.zeros((n_rows, width - packed.shape[1]), np.uint8)], 1)
    return packed.view("<u8")


def output_keys(outputs: torch.Tensor) -> np.ndarray:
    """Keys of network outputs[B, N] (or [B, N, 1]): bit i set when output i > 0."""
    if outputs.dim() == 3:
        if outputs.shape[2] != 1:
            raise ValueError("keys are defined for one output; pick an output column first")
        outputs = outputs[..., 0]
    return pack_bits((outputs > 0).numpy())


def unpack_bits(keys: np.ndarray, n_inputs: int) -> np.ndarray:
    """uint64 [D, W] keys -> bool [D, N]."""
    keys = np.ascontiguousarray(keys, dtype="<u8")
    return np.unpackbits(keys.view(np.uint8), axis=1, count=n_inputs, bitorder="little").astype(bool)


def keys_to_hex(keys: np.ndarray, n_inputs: int) -> list[str]:
    """uint64 [D, W] -> lowercase hex strings of ceil(N/4) digits each."""
    keys = np.ascontiguousarray(keys, dtype="<u8")
    n_rows, width = keys.shape
    if n_rows == 0:
        return []
    text = np.ascontiguousarray(keys[:, ::-1]).astype(">u8").tobytes().hex()
    per_row, digits = 16 * width, hex_digits(n_inputs)
    return [text[r * per_row + per_row - digits : (r + 1) * per_row] for r in range(n_rows)]


def hex_to_keys(texts: list[str], n_inputs: int) -> np.ndarray:
    """Inverse of keys_to_hex."""
    width = n_words(n_inputs)
    out = np.zeros((len(texts), width), dtype=np.uint64)
    for r, text in enumerate(texts):
        value = int(text, 16)
        for w in range(width):
            out[r, w] = (value >> (64 * w)) & 0xFFFFFFFFFFFFFFFF
    return out


def _row_view(keys: np.ndarray) -> np.ndarray:
    keys = np.ascontiguousarray(keys, dtype="<u8")
    return keys.view(np.dtype((np.void, 8 * keys.shape[1]))).ravel()


def unique_counts(keys: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of keys[B, W] (in canonical byte order) and their (weighted) counts."""
    if keys.shape[0] == 0:
        return keys.reshape(0, keys.shape[1]).astype(np.uint64), np.zeros(0, np.int64)
    rows = _row_view(keys)
    if weights is None:
        uniq, counts = np.unique(rows, return_counts=True)
        counts = counts.astype(np.int64)
    else:
        uniq, inverse = np.unique(rows, return_inverse=True)
        counts = np.zeros(len(uniq), np.int64)
        np.add.at(counts, inverse.ravel(), np.asarray(weights, dtype=np.int64))
    return uniq.view("<u8").reshape(len(uniq), keys.shape[1]).copy(), counts


class FunctionTable:
    """Exact key -> count table. add() takes batches of keys; merge() sums tables exactly."""

    _FLUSH_ROWS = 1 << 20

    def __init__(self, n_inputs: int):
        self.n_inputs = int(n_inputs)
        self.width = n_words(self.n_inputs)
        self._keys = np.zeros((0, self.width), np.uint64)
        self._counts = np.zeros(0, np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def add(self, keys: np.ndarray) -> None:
        if keys.ndim != 2 or keys.shape[1] != self.width:
            raise ValueError(f"keys must be uint64 [B, {self.width}], got {keys.shape}")
        self._pending.append(np.asarray(keys, dtype=np.uint64))
        self._pending_rows += keys.shape[0]
        if self._pending_rows >= self._FLUSH_ROWS:
            self._flush()

    def add_counts(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._flush()
        self._combine(keys, counts)

    def _flush(self) -> None:
        if not self._pending:
            return
        batch_keys, batch_counts = unique_counts(np.concatenate(self._pending))
        self._pending, self._pending_rows = [], 0
        self._combine(batch_keys, batch_counts)

    def _combine(self, keys: np.ndarray, counts: np.ndarray) -> None:
        all_keys = np.concatenate([self._keys, np.asarray(keys, np.uint64)])
        all_counts = np.concatenate([self._counts, np.asarray(counts, np.int64)])
        self._keys, self._counts = unique_counts(all_keys, all_counts)

    @property
    def keys(self) -> np.ndarray:
        self._flush()
        return self._keys

    @property
    def counts(self) -> np.ndarray:
        self._flush()
        return self._counts

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def __len__(self) -> int:
        return len(self.counts)

    def merge(self, other: "FunctionTable") -> "FunctionTable":
        if other.n_inputs != self.n_inputs:
            raise ValueError(f"cannot merge tables over {self.n_inputs} and {other.n_inputs} inputs")
        out = FunctionTable(self.n_inputs)
        out.add_counts(np.concatenate([self.keys, other.keys]), np.concatenate([self.counts, other.counts]))
        return out

    def count_of(self, key_hex: str) -> int:
        target = hex_to_keys([key_hex], self.n_inputs)
        match = np.all(self.keys == target, axis=1)
        return int(self.counts[match].sum())

    def sorted_by_count(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and counts, most frequent first; ties in canonical key order."""
        order = np.argsort(-self.counts, kind="stable")
        return self.keys[order], self.counts[order]

    def state(self) -> dict[str, np.ndarray]:
        return {"keys": self.keys, "counts": self.counts, "n_inputs": np.array(self.n_inputs)}

    @classmethod
    def from_state(cls, state) -> "FunctionTable":
        table = cls(int(state["n_inputs"]))
        table._keys = np.asarray(state["keys"], np.uint64).reshape(-1, table.width)
        table._counts = np.asarray(state["counts"], np.int64)
        return table

    def __eq__(self, other) -> bool:
        return (isinstance(other, FunctionTable) and self.n_inputs == other.n_inputs
                and np.array_equal(self.keys, other.keys) and np.array_equal(self.counts, other.counts))
