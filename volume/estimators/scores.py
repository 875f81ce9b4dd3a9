"""Continuous scores: a class C of networks is the set {theta : score(theta) > 0}.

A score is a plain function theta[B, P] -> [B] (float64). The rare-event and conditional
estimators only need the score; they never look inside the network. Later experiments
pass their own: min(target margin, circuit score) in one forward pass with
`target_and_class_score` (the circuits/ classifiers' class scores), or any `min_score`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from volume import fused
from volume.margins import TINY, MarginScorer
from volume.nets import Architecture, ResidualMLP

Score = Callable[[torch.Tensor], torch.Tensor]
# Rows of theta per forward call: keeps activations [ROWS, N, width] in cache-sized pieces.
ROWS = 1024


def target_signs(target, n_inputs: int) -> torch.Tensor:
    """+1 where the target is true, -1 where false, as float32 [N]. Checks the length."""
    if target is None:
        raise ValueError("target: a target score needs a target labelling; got None (set task.target)")
    bits = np.asarray(target)
    if bits.ndim != 1 or bits.shape[0] != n_inputs:
        raise ValueError(f"target: needs one label per input, {n_inputs} in all; got shape {tuple(bits.shape)}")
    if bits.dtype != bool and not np.isin(bits, (0, 1)).all():
        raise ValueError("target: labels must be booleans (or 0/1)")
    return torch.from_numpy(np.where(bits.astype(bool), 1.0, -1.0).astype(np.float32))


def target_margin_score(arch: Architecture, x: torch.Tensor, target, output: int = 0,
                        margin: float = 0.0) -> Score:
    """Score of "computes target f on X": the min over inputs of the signed output margin,
    (min_i sign_i * out_i(theta) - margin) / (max_i |out_i(theta)| + margin). Positive
    exactly when every input is on the target's side of zero by more than `margin`
    (margin 0: the network's function key equals f). The division makes the score blind
    to the output's overall scale; without it the levels of a splitting run can creep up
    to 0 by shrinking every output towards 0 (a degenerate region that is not the class),
    which we saw stall runs on parity.

    MLPs on the CPU take `volume.margins.MarginScorer` (one numba kernel, no outputs
    materialised), ResidualMLPs `volume.residual_scores.ResidualMarginScorer`; other
    architectures the batched torch forward below."""
    if x.ndim != 2 or x.shape[1] != arch.n_in:
        raise ValueError(f"x: needs shape [N, {arch.n_in}] for {arch.describe()}, got {tuple(x.shape)}")
    if not 0 <= output < arch.n_out:
        raise ValueError(f"output: must lie in 0..{arch.n_out - 1}, got {output}")
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin: must be a finite number >= 0, got {margin}")
    signs = target_signs(target, x.shape[0])
    if fused.supports(arch) and x.device.type == "cpu":
        return MarginScorer(arch, x, signs.numpy() > 0, output, margin)
    if isinstance(arch, ResidualMLP) and x.device.type == "cpu":
        # imported here: residual_scores reads circuits.depth, which builds on this module
        from volume.residual_scores import ResidualMarginScorer
        return ResidualMarginScorer(arch, x, signs.numpy() > 0, output, margin)
    return torch_margin_score(arch, x, signs, output, margin)


def torch_margin_score(arch: Architecture, x: torch.Tensor, signs: torch.Tensor, output: int = 0,
                       margin: float = 0.0) -> Score:
    """target_margin_score through arch.forward, ROWS networks per call (any architecture,
    any device)."""
    x = x.to(torch.float32)
    signs = signs.to(x.device)

    def values(theta: torch.Tensor) -> torch.Tensor:
        y = arch.forward(theta.to(x.device, torch.float32), x)[..., output]
        return scaled_margin(y, signs, margin).cpu()

    return in_chunks(values)


def target_and_class_score(target, n_inputs: int,
                           outputs_and_class: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> Score:
    """Score of "computes the target and is in the class": min(target margin / its scale,
    class score), ROWS networks per call. outputs_and_class(theta float32 [b, P]) returns the
    outputs y [b, N] and the class score [b] (> 0 iff in the class) of one forward pass."""
    signs = target_signs(target, n_inputs)

    def values(theta: torch.Tensor) -> torch.Tensor:
        y, cls = outputs_and_class(theta.to(torch.float32))
        return torch.minimum(scaled_margin(y, signs), cls.to(torch.float64))

    return in_chunks(values)


def scaled_margin(y: torch.Tensor, signs: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """[b] float64: (min_i sign_i y_i - margin) / (max_i |y_i| + margin + TINY) of outputs
    y [b, N]. The extremes are taken in float32 (exact) and only they go to float64."""
    lowest, scale = (y * signs).amin(1).double(), y.abs().amax(1).double()
    return (lowest - margin) / (scale + margin + TINY)


def in_chunks(values: Callable[[torch.Tensor], torch.Tensor]) -> Score:
    """The score theta[B, P] -> [B] float64 that applies values to ROWS networks at a time."""
    def score(theta: torch.Tensor) -> torch.Tensor:
        out = torch.empty(theta.shape[0], dtype=torch.float64)
        with torch.inference_mode():
            for start in range(0, theta.shape[0], ROWS):
                out[start : start + ROWS] = values(theta[start : start + ROWS])
        return out

    return score


def _combined(scores: tuple[Score, ...], name: str, reduce: Callable) -> Score:
    if not scores:
        raise ValueError(f"{name}: needs at least one score")

    def score(theta: torch.Tensor) -> torch.Tensor:
        return reduce(torch.stack([s(theta).to(torch.float64) for s in scores]), 0)

    return score


def min_score(*scores: Score) -> Score:
    """The score of the intersection of classes: positive iff every score is positive."""
    return _combined(scores, "min_score", torch.amin)


def max_score(*scores: Score) -> Score:
    """The score of the union of classes: positive iff some score is positive."""
    return _combined(scores, "max_score", torch.amax)
