"""Trained populations, shared by the experiments on trained networks (sgd_vs_prior,
path_dependence, mode_connectivity, trained_classes): the training split and its checks,
training in checkpointed blocks (records and final function keys), and the prior's posterior
P_B(f | S) by counting consistent prior samples. Checkpoints go through results.Stages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from volume.errors import ConfigError
from volume.estimators.monte_carlo import log_frequencies, monte_carlo_estimate
from volume.functions import FunctionTable, keys_to_hex, output_keys, pack_bits, unique_counts, unpack_bits
from volume.nets import Architecture, build_architecture
from volume.population import CHUNK, batch_keys, n_chunks
from volume.priors import Prior
from volume.results import Stages
from volume.setup import Setup, positive_int, positive_ints
from volume.tasks import Task
from volume.training import TrainResult, Trainer, build_trainer, train

TRAIN_BLOCK = 4096  # networks per checkpointed block of training


@dataclass
class Split:
    train: np.ndarray  # indices of the training inputs, sorted
    test: np.ndarray  # the held-out rest

    def x(self, task: Task) -> torch.Tensor:
        return task.x[torch.from_numpy(self.train)]

    def labels(self, task: Task) -> np.ndarray:
        return task.target[self.train]


def common_checks(setup: Setup) -> tuple[Trainer, Split]:
    """Checks shared by the trained-population experiments; returns the trainer and split."""
    cfg = setup.cfg
    if cfg.num_shards != 1:
        raise ConfigError(f"num_shards: {cfg.experiment.name} runs in one process; must be 1, got {cfg.num_shards}")
    if setup.task.target is None:
        raise ConfigError(f"task.target: {cfg.experiment.name} trains on a target; set one "
                          "(a named target or a hex key), not null")
    trainer = build_trainer(cfg.trainer)
    n_train, n_inputs = cfg.experiment.get("n_train"), setup.task.n_inputs
    if not isinstance(n_train, int) or isinstance(n_train, bool) or not 1 <= n_train < n_inputs:
        raise ConfigError(f"experiment.n_train: an integer in 1..{n_inputs - 1} (the rest is held out), "
                          f"got {n_train!r}")
    split_seed = cfg.experiment.get("split_seed", 0)
    if not isinstance(split_seed, int) or isinstance(split_seed, bool) or split_seed < 0:
        raise ConfigError(f"experiment.split_seed: a non-negative integer, got {split_seed!r}")
    chosen = np.random.default_rng(split_seed).permutation(n_inputs)[:n_train]
    train_idx = np.sort(chosen)
    return trainer, Split(train_idx, np.setdiff1d(np.arange(n_inputs), train_idx))


def sweep_widths(cfg) -> list[int]:
    """experiment.widths of a width sweep (hidden layers [width] * experiment.depth), checked."""
    positive_int(cfg, "experiment.depth")
    return positive_ints(cfg, "experiment.widths")


def width_architecture(cfg, width: int, n_in: int) -> Architecture:
    """The run's model with hidden layers [width] * experiment.depth."""
    return build_architecture(OmegaConf.merge(cfg.model, {"hidden": [width] * cfg.experiment.depth}), n_in)


def train_population(arch: Architecture, prior: Prior, trainer: Trainer, task: Task, split: Split, seed: int,
            init_ids: np.ndarray, order_ids: np.ndarray, stages: Stages, name: str, progress: bool,
            extra: Callable[[TrainResult], dict[str, np.ndarray]] | None = None,
            extra_fields: tuple[str, ...] = ()) -> dict:
    """Train the population in checkpointed blocks. Returns per-network arrays: steps, loss,
    fitted, keys (uint64 [n, W], the final function on all inputs), and the `extra_fields`
    that extra(block result, with final parameters) returns per network of each block (so
    the parameters themselves never need storing)."""
    have = stages.get(name)
    if stages.done(name):
        return have
    fields = ("steps", "loss", "fitted", "keys", *extra_fields)
    parts = {k: [have[k]] for k in fields} if have else {k: [] for k in fields}
    start = len(have["steps"]) if have else 0
    x, labels = split.x(task), split.labels(task)
    with tqdm(total=len(init_ids), initial=start, unit="net", disable=not progress, desc=name) as bar:
        for first in range(start, len(init_ids), TRAIN_BLOCK):
            block = slice(first, first + TRAIN_BLOCK)
            out = train(arch, x, labels, trainer, seed, init_ids[block], order_ids[block], prior=prior,
                        eval_x=task.x, keep_theta=extra is not None)
            values = {"steps": out.steps, "loss": out.loss, "fitted": out.fitted, "keys": output_keys(out.outputs),
                      **(extra(out) if extra is not None else {})}
            for key in fields:
                parts[key].append(values[key])
            arrays = {k: np.concatenate(v) for k, v in parts.items()}
            bar.update(len(out.steps))
            stages.put(name, arrays, complete=block.stop >= len(init_ids))
    return {k: np.concatenate(v) for k, v in parts.items()}


