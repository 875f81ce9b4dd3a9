"""The llama class score of an MLP population (`circuits.llama.unit_class_score`) in one numba kernel.

score(theta) = min(target margin, max over hidden units u and keys g of margin_g(u) / scale(u)):
- target margin: (min_i sign_i y_i) / (max_i |y_i| + TINY), y the output (column 0) on input i;
- margin_g(u) = min over the cube of s_g(x) z_u(x), s_g = +1 where the function g of
  `variables` is true, -1 where false; scale(u) = max |z_u| over the cube + the float32
  smallest normal (`circuits.units.function_margins(..., scaled=True)`).

Work items are blocks of networks, each network computed alone (as `volume.margins`, whose
docstring says why not one GEMM over the population): `fused.forward_layers` keeps every
layer's pre-activations in a block buffer [N, units], then one pass over the inputs takes,
for every hidden unit, the min and max over each group of inputs sharing a value of
`variables` (integer order keys, so the loop over units vectorises); the margins against
every key come from those 2^k pieces. Nothing of size [B, N] is formed.

Exactness: the pre-activations are those of `fused.mlp_preactivations` (same code, same
sgemm shapes), and every later step is an exact min/max or one correctly rounded float32
division / addition in the same order as the torch reference, so the score equals
`circuits.llama.torch_unit_class_score` bit for bit (tests/test_unit_scores.py); against a torch
forward (`arch.preactivations`) only the matmul rounding differs (about 1e-6 relative).
Parameters are taken finite (as the estimators' are): NaN is not propagated as torch does.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch

from circuits.units import key_bits, subset_index
from volume import fused
from volume.margins import BLOCK, INF_KEY, NEG_INF_KEY, _order_key, signed_margin
from volume.nets import MLP

TINY32 = float(np.finfo(np.float32).tiny)  # function_margins' tiny for float32 z


@nb.njit(cache=True)
def _group_extremes(bits, units, group, lo, hi):
    # lo[d, u], hi[d, u]: order keys of the min and max of unit u (column u of bits[N, >= units],
    # float32 bit patterns) over the inputs i with group[i] = d. Vectorises over u.
    lo[:], hi[:] = INF_KEY, NEG_INF_KEY
    for i in range(bits.shape[0]):
        row, low, high = bits[i], lo[group[i]], hi[group[i]]
        for u in range(units):
            key = _order_key(row[u])
            low[u], high[u] = min(low[u], key), max(high[u], key)


@nb.njit(cache=True)
def _best_unit(lo, hi, table):
    # max over units u and keys g of (min over patterns d of table[g, d] ? lo : -hi) / scale(u),
    # in float32, from lo, hi[2^k, units] float32; table[g, d] = value of key g on pattern d.
    # max(a/s, b/s) = max(a, b)/s exactly (rounding is monotone), so each unit divides once.
    n_keys, n_groups = table.shape
    best = np.float32(-np.inf)
    for u in range(lo.shape[1]):
        scale = np.float32(0.0)
        for d in range(n_groups):
            scale = max(scale, max(hi[d, u], -lo[d, u]))
        margin = np.float32(-np.inf)
        for g in range(n_keys):
            worst = np.float32(np.inf)
            for d in range(n_groups):
                worst = min(worst, lo[d, u] if table[g, d] else -hi[d, u])
            margin = max(margin, worst)
        best = max(best, margin / (scale + np.float32(TINY32)))
    return best


@nb.njit(cache=True)
def _as_floats(keys):
    # order keys (int32 [M]) -> their float32 values, in place (the map is an involution)
    for i in range(keys.shape[0]):
        keys[i] = _order_key(keys[i])
    return keys.view(np.float32)


@nb.njit(parallel=True, cache=True)
def _unit_scores(theta, x, signs, group, table, widths, w_starts, bias, activation, out):
    n_inputs, n_groups = x.shape[0], table.shape[1]
    units = widths[1:-1].sum()  # hidden units of all layers: the first columns of pre
    max_width = widths[1:].max() + 1
    for block in nb.prange((theta.shape[0] + BLOCK - 1) // BLOCK):
        z_buf = np.empty(n_inputs * max_width, np.float32)
        h_buf = np.empty((2, n_inputs * max_width), np.float32)
        pre = np.empty(n_inputs * (units + widths[-1]), np.float32)
        pre2 = pre.reshape((n_inputs, units + widths[-1]))
        bits = pre.view(np.int32).reshape((n_inputs, units + widths[-1]))
        lo, hi = np.empty(n_groups * units, np.int32), np.empty(n_groups * units, np.int32)
        y = np.empty(n_inputs, np.float32)
        for j in range(block * BLOCK, min(theta.shape[0], (block + 1) * BLOCK)):
            fused.forward_layers(x, theta[j], z_buf, h_buf, widths, w_starts, bias, activation, pre2, True)
            for i in range(n_inputs):
                y[i] = pre2[i, units] * signs[i]
            _group_extremes(bits, units, group, lo.reshape((n_groups, units)), hi.reshape((n_groups, units)))
            low, high = _as_floats(lo).reshape((n_groups, units)), _as_floats(hi).reshape((n_groups, units))
            unit = _best_unit(low, high, table)
            out[j] = min(signed_margin(y), np.float64(unit))


class UnitScorer:
    """score(theta[B, P]) -> float64 [B]: the llama class score (module doc) of each MLP in theta."""

    def __init__(self, arch: MLP, task, variables: list[int], keys):
        keys = np.asarray(keys, np.uint64).reshape(-1)
        if not fused.supports(arch) or arch.n_layers < 2:
            raise ValueError(f"the unit score needs an MLP with >= 1 hidden layer, got {arch.describe()}")
        if not len(keys) or not 1 <= len(variables) <= 6:
            raise ValueError(f"needs >= 1 key and 1..6 variables, got {len(keys)} keys, {len(variables)} variables")
        self.arch = arch
        self.x = fused.kernel_inputs(arch, task.x)
        self.signs = np.where(np.asarray(task.target, bool), 1.0, -1.0).astype(np.float32)
        self.group = subset_index(task.n_vars, list(variables)).astype(np.int64)
        self.table = key_bits(keys, len(variables)).numpy().astype(np.uint8)  # [G, 2^k]

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        theta32 = np.ascontiguousarray(theta.detach().cpu().numpy(), dtype=np.float32)
        out = np.empty(theta32.shape[0], np.float64)
        if len(out):
            with fused.one_blas_thread():
                _unit_scores(theta32, self.x, self.signs, self.group, self.table,
                             np.array(self.arch.widths, dtype=np.int64), fused.weight_starts(self.arch),
                             self.arch.bias, fused.ACTIVATIONS.index(self.arch.activation), out)
        return torch.from_numpy(out)
