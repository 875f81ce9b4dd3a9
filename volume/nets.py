"""Architectures: parameter layouts and one batched forward for a whole population.

An architecture owns no parameters. A population is a float tensor theta[B, P]; each
architecture knows which slice of P is which weight or bias, and runs all B networks on
inputs x[N, n] at once, giving outputs[B, N, k].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from volume.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sign": torch.sign,
    "identity": lambda t: t,
}


def _activate_(z: torch.Tensor, activation: str) -> torch.Tensor:
    """The activation, in place where torch has an in-place form."""
    if activation == "relu":
        return z.relu_()
    if activation == "tanh":
        return z.tanh_()
    if activation == "sign":
        return z.sign_()
    return z


@dataclass(frozen=True)
class Slice:
    """One named block of the flat parameter vector."""

    name: str
    start: int
    shape: tuple[int, ...]
    kind: str  # "weight" or "bias"
    fan_in: int

    @property
    def size(self) -> int:
        out = 1
        for s in self.shape:
            out *= s
        return out

    @property
    def stop(self) -> int:
        return self.start + self.size

    def view(self, theta: torch.Tensor) -> torch.Tensor:
        """This block of every network in theta[B, P], shaped [B, *shape]."""
        return theta[:, self.start : self.stop].reshape(theta.shape[0], *self.shape)


class Architecture:
    """Base: a list of slices and a batched forward. Subclasses build the slices."""

    slices: list[Slice]
    n_in: int
    n_out: int

    @property
    def n_params(self) -> int:
        return self.slices[-1].stop if self.slices else 0

    def slice(self, name: str) -> Slice:
        for s in self.slices:
            if s.name == name:
                return s
        raise KeyError(name)

    def _layout(self, blocks: list[tuple[str, tuple[int, ...], str, int]]) -> list[Slice]:
        out, start = [], 0
        for name, shape, kind, fan_in in blocks:
            s = Slice(name, start, shape, kind, fan_in)
            out.append(s)
            start = s.stop
        return out

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def unit_blocks(self) -> list[np.ndarray]:
        """Flat parameter indices of each unit, read off the slices: column j of a weight
        slice [fan_in, width] (the unit's incoming weights), entry j of the bias slice right
        after it, and row j of the next weight slice that reads the width (its outgoing
        weights). Every parameter lies in at least one block; blocks overlap (a weight is in
        the block of the unit it feeds and of the unit it reads). Used by rare-event moves
        that resample a whole unit at once."""
        blocks = []
        for k, s in enumerate(self.slices):
            if s.kind != "weight" or len(s.shape) != 2:
                continue
            width = s.shape[1]
            incoming = np.arange(s.start, s.stop).reshape(s.shape).T  # [width, fan_in]
            rest = self.slices[k + 1 :]
            bias = rest[0] if rest and rest[0].kind == "bias" and rest[0].shape == (width,) else None
            following = rest[1:] if bias is not None else rest
            reader = next((r for r in following if r.kind == "weight"), None)
            outgoing = (np.arange(reader.start, reader.stop).reshape(reader.shape)
                        if reader is not None and len(reader.shape) == 2 and reader.shape[0] == width else None)
            for j in range(width):
                parts = [incoming[j]]
                if bias is not None:
                    parts.append(np.array([bias.start + j]))
                if outgoing is not None:
                    parts.append(outgoing[j])
                blocks.append(np.concatenate(parts))
        covered = np.zeros(self.n_params, bool)
        for b in blocks:
            covered[b] = True
        # parameters outside any weight's unit (e.g. a lone bias slice) form one block each
        blocks.extend(np.array([i]) for i in np.flatnonzero(~covered))
        return blocks


class MLP(Architecture):
    """Fully connected net: widths = [n_in, *hidden, n_out]. Weights stored [fan_in, fan_out]."""

    def __init__(self, widths: list[int], activation: str = "relu", bias: bool = True):
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation: unknown {activation!r}; allowed: {sorted(ACTIVATIONS)}")
        if len(widths) < 2 or any(int(w) < 1 for w in widths):
            raise ConfigError(f"model.hidden: widths must be positive integers, got {list(widths)}")
        self.widths = [int(w) for w in widths]
        self.activation = activation
        self.bias = bool(bias)
        self.n_in, self.n_out = self.widths[0], self.widths[-1]
        blocks = []
        for layer, (a, b) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            blocks.append((f"W{layer}", (a, b), "weight", a))
            if self.bias:
                blocks.append((f"b{layer}", (b,), "bias", 1))
        self.slices = self._layout(blocks)

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    def affine(self, theta: torch.Tensor, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Pre-activations of `layer`, h[B, N, fan_in] @ W + b -> [B, N, fan_out] (a new tensor),
        from the flat parameters theta[B, P]: one bmm and an in-place bias."""
        z = torch.bmm(h, self.slice(f"W{layer}").view(theta))
        if self.bias:
            z += self.slice(f"b{layer}").view(theta).unsqueeze(1)
        return z

    def _run(self, theta: torch.Tensor, x: torch.Tensor, keep: bool) -> list[torch.Tensor]:
        # affine + in-place activation: the hot path of every population run.
        h = x.to(theta.dtype).expand(theta.shape[0], *x.shape)
        kept = []
        for layer in range(self.n_layers):
            z = self.affine(theta, h, layer)
            if layer == self.n_layers - 1:
                break
            if keep:
                kept.append(z.clone())
            h = _activate_(z, self.activation)
        return [*kept, z] if keep else [z]

    def preactivations(self, theta: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
        """Pre-activations of every layer (hidden layers, then the output), each [B, N, width]."""
        return self._run(theta, x, keep=True)

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._run(theta, x, keep=False)[-1]

    def describe(self) -> str:
        return f"MLP({'-'.join(map(str, self.widths))}, {self.activation}, bias={self.bias})"


class ResidualMLP(Architecture):
    """Residual stream of width d; x is written into its first n coordinates (fixed, no
    parameters), the rest start at zero. Block k adds W_out relu(W_in r + b_in) (+ b_out) to
    the stream; a linear readout (d -> n_out) gives the output.

    Scale convention: every weight has std sigma_w / sqrt(fan_in) under a fan-in-scaled prior,
    so W_out's std is sigma_w / sqrt(block width) whatever the number of blocks L; the
    stream's variance therefore grows with L (no 1/sqrt(L) factor).
    """

    def __init__(self, n_in: int, n_blocks: int, block_width: int, stream_width: int,
                 n_out: int = 1, activation: str = "relu", bias: bool = True):
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation: unknown {activation!r}; allowed: {sorted(ACTIVATIONS)}")
        if n_blocks < 1 or block_width < 1:
            raise ConfigError("model.n_blocks and model.block_width must be positive integers")
        if stream_width < n_in:
            raise ConfigError(f"model.stream_width: must be >= the input width {n_in}, got {stream_width}")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.n_blocks, self.block_width, self.stream_width = int(n_blocks), int(block_width), int(stream_width)
        self.activation, self.bias = activation, bool(bias)
        d, w = self.stream_width, self.block_width
        blocks = []
        for k in range(self.n_blocks):
            blocks.append((f"W_in{k}", (d, w), "weight", d))
            if self.bias:
                blocks.append((f"b_in{k}", (w,), "bias", 1))
            blocks.append((f"W_out{k}", (w, d), "weight", w))
            if self.bias:
                blocks.append((f"b_out{k}", (d,), "bias", 1))
        blocks.append(("W_read", (d, self.n_out), "weight", d))
        if self.bias:
            blocks.append(("b_read", (self.n_out,), "bias", 1))
        self.slices = self._layout(blocks)

    def embed(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        stream = torch.zeros(x.shape[0], self.stream_width, dtype=dtype, device=x.device)
        stream[:, : self.n_in] = x.to(dtype)
        return stream

    def block_write(self, theta: torch.Tensor, stream: torch.Tensor, k: int) -> torch.Tensor:
        """What block k adds to the stream[B, N, d]: W_out act(W_in r + b_in) + b_out."""
        z = torch.matmul(stream, self.slice(f"W_in{k}").view(theta))
        if self.bias:
            z = z + self.slice(f"b_in{k}").view(theta).unsqueeze(1)
        write = torch.matmul(ACTIVATIONS[self.activation](z), self.slice(f"W_out{k}").view(theta))
        if self.bias:
            write = write + self.slice(f"b_out{k}").view(theta).unsqueeze(1)
        return write

    def initial_stream(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x, theta.dtype).unsqueeze(0).expand(theta.shape[0], -1, -1)

    def block_writes(self, theta: torch.Tensor, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each block's write to the stream ([B, N, d] each) and the final stream."""
        r = self.initial_stream(theta, x)
        writes = []
        for k in range(self.n_blocks):
            writes.append(self.block_write(theta, r, k))
            r = r + writes[-1]
        return writes, r

    def readout(self, theta: torch.Tensor, stream: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(stream, self.slice("W_read").view(theta))
        if self.bias:
            out = out + self.slice("b_read").view(theta).unsqueeze(1)
        return out

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.readout(theta, self.block_writes(theta, x)[1])

    def describe(self) -> str:
        return (f"ResidualMLP(n={self.n_in}, L={self.n_blocks}, block={self.block_width}, "
                f"stream={self.stream_width}, {self.activation}, bias={self.bias})")


class Composite(Architecture):
    """Sub-networks side by side on the same input: theta is their parameters one after
    another (slices renamed `<name>_<part>`), the output their outputs concatenated. A
    class asking something of every part is a product of the parts' classes, so its
    exact volume is the product of theirs: the non-convex validation cases of the
    rare-event estimator are built this way (volume.estimators.ground_truth)."""

    def __init__(self, parts: list[Architecture]):
        if not parts or len({p.n_in for p in parts}) != 1:
            raise ValueError("Composite: needs at least one part, all with the same input width")
        self.parts = list(parts)
        self.n_in, self.n_out = parts[0].n_in, sum(p.n_out for p in parts)
        self.slices = self._layout([(f"{s.name}_{i}", s.shape, s.kind, s.fan_in)
                                    for i, part in enumerate(parts) for s in part.slices])

    def unit_blocks(self) -> list[np.ndarray]:
        """Each part's unit blocks, shifted to its place in theta (never across parts)."""
        blocks, start = [], 0
        for part in self.parts:
            blocks.extend(b + start for b in part.unit_blocks())
            start += part.n_params
        return blocks

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        outputs, start = [], 0
        for part in self.parts:
            outputs.append(part.forward(theta[:, start : start + part.n_params].contiguous(), x))
            start += part.n_params
        return torch.cat(outputs, -1)

    def describe(self) -> str:
        return f"Composite({', '.join(p.describe() for p in self.parts)})"


def build_architecture(model_cfg, n_in: int) -> Architecture:
    """Architecture from the `model` config group; the input width comes from the task."""
    kind = model_cfg.get("name", "mlp")
    n_out = int(model_cfg.get("n_out", 1))
    if n_out < 1:
        raise ConfigError(f"model.n_out: must be a positive integer, got {n_out}")
    if kind == "mlp":
        hidden = list(model_cfg.get("hidden", []))
        bad = [h for h in hidden if not isinstance(h, int) or isinstance(h, bool) or h < 1]
        if bad:
            raise ConfigError(f"model.hidden: widths must be positive integers, got {hidden}")
        return MLP([n_in, *hidden, n_out], model_cfg.get("activation", "relu"), model_cfg.get("bias", True))
    if kind == "resmlp":
        for key in ("n_blocks", "block_width", "stream_width"):
            value = model_cfg.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model.{key}: must be a positive integer, got {value!r}")
        return ResidualMLP(n_in, model_cfg.n_blocks, model_cfg.block_width, model_cfg.stream_width,
                           n_out, model_cfg.get("activation", "relu"), model_cfg.get("bias", True))
    raise ConfigError(f"model.name: unknown {kind!r}; allowed: ['mlp', 'resmlp']")
