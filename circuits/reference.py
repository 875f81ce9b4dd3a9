"""Hand-built networks with known mechanisms: sanity anchors for the classifiers.

Llamaizer MLPs (inputs x_1..x_4 then m distractor bits, pm1 encoding, one output computing
f = (x_1 and x_2) or (x_3 and x_4)), built from ReLU gadgets whose pre-activations stay at
least 0.2 away from 0 on the cube, so small weight noise changes no unit's truth table:
- direct: layer 1 A = [x1 x2], B = [x3 x4]; layer 2 F = relu(A + B - 1/2); out = F - 1/4.
- shallow: a layer-1 unit P = relu(w.d - t - 1) computes a threshold h of the distractors d
  (integer (w, t) from the enumeration), copied by the layer-2 unit U = relu(P - 1/2).
- deep: layer-1 minterm units [d = d0] for each d0 with h(d0) = 1, OR-ed by the layer-2
  unit U = relu(sum - 1/2) = h / 2: a non-threshold h needs this second layer.
- inert: out = F - 1/4 ignores U. used: out = relu(A + B + S - 1/2) - U - 1/5 with S the
  llama's inputs (P or the minterms): f computed as (f or h) minus h, so removing U breaks it.
Unused units have bias -1 and no weights: dead on the whole cube, robustly.

Residual parity nets (n inputs, parity of the bits T; stream width >= n + 2): an XOR gadget
of two +-1 stream coordinates a, b uses two units relu(a - b), relu(b - a) and writes
g (1 - relu(a-b) - relu(b-a)) = g a b. Chain: x1x2 -> coord n (block i), (x1x2)x3 -> coord
n+1 (block j), (x1x2x3)x4 -> 3 x coord n (block k); tree: the two pairs -> coords n, n+1
(blocks i, j; one block of 4 units when i = j), their product -> 3 x coord n (block k);
single block: a piecewise-linear parity of s = sum of the T bits (|T| units) -> coord n.
The readout reads coord n with the sign that makes "odd number of ones" positive.
"""
from __future__ import annotations

import numpy as np
import torch

from circuits.boolean import is_threshold, threshold_functions
from volume.nets import MLP, ResidualMLP

LLAMA_KINDS = ("direct", "shallow_inert", "shallow_used", "deep_inert", "deep_used")
DEFAULT_H = {"shallow": 0b1000, "deep": 0b0110}  # h(d) = d1 and d2 ; d1 xor d2 (on d1, d2)


def _theta(arch, values: dict[str, np.ndarray]) -> torch.Tensor:
    theta = np.zeros(arch.n_params, dtype=np.float32)
    for s in arch.slices:
        if s.name in values:
            theta[s.start : s.stop] = np.asarray(values[s.name], np.float32).reshape(-1)
    return torch.from_numpy(theta).unsqueeze(0)


def _expand_h(h: int, m: int, short: int) -> int:
    """A key over `short` variables read as a function of m >= short variables."""
    return sum(1 << d for d in range(1 << m) if (h >> (d & ((1 << short) - 1))) & 1)


