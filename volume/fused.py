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
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS that numba's np.dot calls)
import torch
from threadpoolctl import ThreadpoolController

from volume.functions import n_words
from volume.nets import MLP, Architecture
from volume.priors import Prior
from volume.rng import EDGES, HEIGHTS, TAIL_START, fill_row, seed_key
from volume.tasks import Task

BLOCK = 16  # networks per parallel work item: buffers are allocated once per block
ACTIVATIONS = ("identity", "relu", "tanh", "sign")  # kernel codes 0..3
# Each sgemm must run on the calling thread: its rounding then depends on the shapes alone,
# and the kernel's own threads are not oversubscribed.
_BLAS = ThreadpoolController()


def supports(arch: Architecture) -> bool:
    """Whether the fused kernel covers this architecture (any MLP does)."""
    return isinstance(arch, MLP)


def one_blas_thread():
    """Context: every sgemm runs on the calling thread (see _BLAS)."""
    return _BLAS.limit(limits=1, user_api="blas")


def weight_starts(arch: MLP) -> np.ndarray:
    """Offset in theta of each layer's weight block W_l, int64 [L]."""
    return np.array([arch.slice(f"W{k}").start for k in range(arch.n_layers)], dtype=np.int64)


def kernel_inputs(arch: MLP, x) -> np.ndarray:
    """x as the kernels take it: float32 [N, n_in], with a column of ones when the net has biases."""
    x = np.asarray(x, dtype=np.float32)
    if arch.bias:
        x = np.concatenate([x, np.ones((x.shape[0], 1), np.float32)], 1)
    return np.ascontiguousarray(x)


@nb.njit(cache=True)
def activate(z, h, activation, ones):
    # h[:, :fan_out] = activation(z) (0 identity, 1 relu, 2 tanh, 3 sign); h[:, fan_out] = 1 if ones.
    # One loop nest per activation: a branch inside the nest costs a third of the whole run.
    n, m = z.shape
    if activation == 1:
        for i in range(n):
            src, dst = z[i], h[i]
            for j in range(m):
                dst[j] = max(src[j], np.float32(0.0))
    elif activation == 2:
        for i in range(n):
            src, dst = z[i], h[i]
            for j in range(m):
                dst[j] = np.tanh(src[j])
    elif activation == 3:
        for i in range(n):
            src, dst = z[i], h[i]
            for j in range(m):
                dst[j] = np.sign(src[j])
    else:
        for i in range(n):
            h[i, :m] = z[i]
    if ones:
        for i in range(n):
            h[i, m] = 1.0


@nb.njit(cache=True)
def forward_layers(h, theta, z_buf, h_buf, widths, w_starts, bias, activation, pre, keep):
    # Every layer of one network (parameters theta) on h[N, widths[0] (+1 column of
    # ones with biases)]; returns the output pre-activations z[N, n_out], a view of z_buf.
    # If keep, every layer's pre-activations also go to pre[N, sum(widths[1:])], side by side.
    # With biases, layer l's block W_l [fan_in, fan_out] is followed in theta by b_l [fan_out],
    # so [h, 1] @ theta[W_l, b_l] is h @ W_l + b_l in a single sgemm (MLP.affine's numba twin, deliberately).
    n_inputs = h.shape[0]
    n_layers = widths.shape[0] - 1
    extra = 1 if bias else 0
    column = 0
    for layer in range(n_layers):
        fan_in, fan_out = widths[layer] + extra, widths[layer + 1]
        w = theta[w_starts[layer] : w_starts[layer] + fan_in * fan_out].reshape((fan_in, fan_out))
        z = z_buf[: n_inputs * fan_out].reshape((n_inputs, fan_out))
        np.dot(h, w, z)
        if keep:
            pre[:, column : column + fan_out] = z
            column += fan_out
        if layer < n_layers - 1:
            h = h_buf[layer % 2, : n_inputs * (fan_out + extra)].reshape((n_inputs, fan_out + extra))
            activate(z, h, activation, bias)
    return z


@nb.njit(cache=True)
def _network_key(words, outputs, keep, theta, x, z_buf, h_buf, widths, w_starts, bias, activation, output):
    # One network on x[N, n_in (+1)]: its packed key into words, and (if keep) its outputs.
    z = forward_layers(x, theta, z_buf, h_buf, widths, w_starts, bias, activation, z_buf[:0].reshape((0, 0)), False)
    n_inputs = x.shape[0]
    if keep:
        outputs[:] = z[:, output]
    words[:] = 0
    for n in range(n_inputs):
        if z[n, output] > 0:
            words[n >> 6] |= np.uint64(1) << np.uint64(n & 63)


