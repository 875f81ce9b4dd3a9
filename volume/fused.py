"""Fused sample + forward + key for MLP populations: one numba kernel, parallel over networks.

Network j's parameters are generated into a thread-local buffer by the same counter-based
generator as `Prior.sample` (`volume.rng.fill_row`), so they are bit-identical to row j of
`prior.sample(arch, ..., offset=j)`; the network then runs on all N inputs (float32, one
sgemm per layer on [N, fan_in] x [fan_in, fan_out]) and its outputs are packed into a key
(bit i = output on input i > 0, little-endian uint64 words, as in `volume.functions`).
Nothing is shared between networks and each is computed serially by one thread, so keys
are bit-identical whatever the thread count or batch size. Against the torch path the
parameters are identical but the matmul rounding differs, so an output within float32
rounding of 0 may get the other bit.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from volume.functions import n_words
from volume.nets import MLP, Architecture
from volume.priors import Prior
from volume.rng import EDGES, HEIGHTS, TAIL_START, fill_row, seed_key
from volume.tasks import Task

BLOCK = 16  # networks per parallel work item: buffers are allocated once per block
_ACTIVATIONS = ("identity", "relu", "tanh", "sign")


def supports(arch: Architecture) -> bool:
    """Whether the fused kernel covers this architecture (any MLP does)."""
    return isinstance(arch, MLP)


@nb.njit(cache=True)
def _bias_activate(z, theta, b_start, activation):
    # In place on z[N, fan_out]: + bias (b_start < 0: none), then the activation (0: none).
    n, m = z.shape
    for i in range(n):
        row = z[i]
        if b_start >= 0:
            for j in range(m):
                row[j] += theta[b_start + j]
        if activation == 1:
            for j in range(m):
                row[j] = max(row[j], np.float32(0.0))
        elif activation == 2:
            for j in range(m):
                row[j] = np.tanh(row[j])
        elif activation == 3:
            for j in range(m):
                row[j] = np.sign(row[j])


@nb.njit(cache=True)
def _network_key(words, theta, buffers, x, widths, w_starts, b_starts, activation, output):
    # The forward of one network (parameters theta) on x[N, n_in] and its packed key.
    n_inputs = x.shape[0]
    n_layers = widths.shape[0] - 1
    h = x
    for layer in range(n_layers):
        fan_in, fan_out = widths[layer], widths[layer + 1]
        w = theta[w_starts[layer] : w_starts[layer] + fan_in * fan_out].reshape((fan_in, fan_out))
        z = buffers[layer % 2, : n_inputs * fan_out].reshape((n_inputs, fan_out))
        np.dot(h, w, z)
        _bias_activate(z, theta, b_starts[layer], activation if layer < n_layers - 1 else 0)
        h = z
    words[:] = 0
    for n in range(n_inputs):
        if h[n, output] > 0:
            words[n >> 6] |= np.uint64(1) << np.uint64(n & 63)


@nb.njit(parallel=True, cache=True)
def _mlp_keys(keys, key, first_row, scale, gaussian, edges, heights, tail_start, x, widths, w_starts,
              b_starts, activation, output):
    n_nets = keys.shape[0]
    n_params = scale.shape[0]
    max_width = widths[1:].max()
    for block in nb.prange((n_nets + BLOCK - 1) // BLOCK):
        theta = np.empty(n_params, np.float32)
        scratch = np.empty(n_params, np.uint64)
        buffers = np.empty((2, x.shape[0] * max_width), np.float32)
        for i in range(block * BLOCK, min(n_nets, (block + 1) * BLOCK)):
            fill_row(theta, scratch, key, np.uint64(first_row + i) * np.uint64(n_params), scale, gaussian,
                     edges, heights, tail_start)
            _network_key(keys[i], theta, buffers, x, widths, w_starts, b_starts, activation, output)


def mlp_keys(arch: MLP, prior: Prior, task: Task, seed: int, first: int, n: int, output: int = 0,
             stream: int = 0) -> np.ndarray:
    """Keys uint64 [n, W] of samples first .. first + n - 1 of run `seed` (parameters exactly
    those of `prior.sample(arch, n, seed, offset=first, stream=stream)`)."""
    if not supports(arch):
        raise ValueError(f"the fused kernel covers MLPs only, got {arch.describe()}")
    if not 0 <= output < arch.n_out:
        raise ValueError(f"output must be in 0..{arch.n_out - 1}, got {output}")
    if task.x.shape[1] != arch.n_in:
        raise ValueError(f"task inputs have width {task.x.shape[1]}, the network expects {arch.n_in}")
    keys = np.empty((n, n_words(task.x.shape[0])), dtype=np.uint64)
    if n == 0:
        return keys
    layers = range(arch.n_layers)
    w_starts = np.array([arch.slice(f"W{k}").start for k in layers], dtype=np.int64)
    b_starts = np.array([arch.slice(f"b{k}").start if arch.bias else -1 for k in layers], dtype=np.int64)
    x = np.ascontiguousarray(task.x.numpy(), dtype=np.float32)
    _mlp_keys(keys, seed_key(seed, stream), np.int64(first), np.ascontiguousarray(prior.std(arch)),
              prior.distribution == "normal", EDGES, HEIGHTS, TAIL_START, x,
              np.array(arch.widths, dtype=np.int64), w_starts, b_starts, _ACTIVATIONS.index(arch.activation),
              np.int64(output))
    return keys
