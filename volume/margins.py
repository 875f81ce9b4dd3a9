"""Target-margin scores of an MLP population on a shared input set, in one numba kernel.

The score of network b is (min_i sign_i y_i - margin) / (max_i |y_i| + margin + TINY), y its
output on input i (see `volume.estimators.scores.target_margin_score`). Nothing of size
[B, N] is materialised, and nothing is copied to float64 but the four extremes per network.

- Work items are blocks of BLOCK networks; within one, each network is computed alone.
- A perceptron on a full cube (2^n inputs, two values per coordinate, any row order: the
  Boolean tasks) never computes its 2^n outputs: y(a, b) = s_a + s_b with s_a = bias + w_A . a
  over the 2^(n/2) settings a of the first half of the coordinates and s_b = w_B . b over the
  second half, and float addition is monotone, so min_b fl(s_a + s_b) = fl(s_a + min_b s_b)
  exactly. The extremes of s_b over each distinct row of the target (as a 2^(n//2) x
  2^(n - n//2) grid, M distinct rows) and one add per s_a give the score: about 2^(n/2) * n
  multiply-adds and 4 * M * 2^(n - n//2) <= 4 * 2^n integer min/max instead of 2^n * (n + 1)
  multiply-adds (`cube_halves`, `cube_operations`).
- Any other perceptron runs input-major: its output on a tile of TILE inputs is built by vectorised
  passes over four input coordinates at a time (inputs stored transposed, [coordinate, input]).
- A deeper MLP runs `fused.forward_layers`: one sgemm per layer, as the key kernel does.
- The inputs are reordered so that the target's true inputs come first: then the min and max
  of y over each part give min_i sign_i y_i and max_i |y_i| (both blind to input order),
  with no signs multiplied in. The extremes use integer order keys (they vectorise).

Why not the first layer of a whole block as one GEMM over the shared inputs: measured,
OpenBLAS rounds a column differently depending on where it falls in its register tiles, so a
network's score would depend on which networks share its batch. Here it depends on its
parameters only (tests/test_margins.py), whatever the batch, order or thread count.

Forward in float32, as the torch score it replaces. Tiled perceptron scores match that torch
score bit for bit on the tests' cases; cube perceptrons (their sums in another order) and
deeper MLPs within float32 rounding (about 1e-6 relative), which moves a continuous score's
level sets by as much: immaterial to rare-event splitting, whose levels are continuous
quantiles.
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
INF_KEY32, NEG_INF_KEY32 = np.int32(INF_KEY), np.int32(NEG_INF_KEY)


@nb.njit(cache=True)
def _order_key(bits):
    # float32 bit pattern (as an integer) -> an integer in the same order as the floats
    # (an involution). Integer min/max loops vectorise; float ones do not (measured: 14x).
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@nb.njit(cache=True)
def _extremes(values, ext, part):
    # Running min and max of the float32 values into ext[part], ext[part + 1] (order keys).
    # A loop over a whole array, indices from 0: with range(lo, hi) numba must allow negative
    # indices, and the wraparound it adds per element turned vector loads into element-wise
    # inserts (vpinsrd): 2x slower (docs/performance.md).
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


@nb.njit(cache=True)
def _half_sums(values, theta_row, first, n_out, output, offset, sums):
    # sums[i] = offset + sum_k w_k values[i, k], w_k the weight of input coordinate first + k
    for i in range(values.shape[0]):
        total = offset
        for k in range(values.shape[1]):
            total += theta_row[(first + k) * n_out + output] * values[i, k]
        sums[i] = total


@nb.njit(cache=True)
def _masked_extremes(keys, masks, ext):
    # ext[m] = order keys of (min, max) of the values whose keys[i] has masks[m, i] set, then
    # (min, max) of the others; integer selects, so the loop vectorises.
    for m in range(masks.shape[0]):
        mask = masks[m]
        low_in, high_in, low_out, high_out = INF_KEY32, NEG_INF_KEY32, INF_KEY32, NEG_INF_KEY32
        for i in range(keys.shape[0]):
            key, inside = keys[i], mask[i]
            low_in = min(low_in, key if inside else INF_KEY32)
            high_in = max(high_in, key if inside else NEG_INF_KEY32)
            low_out = min(low_out, INF_KEY32 if inside else key)
            high_out = max(high_out, NEG_INF_KEY32 if inside else key)
        ext[m, 0], ext[m, 1], ext[m, 2], ext[m, 3] = low_in, high_in, low_out, high_out


@nb.njit(parallel=True, cache=True)
def _cube_perceptron_scores(theta, a_values, b_values, bias_row, row_mask, masks, n_out, output, margin, out):
    # See the module docstring: y on input (a, b) is s_a[a] + s_b[b] (a: the first coordinates,
    # b: the rest); row_mask[a] is the target's row of a among the distinct rows masks[M, 2^nb]
    # (true where the target is).
    n_masks = masks.shape[0]
    for block in nb.prange((theta.shape[0] + BLOCK - 1) // BLOCK):
        s_a, s_b = np.empty(a_values.shape[0], np.float32), np.empty(b_values.shape[0], np.float32)
        keys = np.empty(b_values.shape[0], np.int32)
        half, ext = np.empty((n_masks, 4), np.int32), np.empty(4, np.int64)
        extremes = np.empty(4, np.float32)
        for j in range(block * BLOCK, min(theta.shape[0], (block + 1) * BLOCK)):
            bias = theta[j, bias_row * n_out + output] if bias_row >= 0 else np.float32(0.0)
            _half_sums(a_values, theta[j], 0, n_out, output, bias, s_a)
            _half_sums(b_values, theta[j], a_values.shape[1], n_out, output, np.float32(0.0), s_b)
            bits = s_b.view(np.int32)
            for i in range(keys.shape[0]):
                keys[i] = _order_key(bits[i])
            _masked_extremes(keys, masks, half)
            for m in range(n_masks):  # order keys back to float32 bit patterns
                for k in range(4):
                    half[m, k] = _order_key(half[m, k])
            b_ext = half.view(np.float32)
            # min and max of y over the true inputs, then over the false ones (s_a + inf = inf)
            extremes[0], extremes[1] = np.float32(np.inf), np.float32(-np.inf)
            extremes[2], extremes[3] = np.float32(np.inf), np.float32(-np.inf)
            for i in range(s_a.shape[0]):
                e, a = b_ext[row_mask[i]], s_a[i]
                extremes[0], extremes[1] = min(extremes[0], a + e[0]), max(extremes[1], a + e[1])
                extremes[2], extremes[3] = min(extremes[2], a + e[2]), max(extremes[3], a + e[3])
            ext_bits = extremes.view(np.int32)
            for k in range(4):
                ext[k] = _order_key(ext_bits[k])
            out[j] = _score(ext, margin)


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

    def __init__(self, arch: MLP, x: torch.Tensor, target: np.ndarray, output: int = 0, margin: float = 0.0,
                 outer_sums: bool = True):
        # outer_sums=False: a perceptron on a cube takes the dense tiled kernel too (benchmarks, tests)
        target = np.asarray(target, dtype=bool)
        order = np.argsort(~target, kind="stable")  # the target's true inputs first
        self.arch, self.output, self.margin = arch, int(output), float(margin)
        self.n_inputs, self.n_pos = len(target), int(target.sum())
        x = np.asarray(x, dtype=np.float32)
        self.cube = cube_halves(x, target) if arch.n_layers == 1 and outer_sums else None
        # what one network costs, read by splitting's thread rule
        self.flops_per_network = (flops_per_network(arch, self.n_inputs) if self.cube is None
                                  else cube_operations(self.cube))
        self.x = None  # the cube kernel needs no inputs
        if self.cube is None:
            self.x = fused.kernel_inputs(arch, x[order])
            if arch.n_layers == 1:
                self.x = input_tiles(self.x, min(TILE, len(target)))

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        # one float32 copy of theta (the estimators keep float64 parameters), none of the outputs
        theta32 = np.ascontiguousarray(theta.detach().cpu().numpy(), dtype=np.float32)
        out = np.empty(theta32.shape[0], np.float64)
        if not len(out):
            pass
        elif self.cube is not None:
            bias_row = self.arch.widths[0] if self.arch.bias else -1
            a_values, b_values, row_mask, masks = self.cube
            _cube_perceptron_scores(theta32, a_values, b_values, bias_row, row_mask, masks, self.arch.n_out,
                                    self.output, self.margin, out)
        elif self.arch.n_layers == 1:
            _perceptron_scores(theta32, self.x, self.n_inputs, self.n_pos, self.arch.n_out, self.output,
                               self.margin, out)
        else:
            with fused.one_blas_thread():
                _mlp_scores(theta32, self.x, self.n_pos, np.array(self.arch.widths, dtype=np.int64),
                            fused.weight_starts(self.arch), self.arch.bias,
                            fused.ACTIVATIONS.index(self.arch.activation), self.output, self.margin, out)
        return torch.from_numpy(out)


def cube_halves(x: np.ndarray, target: np.ndarray) -> tuple | None:
    """The cube kernel's tables when x[N, n] is a full cube (N = 2^n distinct rows, each
    coordinate taking two values; rows in any order), else None: (a_values, b_values,
    row_mask, masks): every setting of the first n // 2 coordinates ([2^(n//2), n//2],
    setting i has coordinate k high where bit k of i is set) and of the rest, and the target
    on the [2^(n//2), 2^(n - n//2)] grid of settings as masks[M] (its distinct rows, uint8)
    and row_mask[2^(n//2)] (which row each setting has)."""
    n_rows, n = x.shape
    if n < 2 or n_rows != 2 ** n:
        return None
    low, high = x.min(0), x.max(0)
    if np.any(low == high) or not np.all((x == low) | (x == high)):
        return None
    n_a = n // 2
    bits = (x == high).astype(np.int64)
    index_a, index_b = bits[:, :n_a] @ (1 << np.arange(n_a)), bits[:, n_a:] @ (1 << np.arange(n - n_a))
    if len(np.unique(index_a << (n - n_a) | index_b)) != n_rows:  # a repeated row
        return None
    grid = np.zeros((1 << n_a, 1 << (n - n_a)), np.uint8)
    grid[index_a, index_b] = np.asarray(target, bool)
    masks, row_mask = np.unique(grid, axis=0, return_inverse=True)

    def settings(columns: np.ndarray) -> np.ndarray:
        on = (np.arange(1 << len(columns))[:, None] >> np.arange(len(columns))) & 1
        return np.ascontiguousarray(np.where(on == 1, high[columns], low[columns]), dtype=np.float32)

    return (settings(np.arange(n_a)), settings(np.arange(n_a, n)), row_mask.reshape(-1).astype(np.int64),
            np.ascontiguousarray(masks))


def cube_operations(cube: tuple) -> int:
    """Arithmetic operations of the outer-sum kernel per network (multiply-adds x 2, then the
    compares): the two half tables, the masked extremes of s_b, one add and compare per s_a."""
    a_values, b_values, _, masks = cube
    n_a, n_b = len(a_values), len(b_values)
    return 2 * (n_a * (a_values.shape[1] + 1) + n_b * b_values.shape[1]) + 4 * len(masks) * n_b + 8 * n_a


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