def records_frame(runs: dict, init_ids: np.ndarray, order_ids: np.ndarray, seed: int, task: Task,
                  split: Split) -> pd.DataFrame:
    """One row per trained network."""
    bits = unpack_bits(runs["keys"], task.n_inputs)
    frame = pd.DataFrame({"network": np.arange(len(init_ids)), "seed": seed, "init_id": init_ids,
                          "order_id": order_ids, "steps": runs["steps"], "final_loss": runs["loss"],
                          "stopped_reason": np.where(runs["fitted"], "fit", "budget")})
    if len(split.test):  # held-out accuracy, when some inputs are held out
        frame["test_accuracy"] = (bits[:, split.test] == task.target[split.test]).mean(1)
    frame["function"] = keys_to_hex(runs["keys"], task.n_inputs)
    return frame


def held_out_keys(keys: np.ndarray, n_inputs: int, split: Split) -> np.ndarray:
    return pack_bits(unpack_bits(keys, n_inputs)[:, split.test])


def table_of(keys: np.ndarray, n_inputs: int) -> FunctionTable:
    table = FunctionTable(n_inputs)
    table.add(keys)
    return table


def prior_posterior(arch: Architecture, prior: Prior, task: Task, split: Split, seed: int, n_prior: int,
                    batch_size: int, stages: Stages, name: str, progress: bool,
                    draw: Callable[[range], np.ndarray] | None = None) -> tuple[FunctionTable, int]:
    """Counts of the functions of the prior samples that fit the training set (their
    fraction of n_prior estimates P(S); count / total estimates P_B(f | S)). draw(chunks) gives
    the keys of the samples of those chunks (below n_prior) that may fit S; by default the
    prior's networks (batch_keys), e.g. the NNGP's functions instead."""
    if draw is None:
        draw = lambda batch: batch_keys(arch, prior, task, seed, batch, n_prior)  # noqa: E731
    have = stages.get(name)
    table = FunctionTable.from_state(have) if have else FunctionTable(task.n_inputs)
    if stages.done(name):
        return table, table.total
    next_chunk = int(have["next_chunk"]) if have else 0
    last = n_chunks(n_prior)
    per_batch = max(1, batch_size // CHUNK)
    want = split.labels(task)
    with tqdm(total=n_prior, initial=min(next_chunk * CHUNK, n_prior), unit="net", unit_scale=True,
              disable=not progress, desc=name) as bar:
        for first in range(next_chunk, last, per_batch):
            batch = range(first, min(first + per_batch, last))
            keys = draw(batch)
            fits = (unpack_bits(keys, task.n_inputs)[:, split.train] == want).all(1)
            table.add(keys[fits])
            bar.update(min(batch.stop * CHUNK, n_prior) - batch.start * CHUNK)
            stages.put(name, {**table.state(), "next_chunk": np.array(batch.stop)}, complete=batch.stop >= last)
    return table, table.total


def frequencies(counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log p, ci_low, ci_high) for counts out of n; a zero count gives the exact one-sided
    upper bound as log p, with ci_low = -inf (never log 0)."""
    counts = np.asarray(counts, dtype=np.int64)
    log_p, low, high = (np.empty(len(counts)) for _ in range(3))
    positive = counts > 0
    if positive.any():
        log_p[positive], low[positive], high[positive] = log_frequencies(counts[positive], n)
    if not positive.all():
        bound = monte_carlo_estimate(0, max(n, 1)).log_p
        log_p[~positive], low[~positive], high[~positive] = bound, -np.inf, bound
    return log_p, low, high


def aligned_counts(*tables: FunctionTable) -> tuple[np.ndarray, ...]:
    """The union of the tables' keys and each table's count of every key (0 when absent)."""
    union, _ = unique_counts(np.concatenate([t.keys for t in tables]))
    index = {key.tobytes(): i for i, key in enumerate(union)}
    out = []
    for table in tables:
        counts = np.zeros(len(union), np.int64)
        counts[[index[key.tobytes()] for key in table.keys]] = table.counts
        out.append(counts)
    return (union, *out)
