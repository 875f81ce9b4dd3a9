"""Where each network's randomness comes from: its initialisation (row init_id of the prior's
INIT_STREAM) and its data order (row order_id of stream ORDER_STREAM + block of epochs), and
the per-network minibatch weights that realise that order."""
from __future__ import annotations

import numpy as np
import torch

from volume.nets import Architecture
from volume.priors import Prior
from volume.rng import INIT_STREAM, ORDER_STREAM, counter_sample

ORDER_BLOCK = 16  # epochs of data order drawn at once per network


def _runs(ids: np.ndarray, draw) -> np.ndarray:
    """draw(first, n) for each run of consecutive distinct ids, gathered back to ids' order."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
    parts = [draw(int(run[0]), len(run)) for run in np.split(uniq, breaks)]
    return np.concatenate(parts)[inverse.ravel()]


def init_theta(arch: Architecture, prior: Prior, seed: int, init_ids: np.ndarray) -> torch.Tensor:
    """Initial parameters: row init_ids[j] of the prior's initialisation stream."""
    draw = lambda first, n: prior.sample(arch, n, seed, offset=first, stream=INIT_STREAM).numpy()  # noqa: E731
    return torch.from_numpy(_runs(np.asarray(init_ids, dtype=np.int64), draw))


def block_orders(seed: int, order_ids: np.ndarray, block: int, n_train: int) -> torch.Tensor:
    """int64 [len(order_ids), ORDER_BLOCK, n_train]: each network's permutations of the
    training points for epochs block*ORDER_BLOCK .. +ORDER_BLOCK-1 (argsort of counter-based
    uniforms: row order_id of stream ORDER_STREAM + block)."""
    scale = np.ones(ORDER_BLOCK * n_train)
    draw = lambda first, n: counter_sample(seed, first, n, scale, "uniform", stream=ORDER_STREAM + block,  # noqa: E731
                                           dtype=np.float64)
    u = _runs(np.asarray(order_ids, dtype=np.int64), draw).reshape(-1, ORDER_BLOCK, n_train)
    return torch.from_numpy(np.argsort(u, axis=2, kind="stable"))


def epoch_order(seed: int, order_ids: np.ndarray, epoch: int, n_train: int) -> torch.Tensor:
    """int64 [len(order_ids), n_train]: each network's permutation in this epoch."""
    return block_orders(seed, order_ids, epoch // ORDER_BLOCK, n_train)[:, epoch % ORDER_BLOCK]


def refresh_order_(order: torch.Tensor, taken: np.ndarray, ids: np.ndarray, order_ids: np.ndarray, seed: int,
                    per_epoch: int, n_train: int) -> None:
    """Draw the next block of epoch orders for the pool rows that begin one with this step."""
    per_block = per_epoch * ORDER_BLOCK
    starting = np.flatnonzero(taken % per_block == 0)
    blocks = taken[starting] // per_block
    for block in np.unique(blocks):
        rows = starting[blocks == block]
        order[torch.from_numpy(rows)] = block_orders(seed, order_ids[ids[rows]], int(block), n_train)


def minibatch_weights(order: torch.Tensor, taken: np.ndarray, per_epoch: int, batch: int, n_train: int):
    """Per-row weights over the training points: 1/|batch| on the points of the row's current
    minibatch (the last one of an epoch may be smaller), 0 elsewhere. Full batch: 1/M."""
    if batch == n_train:
        return torch.tensor(1.0 / n_train)
    epoch = torch.from_numpy((taken // per_epoch) % ORDER_BLOCK)
    this_epoch = order[torch.arange(len(taken)), epoch]
    first = torch.from_numpy((taken % per_epoch) * batch)
    position = first[:, None] + torch.arange(batch)
    inside = position < n_train
    size = inside.sum(1, keepdim=True).float()
    points = this_epoch.gather(1, position.clamp(max=n_train - 1))
    # scatter_add: a clamped duplicate adds weight 0, never overwrites a real one.
    return torch.zeros(this_epoch.shape).scatter_add_(1, points, inside.float() / size)
