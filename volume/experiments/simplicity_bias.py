"""Experiment `simplicity_bias`: P(f) of random networks over all functions they compute.

Claim tested: P(f) spans many decades and falls with the complexity of f. Counts every
function of n_samples prior samples exactly, then writes functions.csv (one row per
distinct function, most frequent first), a rank plot and log P vs LZ complexity.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from volume import results
from volume.complexity import complexity_table
from volume.estimators.monte_carlo import log_frequencies
from volume.functions import FunctionTable, keys_to_hex
from volume.population import CHUNK, batch_keys, shard_chunks
from volume.setup import Setup, one_of

TABLE = "functions.npz"


def count(setup: Setup, stages: results.Stages) -> tuple[FunctionTable, float]:
    """Count the functions of this shard's chunks in checkpointed stage "count" (resumed
    from it); returns (table, seconds)."""
    cfg = setup.cfg
    chunks = shard_chunks(cfg.n_samples, cfg.shard, cfg.num_shards)
    have = stages.get("count")
    table = FunctionTable.from_state(have) if have else FunctionTable(setup.task.n_inputs)
    next_chunk, elapsed = (int(have["next_chunk"]), float(have["elapsed"])) if have else (chunks.start, 0.0)
    first_sample = chunks.start * CHUNK
    last_sample = min(cfg.n_samples, chunks.stop * CHUNK)
    done = min(next_chunk * CHUNK, last_sample) - first_sample
    start = time.perf_counter()
    with tqdm(total=last_sample - first_sample, initial=done, unit="net", unit_scale=True, smoothing=0.1,
              disable=not cfg.progress, desc=f"{cfg.experiment.name} shard {cfg.shard}/{cfg.num_shards}") as bar:
        per_batch = max(1, cfg.batch_size // CHUNK)
        for first in range(next_chunk, chunks.stop, per_batch):
            batch = range(first, min(first + per_batch, chunks.stop))
            keys = batch_keys(setup.arch, setup.prior, setup.task, cfg.seed, batch, cfg.n_samples,
                              device=cfg.device)
            table.add(keys)
            bar.update(len(keys))
            if batch.stop < chunks.stop and stages.due():  # the finished count goes to results, not here
                stages.put("count", {**table.state(), "next_chunk": np.array(batch.stop),
                                     "elapsed": np.array(elapsed + time.perf_counter() - start)}, complete=False)
    return table, elapsed + time.perf_counter() - start


def function_frame(table: FunctionTable, n_total: int, boolean_cube: bool) -> pd.DataFrame:
    """functions.csv: one row per distinct function, most frequent first."""
    keys, counts = table.sorted_by_count()
    log_p, ci_low, ci_high = log_frequencies(counts, n_total)
    comp = complexity_table(keys, table.n_inputs, boolean_cube)
    return pd.DataFrame({"function": keys_to_hex(keys, table.n_inputs), "count": counts, "log_p": log_p,
                         "ci_low": ci_low, "ci_high": ci_high, **comp})


def rank_curve(counts: np.ndarray, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """(rank, P(f)) at the corners of the rank plot's step curve. counts must be sorted most
    frequent first (as functions.csv is), so functions of equal count hold one run of ranks:
    its first and last rank draw the whole run, exactly (the default run's 230k functions
    have under a hundred distinct counts)."""
    if not len(counts):
        return np.zeros(0, int), np.zeros(0)
    first = np.flatnonzero(np.r_[True, counts[1:] != counts[:-1]])
    last = np.r_[first[1:], len(counts)] - 1
    rank = np.column_stack([first, last]).ravel() + 1
    return rank, np.repeat(counts[first] / n_total, 2)


def lz_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct (lz, log_p) with the number of functions there: the 230k functions
    of the default run sit on a few hundred such points, so each is drawn once, shaded by how
    many functions it holds."""
    return frame.groupby(["lz", "log_p"], sort=False).size().rename("n_functions").reset_index()


