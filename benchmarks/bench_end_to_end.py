"""The default run (`python -m volume`, simplicity_bias on 7-40-40-1) end to end, as the
issue measures it: the marginal rate between n_samples = 1e4 and 1e6 (so start-up and
figure set-up cancel) of whole CLI runs, against the naive per-network loop measured in
this process. Counting time comes from each run's results.json; the rest is what the run
does after counting (complexity of every distinct function, functions.csv, figures)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_population import WIDTHS, matmul_flops, naive_rate
from volume.margins import flops_per_network
from volume.nets import MLP

REPEATS = 2
ISSUE_NAIVE = 8150  # networks/s of the naive loop in issue 15, measured on an idle machine


def cli_run(n_samples: int) -> tuple[float, float]:
    """(wall seconds, counting seconds) of one default run, best of REPEATS by wall time."""
    best = (float("inf"), 0.0)
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            command = [sys.executable, "-m", "volume", f"hydra.run.dir={run_dir}", f"n_samples={n_samples}",
                       "progress=false"]
            subprocess.run(command, check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"})
            wall = time.perf_counter() - start
            counting = json.loads((Path(run_dir) / "results.json").read_text())["summary"]["seconds"]
        best = min(best, (wall, counting))
    return best


def naive_one_thread(n_samples: int) -> tuple[float, float]:
    """The naive loop's best (wall rate, rate per CPU-second of this process) of 2, torch on
    one thread (its tiny ops gain nothing from a second one, and lose much under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return (max(naive_rate(n_samples) for _ in range(2)),
                max(naive_rate(n_samples, time.process_time) for _ in range(2)))
    finally:
        torch.set_num_threads(threads)


def main(quick: bool = False) -> None:
    small, large = 10_000, 100_000 if quick else 1_000_000
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; best of {REPEATS} runs each")
    wall_small, count_small = cli_run(small)
    wall_large, count_large = cli_run(large)
    naive, naive_cpu = naive_one_thread(2000 if quick else 10_000)
    peak = max(matmul_flops() for _ in range(3))
    marginal = (large - small) / (wall_large - wall_small)
    after = (wall_large - count_large) - (wall_small - count_small)
    print(f"python -m volume n_samples={small:,}: {wall_small:.1f} s wall ({count_small:.1f} s counting)")
    print(f"python -m volume n_samples={large:,}: {wall_large:.1f} s wall ({count_large:.1f} s counting; "
          f"{large / count_large:,.0f} networks/s while counting)")
    print(f"after counting, extra for {large - small:,} more samples: {after:.1f} s")
    print(f"marginal end-to-end rate: {marginal:,.0f} networks/s (target >= 100,000)")
    print(f"naive per-network loop (torch on 1 thread): {naive:,.0f}/s wall, {naive_cpu:,.0f} per CPU-second; "
          f"ratios {marginal / naive:.1f}x wall, {marginal / naive_cpu:.1f}x per naive CPU-second, "
          f"{marginal / ISSUE_NAIVE:.1f}x the issue's idle-machine {ISSUE_NAIVE:,}/s (target >= 13x)")
    gflops = marginal * flops_per_network(MLP(WIDTHS), 128) / 1e9
    print(f"forward FLOPs at that rate: {gflops:.1f} GFLOP/s = {100 * gflops / (peak / 1e9):.0f}% of the measured "
          f"2048^2 sgemm rate ({peak / 1e9:.1f} GFLOP/s)")
