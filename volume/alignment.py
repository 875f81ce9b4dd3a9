"""Permutation symmetry of MLPs: permuting the hidden units of a layer (its incoming weights
and bias, and the matching rows of the next layer's weights) leaves the network's function
unchanged. `permute` applies such permutations to a population; `weight_matching` finds, for
each pair of networks (A, B), the permutations of B's hidden units that bring B's parameters
closest to A's (the weight-matching objective of Ainsworth et al. 2022, "Git Re-Basin").

Convention: perms[l][j, i] = u means unit i of hidden layer l of the permuted network j is
unit u of the original. The objective is the inner product <theta_A, permute(theta_B)> of the
flat parameter vectors; since permuting does not change the norm, maximising it minimises
||theta_A - permute(theta_B)||.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from volume.nets import MLP, Architecture


def _mlp(arch: Architecture) -> MLP:
    if not isinstance(arch, MLP):
        raise ValueError(f"hidden-unit permutations are defined here for MLPs, got {type(arch).__name__}")
    return arch


def hidden_widths(arch: Architecture) -> list[int]:
    return _mlp(arch).widths[1:-1]


def identity_perms(arch: Architecture, n: int) -> list[np.ndarray]:
    return [np.tile(np.arange(w), (n, 1)) for w in hidden_widths(arch)]


def permute(arch: Architecture, theta: torch.Tensor, perms: list) -> torch.Tensor:
    """theta[B, P] with each network's hidden units reordered by perms (one int array per
    hidden layer, [B, width] or [width] for all networks). Only copies values, so the
    permuted network computes the same function (sums over units merely change order)."""
    mlp = _mlp(arch)
    widths = hidden_widths(mlp)
    if len(perms) != len(widths):
        raise ValueError(f"need one permutation per hidden layer ({len(widths)}), got {len(perms)}")
    index = [torch.as_tensor(np.asarray(p), dtype=torch.int64).expand(len(theta), w) for p, w in zip(perms, widths)]
    if any(not torch.equal(i.sort(1).values, torch.arange(w).expand_as(i)) for i, w in zip(index, widths)):
        raise ValueError("each row of each perms[l] must be a permutation of 0..width-1")
    out = theta.clone()
    for layer in range(mlp.n_layers):
        w_slice = mlp.slice(f"W{layer}")
        w = w_slice.view(theta)
        if layer > 0:  # rows: the previous hidden layer's units
            w = w.gather(1, index[layer - 1].unsqueeze(2).expand(-1, -1, w.shape[2]))
        if layer < len(widths):  # columns: this layer's units
            w = w.gather(2, index[layer].unsqueeze(1).expand(-1, w.shape[1], -1))
            if mlp.bias:
                b = mlp.slice(f"b{layer}")
                out[:, b.start : b.stop] = b.view(theta).gather(1, index[layer])
        out[:, w_slice.start : w_slice.stop] = w.reshape(len(theta), -1)
    return out


def matching_objective(arch: Architecture, theta_a: torch.Tensor, theta_b: torch.Tensor, perms: list) -> np.ndarray:
    """<theta_A, permute(theta_B)> per pair, in float64."""
    aligned = permute(arch, theta_b.double(), perms)
    return (theta_a.double() * aligned).sum(1).numpy()


def _blocks(mlp: MLP, theta: np.ndarray) -> list[np.ndarray]:
    """Per layer, [fan_in (+1 bias row), fan_out]: column i holds unit i's incoming weights and
    bias; rows 0..fan_in-1 are the outgoing weights of the previous layer's units."""
    out = []
    for layer in range(mlp.n_layers):
        w = mlp.slice(f"W{layer}")
        block = theta[w.start : w.stop].reshape(w.shape)
        if mlp.bias:
            b = mlp.slice(f"b{layer}")
            block = np.vstack([block, theta[b.start : b.stop]])
        out.append(block)
    return out


def _match_pair(mlp: MLP, a: np.ndarray, b: np.ndarray, rng: np.random.Generator, max_passes: int
                ) -> tuple[list[np.ndarray], int]:
    """Coordinate ascent over hidden layers (in a random order each pass): each step solves
    one layer's linear assignment exactly with the other layers' permutations fixed, so the
    objective never decreases. Stops after a pass that changes no layer, or max_passes."""
    blocks_a, blocks_b = _blocks(mlp, a), _blocks(mlp, b)
    widths = mlp.widths[1:-1]
    perms = [np.arange(w) for w in widths]
    for n_pass in range(1, max_passes + 1):
        changed = False
        for layer in rng.permutation(len(widths)):
            w = widths[layer]
            incoming = blocks_b[layer].copy()
            if layer > 0:
                incoming[: widths[layer - 1]] = incoming[perms[layer - 1]]
            outgoing = blocks_b[layer + 1][:w]
            if layer + 1 < len(widths):
                outgoing = outgoing[:, perms[layer + 1]]
            # similarity[i, u]: A's unit i against B's unit u, incoming and outgoing weights.
            similarity = blocks_a[layer].T @ incoming + blocks_a[layer + 1][:w] @ outgoing.T
            _, cols = linear_sum_assignment(similarity, maximize=True)
            if not np.array_equal(cols, perms[layer]):
                perms[layer], changed = cols, True
        # One hidden layer: a single assignment is the global optimum.
        if not changed or len(widths) == 1:
            return perms, n_pass
    return perms, max_passes


def weight_matching(arch: Architecture, theta_a: torch.Tensor, theta_b: torch.Tensor, seeds: Sequence,
                    max_passes: int = 100) -> tuple[list[np.ndarray], np.ndarray]:
    """Permutations of each B network's hidden units that (locally) maximise <theta_A,
    permute(theta_B)>, pair by pair; pair j's random layer order comes from seeds[j] (anything
    numpy.random.default_rng accepts).
    Returns (perms, one [B, width] array per hidden layer; passes used per pair)."""
    mlp = _mlp(arch)
    if theta_a.shape != theta_b.shape or theta_a.shape[1] != mlp.n_params or len(seeds) != len(theta_a):
        raise ValueError("theta_a and theta_b must both be [B, n_params], with one seed per pair")
    a, b = theta_a.double().numpy(), theta_b.double().numpy()
    perms = identity_perms(mlp, len(a))
    passes = np.zeros(len(a), np.int64)
    for j in range(len(a)):
        found, passes[j] = _match_pair(mlp, a[j], b[j], np.random.default_rng(seeds[j]), max_passes)
        for layer, p in enumerate(found):
            perms[layer][j] = p
    return perms, passes