def llama_network(kind: str, m: int = 3, h: int | None = None, widths: tuple[int, int] = (12, 6),
                  placement: int = 0) -> tuple[MLP, torch.Tensor, dict]:
    """(arch, theta[1, P], info) of a hand-built llamaizer (see the module doc). h is a key over
    the m distractor bits (default: d1 and d2 for shallow, d1 xor d2 for deep). placement
    seeds a permutation of the units inside each layer (0 keeps them in order). info names
    the llama units as (layer, unit) and h."""
    if kind not in LLAMA_KINDS:
        raise ValueError(f"kind: unknown {kind!r}; allowed: {list(LLAMA_KINDS)}")
    depth, _, use = kind.partition("_")
    if depth != "direct":
        h = _expand_h(DEFAULT_H[depth], m, 2) if h is None else int(h)
        if not 0 < h < (1 << (1 << m)) - 1:
            raise ValueError(f"h: a non-constant key over {m} distractor bits, got {h}")
        if bool(is_threshold(np.array([h], np.uint64), m)[0]) != (depth == "shallow"):
            raise ValueError(f"h = {h:#x} is {'not ' if depth == 'shallow' else ''}linearly separable; "
                             f"a {depth} llama needs the opposite")
    n, (w1, w2) = 4 + m, widths
    need = 2 + (bin(h).count("1") if depth == "deep" else 1 if depth == "shallow" else 0)
    if w1 < need or w2 < 2:
        raise ValueError(f"widths: this {kind} net needs >= {need} units in layer 1 and 2 in layer 2, got {widths}")
    rng = np.random.default_rng(placement)
    p1 = np.arange(w1) if placement == 0 else rng.permutation(w1)
    p2 = np.arange(w2) if placement == 0 else rng.permutation(w2)
    W0, b0 = np.zeros((n, w1)), np.full(w1, -1.0)
    W1, b1 = np.zeros((w1, w2)), np.full(w2, -1.0)
    W2, b2 = np.zeros((w2, 1)), np.zeros(1)
    A, B = p1[0], p1[1]
    W0[[0, 1], A], W0[[2, 3], B], b0[[A, B]] = 1.0, 1.0, -1.0
    sources, llamas = [], []
    if depth == "shallow":
        keys, params = threshold_functions(m)
        w, t = params[np.searchsorted(keys, np.uint64(h))][:m], params[np.searchsorted(keys, np.uint64(h))][m]
        P = p1[2]
        W0[4:, P], b0[P] = w, -t - 1.0
        sources, llamas = [P], [(0, int(P))]
    elif depth == "deep":
        for slot, d0 in enumerate(d for d in range(1 << m) if (h >> d) & 1):
            unit = p1[2 + slot]
            signs = np.where((d0 >> np.arange(m)) & 1, 1.0, -1.0)
            W0[4:, unit], b0[unit] = signs, -(m - 1.0)
            sources.append(unit)
            llamas.append((0, int(unit)))
    F, U = p2[0], p2[1]
    W1[[A, B], F], b1[F] = 1.0, -0.5
    if depth != "direct":
        W1[sources, U], b1[U] = 1.0, -0.5
        llamas.append((1, int(U)))
    if use == "used":
        W1[sources, F] = 1.0  # F becomes relu(A + B + S - 1/2) = (f or h), up to scale
        W2[F, 0], W2[U, 0], b2[0] = 1.0, -1.0, -0.2
    else:
        W2[F, 0], b2[0] = 1.0, -0.25
    arch = MLP([n, w1, w2, 1], "relu", bias=True)
    theta = _theta(arch, {"W0": W0, "b0": b0, "W1": W1, "b1": b1, "W2": W2, "b2": b2})
    return arch, theta, {"kind": kind, "h": h, "llama_units": llamas, "m": m}


