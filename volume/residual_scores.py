"""Scores of ResidualMLP populations in numba kernels: the target margin
(`volume.estimators.scores.target_margin_score`) and the depth class score (`circuits.depth.class_score`):
min(target margin, circuits.depth.class_scores(fractions, T, tau)[name]), the fractions the
share of each block write's non-constant Walsh power on each chi_S.

Work items are blocks of networks, each network computed alone, in float32 as the torch
scores: the forward (coordinate-major, stream [d, N], each block's write kept [L, d, N];
plain loops vectorised over the inputs, the matrices are a few units wide), then for the
class score the Walsh butterfly of every write coordinate (the same butterflies as
`circuits.units.walsh`), power fractions, and the serial / parallel / single readings of
`circuits.depth.reading_scores`: the max over placements of the min over their conditions,
taken by running maxima over the blocks (exact: only min and max) rather than by listing
the placements. Nothing of size [B, N] is formed.

Against the torch scores only the rounding of the small matmuls and sums differs (their order
of accumulation), about 1e-7 of an output's scale or of a fraction: a score moves by as much,
so its sign can differ only where an output is within rounding of 0 or a fraction within
rounding of tau (tests/test_residual_scores.py).
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch

from circuits import depth as cdepth
from circuits.units import cube_dim
from volume import fused
from volume.margins import BLOCK, INF_KEY, NEG_INF_KEY, _reduce, _score, signed_margin
from volume.nets import ResidualMLP

# class codes: positions in circuits.depth.LABELS (any other code is "other")
SERIAL, PARALLEL, SINGLE, MIXED = (cdepth.LABELS.index(n) for n in ("serial", "parallel", "single", "mixed"))


@nb.njit(cache=True)
def _affine(h, theta, w_at, b_at, z):
    # z[m, N] = (h.T @ W + b).T for h[k, N] (coordinate-major: the loops over inputs vectorise),
    # W = theta[w_at : w_at + k m] as [k, m], b_at < 0: no bias. Each entry sums over k in
    # order, then adds the bias, as matmul + bias.
    k, m = h.shape[0], z.shape[0]
    for j in range(m):
        row, w0 = z[j], theta[w_at + j]
        for i in range(row.shape[0]):
            row[i] = h[0, i] * w0
        for t in range(1, k):
            wt, src = theta[w_at + t * m + j], h[t]
            for i in range(row.shape[0]):
                row[i] += src[i] * wt
        if b_at >= 0:
            b = theta[b_at + j]
            for i in range(row.shape[0]):
                row[i] += b


@nb.njit(cache=True)
def _forward(x_t, theta, starts, activation, r, z, a, writes, y):
    # writes[k] = block k's write [d, N], y[n_out, N] the outputs of one network on the inputs
    # x_t[n_in, N] (transposed). starts[k] = offsets of W_in, b_in, W_out, b_out of block k;
    # starts[L] of W_read, b_read.
    r[:] = 0.0
    r[: x_t.shape[0]] = x_t
    for k in range(writes.shape[0]):
        _affine(r, theta, starts[k, 0], starts[k, 1], z)
        fused.activate(z, a, activation, False)
        _affine(a, theta, starts[k, 2], starts[k, 3], writes[k])
        for c in range(r.shape[0]):
            r[c] += writes[k, c]
    _affine(r, theta, starts[-1, 0], starts[-1, 1], y)


@nb.njit(cache=True)
def _walsh(v):
    # v[2^n] -> its Walsh coefficients (circuits.units.walsh), in place: the same butterflies
    # (a + b, b - a), then the division by 2^n.
    n_inputs = v.shape[0]
    half = 1
    while half < n_inputs:
        for base in range(0, n_inputs, 2 * half):
            for i in range(base, base + half):
                low, high = v[i], v[i + half]
                v[i], v[i + half] = low + high, high - low
        half *= 2
    for i in range(n_inputs):
        v[i] /= np.float32(n_inputs)


@nb.njit(cache=True)
def _fractions(write, spec, power, tau, a):
    # a[S] = share of the write[d, N]'s non-constant Walsh power on chi_S, minus tau
    # (circuits.units.power_fractions; an all-constant write gets shares 0).
    power[:] = 0.0
    for c in range(write.shape[0]):
        spec[:] = write[c]
        _walsh(spec)
        for s in range(1, spec.shape[0]):
            power[s] += spec[s] * spec[s]
    total = power.sum()
    for s in range(power.shape[0]):
        a[s] = (power[s] / total if total > 0 else np.float32(0.0)) - tau


@nb.njit(cache=True)
def _serial(a, chains, run):
    # max over chains (S_2, ..., S_t) and blocks i_2 < ... < i_t of min_q a[i_q, S_q] (-inf if
    # none): circuits.depth.serial_placements' max, by running maxima over the blocks.
    # run[k] = best over chain prefixes ending in block k.
    best = np.float32(-np.inf)
    for c in range(chains.shape[0]):
        run[:] = a[:, chains[c, 0]]
        for q in range(1, chains.shape[1]):
            before = np.float32(-np.inf)  # best prefix in a block < k
            for k in range(a.shape[0]):
                here = min(before, a[k, chains[c, q]])
                before = max(before, run[k])
                run[k] = here
        for k in range(a.shape[0]):
            best = max(best, run[k])
    return best


@nb.njit(cache=True)
def _parallel(a, T, splits):
    # max over splits (A, B) of T and blocks i, j < k of min(a[i, A], a[j, B], a[k, T]):
    # circuits.depth.parallel_placements' max, by running maxima over the blocks.
    best = np.float32(-np.inf)
    for p in range(splits.shape[0]):
        run_a, run_b = np.float32(-np.inf), np.float32(-np.inf)
        for k in range(a.shape[0]):
            best = max(best, min(min(run_a, run_b), a[k, T]))
            run_a, run_b = max(run_a, a[k, splits[p, 0]]), max(run_b, a[k, splits[p, 1]])
    return best


@nb.njit(cache=True)
def _single(a, T, inter):
    # max over blocks k of min(a[k, T], min over blocks before k of -(max over intermediates S of a[., S]))
    best, clear = np.float32(-np.inf), np.float32(np.inf)
    for k in range(a.shape[0]):
        best = max(best, min(a[k, T], clear))
        worst = np.float32(-np.inf)
        for s in inter:
            worst = max(worst, a[k, s])
        clear = min(clear, -worst)
    return best


@nb.njit(cache=True)
def _class_value(a, T, chains, splits, inter, name, run):
    # circuits.depth.class_scores[name] from a[L, 2^n] = fractions - tau (run: L floats of scratch)
    s, p = _serial(a, chains, run), _parallel(a, T, splits)
    if name == SERIAL:
        return min(s, -p)
    if name == PARALLEL:
        return min(p, -s)
    if name == MIXED:
        return min(s, p)
    g = _single(a, T, inter)
    if name == SINGLE:
        return min(min(g, -s), -p)
    return min(min(-s, -p), -g)


@nb.njit(cache=True)
def _buffers(n_inputs, widths, n_blocks):
    # one block's forward buffers (stream r, z, act, writes, output y), widths = (d, w, n_out)
    d, w = widths[0], widths[1]
    r, writes = np.empty((d, n_inputs), np.float32), np.empty((n_blocks, d, n_inputs), np.float32)
    z, act = np.empty((w, n_inputs), np.float32), np.empty((w, n_inputs), np.float32)
    return r, z, act, writes, np.empty((widths[2], n_inputs), np.float32)


@nb.njit(parallel=True, cache=True)
def _depth_scores(theta, x_t, signs, starts, activation, widths, tau, T, chains, splits, inter, name, out):
    # one network at a time within a block of BLOCK (output column 0); x_t[n_in, N]
    n_inputs, n_blocks = x_t.shape[1], starts.shape[0] - 1
    for block in nb.prange((theta.shape[0] + BLOCK - 1) // BLOCK):
        r, z, act, writes, y = _buffers(n_inputs, widths, n_blocks)
        spec, power = np.empty(n_inputs, np.float32), np.empty(n_inputs, np.float32)
        a = np.empty((n_blocks, n_inputs), np.float32)  # fractions - tau, [block, S]
        column, run = np.empty(n_inputs, np.float32), np.empty(n_blocks, np.float32)
        for j in range(block * BLOCK, min(theta.shape[0], (block + 1) * BLOCK)):
            _forward(x_t, theta[j], starts, activation, r, z, act, writes, y)
            for k in range(n_blocks):
                _fractions(writes[k], spec, power, tau, a[k])
            column[:] = y[0] * signs
            out[j] = min(signed_margin(column), np.float64(_class_value(a, T, chains, splits, inter, name, run)))


@nb.njit(parallel=True, cache=True)
def _target_margins(theta, x_t, n_pos, starts, activation, widths, output, margin, out):
    # margins._score of each network's output column `output`, the inputs x_t[n_in, N] ordered
    # with the target's true ones first (n_pos of them): an input's output does not depend on its place.
    n_inputs, n_blocks = x_t.shape[1], starts.shape[0] - 1
    for block in nb.prange((theta.shape[0] + BLOCK - 1) // BLOCK):
        r, z, act, writes, y = _buffers(n_inputs, widths, n_blocks)
        ext = np.empty(4, np.int64)
        for j in range(block * BLOCK, min(theta.shape[0], (block + 1) * BLOCK)):
            _forward(x_t, theta[j], starts, activation, r, z, act, writes, y)
            ext[0::2], ext[1::2] = INF_KEY, NEG_INF_KEY
            _reduce(y[output], n_inputs, n_pos, ext)
            out[j] = _score(ext, margin)


def parameter_starts(arch: ResidualMLP) -> np.ndarray:
    """int64 [L + 1, 4]: offsets in theta of W_in, b_in, W_out, b_out of each block, then of
    W_read, b_read (-1: no bias)."""
    def at(name: str) -> int:
        return arch.slice(name).start if arch.bias or not name.startswith("b_") else -1

    rows = [[at(f"{p}{k}") for p in ("W_in", "b_in", "W_out", "b_out")] for k in range(arch.n_blocks)]
    return np.array(rows + [[at("W_read"), at("b_read"), -1, -1]], dtype=np.int64)


class _ResidualScore:
    """What both kernels take of the architecture, and the call: theta[B, P] -> float64 [B]."""

    def __init__(self, arch: ResidualMLP):
        self.arch, self.starts = arch, parameter_starts(arch)
        self.widths = np.array([arch.stream_width, arch.block_width, arch.n_out], np.int64)
        self.activation = fused.ACTIVATIONS.index(arch.activation)

    def _kernel(self, theta32: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        theta32 = np.ascontiguousarray(theta.detach().cpu().numpy(), dtype=np.float32)
        out = np.empty(theta32.shape[0], np.float64)
        if len(out):
            self._kernel(theta32, out)
        return torch.from_numpy(out)


class ResidualMarginScorer(_ResidualScore):
    """The target-margin score (`volume.estimators.scores.target_margin_score`) of each
    ResidualMLP in theta on inputs x[N, n_in], target labels [N], output column, margin."""

    def __init__(self, arch: ResidualMLP, x, target: np.ndarray, output: int = 0, margin: float = 0.0):
        super().__init__(arch)
        target = np.asarray(target, dtype=bool)
        self.x_t = np.ascontiguousarray(np.asarray(x, np.float32)[np.argsort(~target, kind="stable")].T)
        self.n_pos, self.output, self.margin = int(target.sum()), int(output), float(margin)

    def _kernel(self, theta32: np.ndarray, out: np.ndarray) -> None:
        _target_margins(theta32, self.x_t, self.n_pos, self.starts, self.activation, self.widths, self.output,
                        self.margin, out)


class DepthScorer(_ResidualScore):
    """The depth class score `name` (module doc) of each ResidualMLP in theta on the task's
    cube, parity target set T, threshold tau."""

    def __init__(self, arch: ResidualMLP, task, T: int, tau: float, name: str):
        if not isinstance(arch, ResidualMLP) or arch.n_out != 1:
            raise ValueError("the depth score takes a ResidualMLP with one output")
        if name not in cdepth.LABELS:
            raise ValueError(f"name: one of {cdepth.LABELS}, got {name!r}")
        super().__init__(arch)
        self.T, self.tau, self.name = int(T), np.float32(tau), cdepth.LABELS.index(name)
        self.x_t = np.ascontiguousarray(np.asarray(task.x, np.float32).T)
        cube_dim(self.x_t.shape[1])  # the Walsh reading needs the whole cube
        self.signs = np.where(np.asarray(task.target, bool), 1.0, -1.0).astype(np.float32)
        self.chains = np.array(cdepth.chains(self.T), dtype=np.int64).reshape(-1, bin(self.T).count("1") - 1)
        self.splits = np.array(cdepth.splits(self.T), dtype=np.int64).reshape(-1, 2)
        self.inter = np.array(cdepth.intermediates(self.T), dtype=np.int64)

    def _kernel(self, theta32: np.ndarray, out: np.ndarray) -> None:
        _depth_scores(theta32, self.x_t, self.signs, self.starts, self.activation, self.widths, self.tau, self.T,
                      self.chains, self.splits, self.inter, self.name, out)
