"""Target-margin scores of an MLP population on a shared input set, in one numba kernel.

The score of network b is (min_i sign_i y_i - margin) / (max_i |y_i| + margin + TINY), y its
output on input i (see `volume.estimators.scores.target_margin_score`). Nothing of size
[B, N] is materialised, and nothing is copied to float64 but the four extremes per network.

- Work items are blocks of BLOCK networks; within one, each network is computed alone.
- A perceptron runs input-major: its output on a tile of TILE inputs is built by vectorised
  passes over four input coordinates at a time (inputs stored transposed, [coordinate, input]).
- A deeper MLP runs `fused.forward_layers`: one sgemm per layer, as the key kernel does.
- The inputs are reordered so that the target's true inputs come first: then the min and max
  of y over each part give min_i sign_i y_i and max_i |y_i| (both blind to input order),
  with no signs multiplied in. The extremes use integer order keys (they vectorise).

Why not the first layer of a whole block as one GEMM over the shared inputs: measured,
OpenBLAS rounds a column differently depending on where it falls in its register tiles, so a
network's score would depend on which networks share its batch. Here it depends on its
parameters only (tests/test_margins.py), whatever the batch, order or thread count.

Forward in float32, as the torch score it replaces. Perceptron scores match that torch
score bit for bit on the tests' cases; deeper MLPs within float32 rounding (about 1e-6
relative), which moves a continuous score's level sets by as much: immaterial to
rare-event splitting, whose levels are continuous quantiles.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch

from volume import fused
from volume.nets import MLP

BLOCK = 16  # networks per parallel work item (buffers are allocated once per block)
TILE = 2048  # inputs per tile of a perceptron: the tile's outputs (8 KB) stay in L1
TINY = 1e-300  # keeps the all-zero network (measure zero) from dividing 0 by 0
# Order keys (see _order_key) of +inf and -inf: the running min and max start there.
INF_KEY = int(np.float32(np.inf).view(np.int32))
NEG_INF_KEY = int(np.float32(-np.inf).view(np.int32)) ^ 0x7FFFFFFF


@nb.njit(cache=True)
def _order_key(bits):
    # float32 bit pattern (as an integer) -> an integer in the same order as the floats
    # (an involution). Integer min/max loops vectorise; float ones do not (measured: 14x).
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@nb.njit(cache=True)
def _extremes(values, ext, part):
    # Running min and max of the float32 values into ext[part], ext[part + 1] (order keys).
    # A loop over a whole array, indices from 0: with range(lo, hi) numba must allow negative
    # indices, and the wraparound it adds per element turned vector loads into gathers (4x).
    bits = values.view(np.int32)
    low, high = ext[part], ext[part + 1]
    for i in range(bits.shape[0]):
        key = _order_key(bits[i])
        low, high = min(low, key), max(high, key)
    ext[part], ext[part + 1] = low, high


@nb.njit(cache=True)
def _reduce(y, rows, n_pos, ext):
    # Extremes of y[:rows] over the target's true inputs (the first n_pos) and the false ones.
    split = max(min(n_pos, rows), 0)
    _extremes(y[:split], ext, 0)
    _extremes(y[split:rows], ext, 2)


@nb.njit(cache=True)
def _score(ext, margin):
    # (min_i sign_i y_i - margin) / (max_i |y_i| + margin + TINY) from the order keys of min y,
    # max y over the true inputs (ext[0:2]) and over the false ones (ext[2:4]).
    v = np.empty(4, np.int32)
    for k in range(4):
        v[k] = _order_key(ext[k])
    y = v.view(np.float32)
    lowest = min(y[0], -y[3])
    scale = max(max(y[1], -y[0]), max(y[3], -y[2]))
    return (np.float64(lowest) - margin) / (np.float64(scale) + margin + TINY)


@nb.njit(cache=True)
def signed_margin(y):
    # (min_i y_i) / (max_i |y_i| + TINY) for y[N] float32, the outputs times the target's signs
    # (the class scores' target margin, inputs in any order): the extremes in float32 (exact),
    # the division in float64, as the torch scores do.
    lowest, scale = y[0], abs(y[0])
    for i in range(1, y.shape[0]):
        lowest, scale = min(lowest, y[i]), max(scale, abs(y[i]))
    return np.float64(lowest) / (np.float64(scale) + TINY)


@nb.njit(fastmath={"contract"}, cache=True)
def _linear(x_t, w, y):
    # y = w @ x_t for x_t[k, tile] (inputs contiguous): the loop over inputs vectorises and
    # every network is summed in the same order, alone (MLP.affine's numba twin, deliberately):
    # y = w0 x0, then one fused multiply-add per coordinate, k = 1, 2, ... Four coordinates per
    # pass over y (the same adds in the same order) load and store y a quarter as often: 1.5x.
    x0, w0 = x_t[0], w[0]
    for i in range(y.shape[0]):
        y[i] = w0 * x0[i]
    k = 1
    while k + 4 <= x_t.shape[0]:
        wa, wb, wc, wd = w[k], w[k + 1], w[k + 2], w[k + 3]
        xa, xb, xc, xd = x_t[k], x_t[k + 1], x_t[k + 2], x_t[k + 3]
        for i in range(y.shape[0]):
            # each + contracts to exactly one fma: the only product beside it is its own
            y[i] = (((y[i] + wa * xa[i]) + wb * xb[i]) + wc * xc[i]) + wd * xd[i]
        k += 4
    for k in range(k, x_t.shape[0]):
        wk, xk = w[k], x_t[k]
        for i in range(y.shape[0]):
            y[i] += wk * xk[i]


@nb.njit(parallel=True, cache=True)
def _perceptron_scores(theta, x_tiles, n_inputs, n_pos, n_out, output, margin, out):
    # A perceptron: theta[:, :fan_in * n_out] is [W; b], x_tiles[t] the inputs (and a row of
    # ones) of tile t, transposed, [fan_in, TILE], zero past n_inputs. Tiles outer, networks
    # inner: each tile is read from memory once per block, not once per network.
    n_tiles, fan_in, tile = x_tiles.shape
    for block in nb.prange((theta.shape[0] + BLOCK - 1) // BLOCK):
        first, n_nets = block * BLOCK, min(BLOCK, theta.shape[0] - block * BLOCK)
        w, y = np.empty((n_nets, fan_in), np.float32), np.empty(tile, np.float32)
        ext = np.empty((n_nets, 4), np.int64)
        ext[:, 0::2], ext[:, 1::2] = INF_KEY, NEG_INF_KEY
        for j in range(n_nets):
            for k in range(fan_in):
                w[j, k] = theta[first + j, k * n_out + output]
        for t in range(n_tiles):
            for j in range(n_nets):
                _linear(x_tiles[t], w[j], y)
                _reduce(y, min(tile, n_inputs - t * tile), n_pos - t * tile, ext[j])
        for j in range(n_nets):
            out[first + j] = _score(ext[j], margin)


@nb.njit(parallel=True, cache=True)
def _mlp_scores(theta, x, n_pos, widths, w_starts, bias, activation, output, margin, out):
    # An MLP with hidden layers: each network through fused.forward_layers (one sgemm a layer).
    n_inputs = x.shape[0]
    max_width = widths[1:].max() + 1
    for block in nb.prange((theta.shape[0] + BLOCK - 1) // BLOCK):
        z_buf = np.empty(n_inputs * max_width, np.float32)
        h_buf = np.empty((2, n_inputs * max_width), np.float32)
        y = np.empty(n_inputs, np.float32)
        no_pre = np.empty((0, 0), np.float32)  # pre-activations are not kept
        ext = np.empty(4, np.int64)
        for j in range(block * BLOCK, min(theta.shape[0], (block + 1) * BLOCK)):
            z = fused.forward_layers(x, theta[j], z_buf, h_buf, widths, w_starts, bias, activation, no_pre, False)
            y[:] = z[:, output]
            ext[0::2], ext[1::2] = INF_KEY, NEG_INF_KEY
            _reduce(y, n_inputs, n_pos, ext)
            out[j] = _score(ext, margin)


class MarginScorer:
    """score(theta[B, P]) -> float64 [B]: the target-margin score of each MLP in theta on x."""

    def __init__(self, arch: MLP, x: torch.Tensor, target: np.ndarray, output: int = 0, margin: float = 0.0):
        target = np.asarray(target, dtype=bool)
        order = np.argsort(~target, kind="stable")  # the target's true inputs first
        self.arch, self.output, self.margin = arch, int(output), float(margin)
        self.n_inputs, self.n_pos = len(target), int(target.sum())
        self.flops_per_network = flops_per_network(arch, self.n_inputs)  # read by splitting's thread rule
        self.x = fused.kernel_inputs(arch, np.asarray(x, dtype=np.float32)[order])
        if arch.n_layers == 1:
            self.x = input_tiles(self.x, min(TILE, len(target)))

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        # one float32 copy of theta (the estimators keep float64 parameters), none of the outputs
        theta32 = np.ascontiguousarray(theta.detach().cpu().numpy(), dtype=np.float32)
        out = np.empty(theta32.shape[0], np.float64)
        if not len(out):
            pass
        elif self.arch.n_layers == 1:
            _perceptron_scores(theta32, self.x, self.n_inputs, self.n_pos, self.arch.n_out, self.output,
                               self.margin, out)
        else:
            with fused.one_blas_thread():
                _mlp_scores(theta32, self.x, self.n_pos, np.array(self.arch.widths, dtype=np.int64),
                            fused.weight_starts(self.arch), self.arch.bias,
                            fused.ACTIVATIONS.index(self.arch.activation), self.output, self.margin, out)
        return torch.from_numpy(out)


def input_tiles(x: np.ndarray, tile: int) -> np.ndarray:
    """x[N, m] as float32 [ceil(N / tile), m, tile]: tiles of inputs, transposed, zero past N."""
    n_tiles = -(-x.shape[0] // tile)
    tiles = np.zeros((n_tiles * tile, x.shape[1]), np.float32)
    tiles[: x.shape[0]] = x
    return np.ascontiguousarray(tiles.reshape(n_tiles, tile, x.shape[1]).transpose(0, 2, 1))


def flops_per_network(arch: MLP, n_inputs: int) -> int:
    """Multiply-adds x 2 of one forward on n_inputs (biases counted as a column of ones)."""
    extra = 1 if arch.bias else 0
    return 2 * n_inputs * sum((a + extra) * b for a, b in zip(arch.widths[:-1], arch.widths[1:]))

