"""NNGP posterior sampling (volume.nngp.gp_keys) in the sgd_vs_prior setting: 7-40-40-1 ReLU,
Gaussian prior, the 7-cube with 32 training inputs labelled by OR.

Conditional sampling draws the 32 training outputs of every sample and the other 96 only for
the samples that fit S (P(S) ~ 5e-4). The naive baseline draws all 128 outputs of every sample
and filters. Both run in alternating rounds so that they see the same load on a shared box; the
prior's networks (batch_keys, what P_B counts) are timed alongside for scale.
"""
from __future__ import annotations

import time

import numpy as np

from volume.functions import unpack_bits
from volume.nets import MLP
from volume.nngp import gp_keys, nngp_kernel, ordered_factor
from volume.population import CHUNK, batch_keys
from volume.priors import Prior
from volume.tasks import boolean_task


def main(quick: bool = False) -> None:
    per_round, rounds = (32 * CHUNK, 2) if quick else (256 * CHUNK, 4)  # 16k or 131k samples per round and method
    arch, prior, task = MLP([7, 40, 40, 1]), Prior(), boolean_task(7, "01", "or")
    train_idx = np.sort(np.random.default_rng(5).permutation(128)[:32])  # the sgd_vs_prior split
    labels = task.target[train_idx]
    factor, order, method = ordered_factor(nngp_kernel(arch, prior, task.x), train_idx)
    everything = np.arange(128)
    full, full_order, _ = ordered_factor(nngp_kernel(arch, prior, task.x), everything)
    per = per_round // CHUNK
    gp_keys(factor, order, 0, range(1), CHUNK, labels)  # warm-up (numba)
    times = {"conditional": 0.0, "naive (all 128 outputs)": 0.0, "prior networks (batch_keys)": 0.0}
    fits = {k: 0 for k in times}
    for r in range(rounds):
        chunks, n = range(r * per, (r + 1) * per), (r + 1) * per_round
        start = time.perf_counter()
        fits["conditional"] += len(gp_keys(factor, order, 0, chunks, n, labels))
        times["conditional"] += time.perf_counter() - start
        start = time.perf_counter()
        keys = gp_keys(full, full_order, 0, chunks, n)
        fits["naive (all 128 outputs)"] += int(_fit(keys, train_idx, labels).sum())
        times["naive (all 128 outputs)"] += time.perf_counter() - start
        start = time.perf_counter()
        keys = batch_keys(arch, prior, task, 0, chunks, n)
        fits["prior networks (batch_keys)"] += int(_fit(keys, train_idx, labels).sum())
        times["prior networks (batch_keys)"] += time.perf_counter() - start
    total = rounds * per_round
    print(f"{arch.describe()}, kernel factor: {method}; {total:,} samples per method")
    for name, seconds in times.items():
        print(f"  {name:30s} {total / seconds:12,.0f} samples/s ({fits[name]:,} fit S); "
              f"4M samples: {4e6 / total * seconds:6.1f} s")
    print(f"  conditional vs naive: {times['naive (all 128 outputs)'] / times['conditional']:.1f}x faster")


def _fit(keys: np.ndarray, train_idx: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return (unpack_bits(keys, 128)[:, train_idx] == labels).all(1)


if __name__ == "__main__":
    main()