def plot(frame: pd.DataFrame, run_dir: Path, title: str, n_total: int) -> list[str]:
    """rank.png (P(f) vs rank, log-log) and logp_vs_lz.png (log10 P(f) vs LZ complexity,
    one marker per distinct pair, coloured by its number of functions)."""
    fig, ax = results.new_figure()
    ax.loglog(*rank_curve(frame["count"].to_numpy(), n_total), ".-", ms=3, lw=1)
    results.finish_figure(fig, run_dir / "rank.png", ax, "rank of function", "P(f)", title, title_size=9)
    groups = lz_groups(frame)
    fig, ax = results.new_figure()
    dots = ax.scatter(groups["lz"], groups["log_p"] / math.log(10), c=np.log10(groups["n_functions"]), s=12,
                      cmap="viridis")
    fig.colorbar(dots, ax=ax, label="log10 number of functions")
    results.finish_figure(fig, run_dir / "logp_vs_lz.png", ax, "LZ complexity of f", "log10 P(f)", title,
                          title_size=9)
    return ["rank.png", "logp_vs_lz.png"]


def finish(table: FunctionTable, setup_config: dict, run_dir: Path, n_total: int, boolean_cube: bool,
           title: str, extra: dict) -> dict:
    """Write the table, functions.csv, figures and results.json from a complete count
    (shared with `volume.merge`, which recomputes everything from summed counts)."""
    frame = function_frame(table, n_total, boolean_cube)
    results.write_npz(run_dir / TABLE, table.state())
    results.write_csv(run_dir / "functions.csv", frame)
    figures = plot(frame, run_dir, title, n_total)
    top = frame.iloc[0] if len(frame) else None
    summary = {
        "n_samples": n_total,
        "n_distinct_functions": len(frame),
        "top_function": None if top is None else {"function": top["function"], "count": int(top["count"]),
                                                  "log_p": float(top["log_p"])},
        "log10_p_range": [float(frame["log_p"].min() / math.log(10)), float(frame["log_p"].max() / math.log(10))],
        "spearman_logp_vs_lz": float(frame["log_p"].corr(frame["lz"], method="spearman")) if len(frame) > 2 else None,
        "figures": figures,
        **extra,
    }
    results.write_json(run_dir / results.RESULTS, {"config": setup_config, "summary": summary,
                                                   "versions": results.versions()})
    return summary


def validate(setup: Setup) -> None:
    """This experiment counts by sampling; the other keys are the run keys setup.build_setup checks."""
    one_of(setup.cfg, "estimator.name", ("monte_carlo",))


def run(setup: Setup, run_dir: Path, stages: results.Stages) -> dict:
    cfg = setup.cfg
    table, seconds = count(setup, stages)
    chunks = shard_chunks(cfg.n_samples, cfg.shard, cfg.num_shards)
    n_shard = min(cfg.n_samples, chunks.stop * CHUNK) - chunks.start * CHUNK
    assert table.total == n_shard, (table.total, n_shard)
    boolean_cube = cfg.task.name == "boolean"
    title = f"{setup.arch.describe()}, {cfg.prior.name} prior, {n_shard:,} samples"
    summary = finish(table, setup.config, run_dir, n_shard, boolean_cube, title, {
        "seconds": seconds, "networks_per_second": n_shard / max(seconds, 1e-9),
        "threads": torch.get_num_threads(), "shard": cfg.shard, "num_shards": cfg.num_shards})
    return summary


def describe(summary: dict) -> str:
    top = summary["top_function"]
    lo, hi = summary["log10_p_range"]
    return (f"Sampled {summary['n_samples']:,} networks at {summary['networks_per_second']:,.0f} networks/s "
            f"({summary['seconds']:.1f} s); they compute {summary['n_distinct_functions']:,} distinct functions. "
            f"The most frequent, {top['function']}, has P = {math.exp(top['log_p']):.3g} ({top['count']:,} hits); "
            f"observed P(f) spans 10^{lo:.1f} .. 10^{hi:.1f} (functions seen once sit at the floor 1/N). "
            f"Spearman correlation of log P with LZ complexity: {summary['spearman_logp_vs_lz']:.3f}.")