class StreamBuilder:
    """Writes gadgets into the parameters of a ResidualMLP; every unit starts dead (b_in = -1)."""

    def __init__(self, n: int, n_blocks: int, block_width: int, stream_width: int):
        self.arch = ResidualMLP(n, n_blocks, block_width, stream_width, 1, "relu", bias=True)
        self.values = {}
        d, w = stream_width, block_width
        for k in range(n_blocks):
            self.values.update({f"W_in{k}": np.zeros((d, w)), f"b_in{k}": np.full(w, -1.0),
                                f"W_out{k}": np.zeros((w, d)), f"b_out{k}": np.zeros(d)})
        self.values.update({"W_read": np.zeros((d, 1)), "b_read": np.zeros(1)})
        self.used = [0] * n_blocks

    def _units(self, block: int, count: int) -> range:
        if not 0 <= block < self.arch.n_blocks:
            raise ValueError(f"block {block} outside 0..{self.arch.n_blocks - 1}")
        start = self.used[block]
        if start + count > self.arch.block_width:
            raise ValueError(f"block {block} needs {start + count} units, width is {self.arch.block_width}")
        self.used[block] += count
        return range(start, start + count)

    def xor(self, block: int, a: int, b: int, out: int, gain: float = 1.0) -> None:
        """Block writes gain * r_a * r_b into coordinate out (r_a, r_b = +-1 on the cube)."""
        u, v = self._units(block, 2)
        W_in, W_out = self.values[f"W_in{block}"], self.values[f"W_out{block}"]
        W_in[a, u], W_in[b, u], W_in[a, v], W_in[b, v] = 1.0, -1.0, -1.0, 1.0
        self.values[f"b_in{block}"][[u, v]] = 0.0
        W_out[[u, v], out] -= gain
        self.values[f"b_out{block}"][out] += gain

    def parity(self, block: int, bits: list[int], out: int, gain: float = 1.0) -> None:
        """Block writes gain * prod of the +-1 inputs `bits` into coordinate out, in one step:
        the parity as a piecewise-linear function of s = sum of the bits (len(bits) units)."""
        t = len(bits)
        units = self._units(block, t)
        values = [(-1.0) ** (t - p) for p in range(t + 1)]  # prod at s = -t + 2p
        slopes = [(values[p + 1] - values[p]) / 2 for p in range(t)]
        coeffs = [slopes[0]] + [slopes[q] - slopes[q - 1] for q in range(1, t)]
        for q, unit in enumerate(units):
            self.values[f"W_in{block}"][bits, unit] = 1.0
            self.values[f"b_in{block}"][unit] = t - 2.0 * q  # kink at s = -t + 2q
            self.values[f"W_out{block}"][unit, out] += gain * coeffs[q]
        self.values[f"b_out{block}"][out] += gain * values[0]

    def read(self, coord: int, n_target_bits: int) -> tuple[ResidualMLP, torch.Tensor]:
        """Readout of coord with the sign making "odd number of ones" positive; (arch, theta)."""
        # prod of +-1 bits is (-1)^(number of -1s): odd ones <=> prod = -1 for an even count
        self.values["W_read"][coord, 0] = -1.0 if n_target_bits % 2 == 0 else 1.0
        return self.arch, _theta(self.arch, self.values)


def _check_four(n: int, bits) -> list[int]:
    bits = list(bits)
    if len(bits) != 4 or len(set(bits)) != 4 or not all(0 <= b < n for b in bits):
        raise ValueError(f"chain and tree references compute the parity of 4 distinct bits of 0..{n - 1}, got {bits}")
    return bits


def parity_chain(n_blocks: int, block_width: int, blocks: tuple[int, int, int], order=(0, 1, 2, 3),
                 n: int = 4, stream_width: int | None = None) -> tuple[ResidualMLP, torch.Tensor]:
    """Serial: x_a x_b in block i, times x_c in block j, times x_d in block k (i < j < k);
    order = (a, b, c, d) as 0-based bits."""
    i, j, k = blocks
    if not i < j < k:
        raise ValueError(f"a chain needs blocks i < j < k, got {blocks}")
    a, b, c, d = _check_four(n, order)
    sb = StreamBuilder(n, n_blocks, block_width, stream_width or n + 2)
    sb.xor(i, a, b, n)
    sb.xor(j, n, c, n + 1)
    sb.xor(k, n + 1, d, n, gain=3.0)
    return sb.read(n, 4)


def parity_tree(n_blocks: int, block_width: int, blocks: tuple[int, int, int], pairs=((0, 1), (2, 3)),
                n: int = 4, stream_width: int | None = None) -> tuple[ResidualMLP, torch.Tensor]:
    """Parallel: pair A in block i, pair B in block j (i = j allowed with width >= 4), their
    product in block k > max(i, j)."""
    i, j, k = blocks
    if not max(i, j) < k:
        raise ValueError(f"a tree needs max(i, j) < k, got {blocks}")
    (a, b), (c, d) = pairs
    _check_four(n, (a, b, c, d))
    sb = StreamBuilder(n, n_blocks, block_width, stream_width or n + 2)
    sb.xor(i, a, b, n)
    sb.xor(j, c, d, n + 1)
    sb.xor(k, n, n + 1, n, gain=3.0)
    return sb.read(n, 4)


def parity_single(n_blocks: int, block_width: int, block: int, bits=(0, 1, 2, 3), n: int | None = None,
                  stream_width: int | None = None) -> tuple[ResidualMLP, torch.Tensor]:
    """Single block: the parity of `bits` computed at once in block `block` (len(bits) units)."""
    n = len(bits) if n is None else n
    sb = StreamBuilder(n, n_blocks, block_width, stream_width or n + 2)
    sb.parity(block, list(bits), n)
    return sb.read(n, len(bits))
