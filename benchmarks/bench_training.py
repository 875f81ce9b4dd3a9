"""Batched many-seed training vs a sequential per-network loop, in one process.

10,000 seeds of 7-40-40-1 (ReLU, Gaussian prior) trained with the default trainer (Adam,
lr 0.01, minibatches of 8) to fit 32 inputs of the 7-cube labelled by OR. The baseline trains
one network at a time the usual way (torch.optim.Adam, loss.backward()) with the same
inits, data orders and stopping rule; it runs on a subset and is scaled per network, and
its stop steps are checked against the batched run. The two alternate in rounds (1,000
batched networks, then 20 sequential ones) so that both see the same load on a shared machine.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from volume.nets import MLP
from volume.priors import Prior
from volume.tasks import boolean_task
from tests.oracles import train_one_textbook
from volume.training import Trainer, train
from volume.threads import threads_limited
from volume.training.order import init_theta


def main(quick: bool = False) -> None:
    n_batched, n_sequential, rounds = (1000, 20, 2) if quick else (10_000, 200, 10)
    # One thread for both (train() runs single-threaded; see volume.threads).
    with threads_limited(1):
        _compare(n_batched, n_sequential, rounds)


def _compare(n_batched: int, n_sequential: int, rounds: int) -> None:
    arch, prior = MLP([7, 40, 40, 1]), Prior()
    task = boolean_task(7, "01", "or")
    train_idx = np.sort(np.random.default_rng(5).permutation(128)[:32])  # the sgd_vs_prior split
    x, labels = task.x[train_idx], task.target[train_idx]
    trainer = Trainer("adam", lr=0.01, batch_size=8, max_steps=10_000, pool=256)
    print(f"{arch.describe()}, {trainer.optimizer} lr={trainer.lr} batch={trainer.batch_size}, 32 points, "
          f"torch threads={torch.get_num_threads()}")
    train(arch, x, labels, trainer, seed=0, init_ids=np.arange(8), prior=prior)  # warm-up (numba, allocator)
    # Interleaved rounds, so that both sides see the same machine load (this box is shared).
    t_batched = t_seq = 0.0
    steps_batched, steps_seq, agree = [], [], []
    for r in range(rounds):
        ids = np.arange(r * n_batched // rounds, (r + 1) * n_batched // rounds)
        start = time.perf_counter()
        out = train(arch, x, labels, trainer, seed=0, init_ids=ids, prior=prior)
        t_batched += time.perf_counter() - start
        steps_batched.append(out.steps)
        seq_ids = ids[: n_sequential // rounds]
        theta0 = init_theta(arch, prior, 0, seq_ids)
        start = time.perf_counter()
        steps = [train_one_textbook(arch, theta0[i], x, labels, trainer, seed=0, order_id=int(j))[1]
                 for i, j in enumerate(seq_ids)]
        t_seq += time.perf_counter() - start
        steps_seq.extend(steps)
        agree.extend(np.array(steps) == out.steps[: len(seq_ids)])
    steps_batched = np.concatenate(steps_batched)
    per_net_batched, per_net_seq = t_batched / n_batched, t_seq / len(steps_seq)
    print(f"batched:    {n_batched:,} networks in {t_batched:.1f} s = {1 / per_net_batched:,.1f} networks/s "
          f"(median {np.median(steps_batched):.0f} steps, max {steps_batched.max()}, fitted all: "
          f"{bool((steps_batched < trainer.max_steps).all())}; {steps_batched.sum() / t_batched:,.0f} network-steps/s)")
    print(f"sequential: {len(steps_seq)} networks in {t_seq:.1f} s = {1 / per_net_seq:,.2f} networks/s "
          f"({sum(steps_seq) / t_seq:,.0f} network-steps/s); same stop step as batched for {np.mean(agree):.1%}")
    print(f"speed-up batched / sequential per network: {per_net_seq / per_net_batched:.1f}x (target >= 20x); "
          f"{n_batched:,} networks sequentially would take ~{per_net_seq * n_batched:,.0f} s")


if __name__ == "__main__":
    main()