@nb.njit(parallel=True, cache=True)
def _mlp_keys(keys, outputs, keep, key, first_row, scale, gaussian, edges, heights, tail_start, x, widths,
              w_starts, bias, activation, output):
    n_nets = keys.shape[0]
    n_params = scale.shape[0]
    max_width = widths[1:].max() + 1
    for block in nb.prange((n_nets + BLOCK - 1) // BLOCK):
        theta = np.empty(n_params, np.float32)
        scratch = np.empty(n_params, np.uint64)
        z_buf = np.empty(x.shape[0] * max_width, np.float32)
        h_buf = np.empty((2, x.shape[0] * max_width), np.float32)
        for i in range(block * BLOCK, min(n_nets, (block + 1) * BLOCK)):
            fill_row(theta, scratch, key, np.uint64(first_row + i) * np.uint64(n_params), scale, gaussian,
                     edges, heights, tail_start)
            _network_key(keys[i], outputs[i if keep else 0], keep, theta, x, z_buf, h_buf, widths, w_starts, bias,
                         activation, output)


def mlp_keys(arch: MLP, prior: Prior, task: Task, seed: int, first: int, n: int, output: int = 0,
             stream: int = 0) -> np.ndarray:
    """Keys uint64 [n, W] of samples first .. first + n - 1 of run `seed` (parameters exactly
    those of `prior.sample(arch, n, seed, offset=first, stream=stream)`), output column `output`."""
    return _run(arch, prior, task, seed, first, n, output, stream, False)[0]


def mlp_outputs(arch: MLP, prior: Prior, task: Task, seed: int, first: int, n: int, output: int = 0,
                stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """mlp_keys and the outputs float32 [n, N] they come from."""
    return _run(arch, prior, task, seed, first, n, output, stream, True)


@nb.njit(parallel=True, cache=True)
def _preactivations(theta, x, widths, w_starts, bias, activation, pre):
    max_width = widths[1:].max() + 1
    for block in nb.prange((theta.shape[0] + BLOCK - 1) // BLOCK):
        z_buf = np.empty(x.shape[0] * max_width, np.float32)
        h_buf = np.empty((2, x.shape[0] * max_width), np.float32)
        for j in range(block * BLOCK, min(theta.shape[0], (block + 1) * BLOCK)):
            forward_layers(x, theta[j], z_buf, h_buf, widths, w_starts, bias, activation, pre[j], True)


def mlp_preactivations(arch: MLP, theta: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
    """MLP.preactivations (every layer's pre-activations, each float32 [B, N, width]) through
    the per-network kernel: one sgemm a layer, so a network's values do not depend on the
    batch; against the torch forward only the rounding differs."""
    theta32 = np.ascontiguousarray(theta.detach().cpu().numpy(), dtype=np.float32)
    pre = np.empty((theta32.shape[0], x.shape[0], sum(arch.widths[1:])), np.float32)
    if len(pre):
        with one_blas_thread():
            _preactivations(theta32, kernel_inputs(arch, x), np.array(arch.widths, dtype=np.int64),
                            weight_starts(arch), arch.bias, ACTIVATIONS.index(arch.activation), pre)
    bounds = np.cumsum([0, *arch.widths[1:]])
    return [torch.from_numpy(pre[:, :, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _run(arch, prior, task, seed, first, n, output, stream, keep_outputs):
    if not supports(arch):
        raise ValueError(f"the fused kernel covers MLPs only, got {arch.describe()}")
    if not 0 <= output < arch.n_out:
        raise ValueError(f"output must be in 0..{arch.n_out - 1}, got {output}")
    if task.x.shape[1] != arch.n_in:
        raise ValueError(f"task inputs have width {task.x.shape[1]}, the network expects {arch.n_in}")
    n_inputs = task.x.shape[0]
    keys = np.empty((n, n_words(n_inputs)), dtype=np.uint64)
    outputs = np.empty((n if keep_outputs else 1, n_inputs), dtype=np.float32)  # row 0 unused if not kept
    if n == 0:
        return keys, outputs[:0]
    w_starts, x = weight_starts(arch), kernel_inputs(arch, task.x)
    with one_blas_thread():
        _mlp_keys(keys, outputs, keep_outputs, seed_key(seed, stream), np.int64(first),
                  np.ascontiguousarray(prior.std(arch)), prior.distribution == "normal", EDGES, HEIGHTS, TAIL_START, x,
                  np.array(arch.widths, dtype=np.int64), w_starts, arch.bias, ACTIVATIONS.index(arch.activation),
                  np.int64(output))
    return keys, outputs
