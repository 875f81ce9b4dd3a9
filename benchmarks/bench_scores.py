"""Target-margin score evaluation (what rare-event splitting spends its time in): the numba
kernel (volume.margins), the batched torch forward it replaced, and a naive per-network
loop, each as networks/s, ratios, and GFLOP/s as a fraction of the machine's measured sgemm
rate, all in one process. Best of `REPEATS` timings, to ride out other load."""
from __future__ import annotations

import os
import time

import numba
import numpy as np
import torch

from benchmarks.bench_population import matmul_flops
from volume.estimators.scores import target_margin_score, target_signs, torch_margin_score
from volume.margins import MarginScorer, flops_per_network
from volume.nets import MLP
from volume.priors import Prior
from volume.tasks import boolean_task

REPEATS = 5
CASES = [  # (label, widths, cube n, networks per call); "dense": a perceptron's tiled kernel
    ("perceptron, 12 inputs (4,096 points)", [12, 1], 12, 4000),
    ("perceptron-12, dense", [12, 1], 12, 4000),
    ("perceptron, 16 inputs (65,536 points)", [16, 1], 16, 400),
    ("perceptron-16, dense", [16, 1], 16, 400),
    ("7-40-40-1, 128 points", [7, 40, 40, 1], 7, 4000),
    ("8-40-40-1, 256 points", [8, 40, 40, 1], 8, 4000),
]


def best_rate(score, theta: torch.Tensor, repeats: int = REPEATS, clock=time.perf_counter) -> float:
    """Networks per second of `clock`, best of `repeats` calls on theta."""
    score(theta[:16])
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        score(theta)
        best = min(best, clock() - start)
    return theta.shape[0] / best


def one_core(fn):
    """fn() with numba and torch on one thread each; their CPU time (time.process_time) then
    measures one core's work, whatever else shares the machine."""
    threads = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        numba.set_num_threads(threads[0])
        torch.set_num_threads(threads[1])


def sgemm_per_core() -> float:
    """FLOP per CPU-second of a 2048^2 float32 torch.mm on one thread, best of 3."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        a @ b
        best = min(best, time.process_time() - start)
    return 2 * 2048**3 / best


def naive_score(arch: MLP, x: torch.Tensor, signs: torch.Tensor):
    """One network at a time: its forward in float64, then the margin."""
    x64, s64 = x.double(), signs.double()

    def score(theta: torch.Tensor) -> torch.Tensor:
        out = torch.empty(theta.shape[0], dtype=torch.float64)
        with torch.inference_mode():
            for b in range(theta.shape[0]):
                y = arch.forward(theta[b : b + 1], x64)[0, :, 0]
                out[b] = (y * s64).min() / (y.abs().max() + 1e-300)
        return out

    return score


def measure(widths: list[int], n: int, batch: int, quick: bool, dense: bool) -> dict[str, float]:
    arch, task = MLP(widths), boolean_task(n, "pm1")
    signs = target_signs(np.asarray(task.x[:, 0] > 0), task.n_inputs)
    theta = Prior().sample(arch, batch // (8 if quick else 1), 0, dtype=torch.float64)
    fast = (MarginScorer(arch, task.x, signs.numpy() > 0, outer_sums=False) if dense
            else target_margin_score(arch, task.x, signs.numpy() > 0))
    baseline = torch_margin_score(arch, task.x, signs)
    naive = naive_score(arch, task.x, signs)
    rates = {"kernel": best_rate(fast, theta), "torch": best_rate(baseline, theta, 2),
             "naive": best_rate(naive, theta[: max(16, len(theta) // 20)], 2)}
    flops = flops_per_network(arch, task.n_inputs) / 1e9
    rates["gflops"] = rates["kernel"] * flops
    rates["core_gflops"] = one_core(lambda: best_rate(fast, theta, clock=time.process_time)) * flops
    return rates


def main(quick: bool = False) -> None:
    print(f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    peak = max(matmul_flops() for _ in range(3)) / 1e9
    core_peak = one_core(sgemm_per_core) / 1e9
    print(f"peak: 2048^2 float32 sgemm {peak:.1f} GFLOP/s wall (all threads, best of 3), {core_peak:.1f} GFLOP per "
          "CPU-second on one thread")
    print("per core: the kernel on one thread, GFLOP per CPU-second, against the one-thread sgemm (robust to load)")
    print(f"{'case':40s} {'kernel/s':>10s} {'torch/s':>9s} {'naive/s':>8s} {'x torch':>8s} {'x naive':>8s} "
          f"{'GFLOP/s':>8s} {'of peak':>8s} {'per core':>9s} {'of core':>8s}")
    for label, widths, n, batch in [CASES[0], CASES[1], CASES[4]] if quick else CASES:
        r = measure(widths, n, batch, quick, label.endswith("dense"))
        # a perceptron on the cube skips the dense forward (outer sums): its GFLOP/s are those a
        # dense forward would need for the same rate, so they can pass the peak
        label = label + (" *" if widths[1:] == [1] and not label.endswith("dense") else "")
        print(f"{label:40s} {r['kernel']:10,.0f} {r['torch']:9,.0f} {r['naive']:8,.0f} "
              f"{r['kernel'] / r['torch']:7.1f}x "
              f"{r['kernel'] / r['naive']:7.1f}x {r['gflops']:8.1f} {100 * r['gflops'] / peak:7.0f}% "
              f"{r['core_gflops']:9.1f} {100 * r['core_gflops'] / core_peak:7.0f}%", flush=True)
    print("* outer sums over the cube's two halves (volume.margins): GFLOP/s of the dense forward it replaces")
