"""Classification throughput of the circuits package against naive per-network loops.

llama: a 7-40-40-1 ReLU population (the issue's target: >= 10,000 networks/s on 2 cores);
depth: residual MLPs with L = 6 blocks of width 4, stream 6, on 4-bit parity;
class scores (the counting experiments' rare-event hot paths), networks/s side by side:
- llama (`circuits.llama.unit_class_score`, m = 3: 7-40-40-1 on 128 inputs; m = 4: 8-40-40-1 on
  256): the numba kernel (volume.unit_scores) against the torch reductions it replaced
  (`torch_unit_class_score`, bit for bit the same scores) and the first torch version
  (normalise every pre-activation, concatenate the layers, gather the cube into groups);
  the kernel's GFLOP/s (wall) also as a fraction of the machine's sgemm rate (wall);
- depth (`circuits.depth.class_score`, L = 4 and 6 blocks of width 4, stream 6, 4-bit parity): the
  numba kernel (volume.residual_scores) against the batched torch score it replaced
  (`torch_class_score`); the same for the experiment's target-margin score (`torch_margin_score`).
Best of REPEATS timings over populations of 800 (one splitting population: 4 runs x 200 chains),
wall clock and per core (CPU time on one thread each, which holds up under other load).
The naive baselines classify one network at a time with per-unit Python loops (truth-table
flips by index, Walsh by an explicit character matrix, placements by nested loops).
"""
from __future__ import annotations

import itertools
import os
import time

import numpy as np
import torch

from benchmarks.bench_population import matmul_flops
from benchmarks.bench_scores import one_core
from circuits.depth import DEFAULT_TAU, class_score, classify_depth, parity_task, target_set, torch_class_score
from circuits.interventions import ablate_units
from circuits.llama import classify_llamas, llama_task, split_of, torch_unit_class_score, unit_class_score
from circuits.units import key_bits, subset_index
from volume.estimators.scores import TINY, target_margin_score, target_signs, torch_margin_score
from volume.margins import flops_per_network
from volume.nets import MLP, ResidualMLP
from volume.priors import Prior

REPEATS = 3
PARITY = {3: 0b01101001, 4: 0b0110100110010110}  # parity of the m distractors: a deep llama


def naive_llama(arch: MLP, theta: torch.Tensor, task) -> list[str]:
    labels, idx = [], np.arange(task.n_inputs)
    for b in range(theta.shape[0]):
        th = theta[b : b + 1]
        pre = arch.preactivations(th, task.x)
        out = pre[-1][0, :, 0] > 0
        label = "direct"
        for layer, z in enumerate(pre[:-1]):
            for u in range(z.shape[2]):
                t = z[0, :, u].numpy() > 0
                deps = [j for j in range(7) if (t != t[idx ^ (1 << j)]).any()]
                if deps and min(deps) >= 4:
                    mask = torch.zeros(1, z.shape[2], dtype=torch.bool)
                    mask[0, u] = True
                    used = bool(((ablate_units(arch, th, task.x, layer, mask)[0, :, 0] > 0) != out).any())
                    label = f"llama_{'used' if used else 'inert'}"
        labels.append(label)
    return labels


def naive_depth(arch: ResidualMLP, theta: torch.Tensor, task, tau: float = 0.4) -> list[str]:
    n = 4
    s = np.where((np.arange(16)[:, None] >> np.arange(n)) & 1, 1.0, -1.0)
    chi = np.stack([np.prod(s[:, [j for j in range(n) if (S >> j) & 1]], 1) for S in range(16)], 1)
    labels = []
    for b in range(theta.shape[0]):
        writes = arch.block_writes(theta[b : b + 1], task.x)[0]
        comp = []
        for w in writes:
            power = ((chi.T @ w[0].numpy() / 16) ** 2).sum(1)
            power[0] = 0
            comp.append(set(np.flatnonzero(power > tau * power.sum())) if power.sum() > 0 else set())
        serial = any(p in comp[i] and q in comp[j] and 15 in comp[k]
                     for i, j, k in itertools.combinations(range(len(comp)), 3)
                     for p in (3, 5, 6, 9, 10, 12) for q in (7, 11, 13, 14) if p & q == p)
        labels.append("serial" if serial else "other")
    return labels


def gathered_llama_score(arch: MLP, task, variables: list[int], key: int):
    """The llama class score as first written: min(target margin, unit margin), the unit
    margin from normalised pre-activations, layers concatenated, the cube gathered into groups."""
    order = torch.from_numpy(np.argsort(subset_index(task.n_vars, variables), kind="stable"))
    bits = key_bits(np.array([key], np.uint64), len(variables))[0]
    signs = target_signs(task.target, task.n_inputs)

    def score(theta: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            pre = arch.preactivations(theta.to(torch.float32), task.x.to(torch.float32))
            y = pre[-1][..., 0].to(torch.float64)
            target = (y * signs).amin(1) / (y.abs().amax(1) + TINY)
            z = torch.cat(pre[:-1], 2)
            z = z / (z.abs().amax(1, keepdim=True) + torch.finfo(z.dtype).tiny)
            grouped = z[:, order].reshape(z.shape[0], 1 << len(variables), -1, z.shape[2])
            signed = torch.where(bits[None, :, None, None], grouped, -grouped)
            return torch.minimum(target, signed.amin((1, 2)).amax(1).to(torch.float64))
    return score


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def score_rate(score, theta: torch.Tensor, repeats: int = REPEATS, clock=time.perf_counter) -> float:
    """Networks per second of `clock` of score over theta in populations of 800, best of
    `repeats` (after a warm-up)."""
    score(theta[:16])
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for part in theta.split(800):
            score(part)
        best = min(best, clock() - start)
    return len(theta) / best


def compare(label: str, kernel, baseline, theta: torch.Tensor, flops: float = 0.0, peak: float = 0.0) -> None:
    """Print kernel and torch baseline networks/s, wall clock (all threads) and per core (one
    thread each, CPU time: robust to other load), their ratios, and their largest difference."""
    gap = float((kernel(theta[:800]) - baseline(theta[:800])).abs().max())
    wall = score_rate(kernel, theta), score_rate(baseline, theta, 2)
    core = one_core(lambda: (score_rate(kernel, theta, clock=time.process_time),
                             score_rate(baseline, theta, 2, time.process_time)))
    gflops = wall[0] * flops / 1e9
    of_peak = f"; kernel {gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of sgemm" if flops else ""
    print(f"  {label}: wall kernel {wall[0]:,.0f} nets/s, torch {wall[1]:,.0f} ({wall[0] / wall[1]:.1f}x); "
          f"per core kernel {core[0]:,.0f}, torch {core[1]:,.0f} ({core[0] / core[1]:.1f}x){of_peak}; "
          f"largest difference {gap:.1e}", flush=True)


def llama_score_rates(m: int, quick: bool, peak: float) -> None:
    task = llama_task(m)
    arch = MLP([4 + m, 40, 40, 1])
    theta = Prior().sample(arch, 1600 if quick else 8000, seed=2, dtype=torch.float64)
    variables, key = split_of(task).distractors, PARITY[m]
    kernel = unit_class_score(arch, task, variables, [key])
    flops = flops_per_network(arch, task.n_inputs)
    label = f"llama {'-'.join(map(str, arch.widths))}, {task.n_inputs} inputs"
    compare(f"{label} vs torch", kernel, torch_unit_class_score(arch, task, variables, [key]), theta, flops, peak)
    compare(f"{label} vs first torch version", kernel, gathered_llama_score(arch, task, variables, key), theta)


def depth_score_rates(n_blocks: int, quick: bool) -> None:
    task = parity_task(4)
    arch = ResidualMLP(4, n_blocks, 4, 6)
    theta = Prior().sample(arch, 1600 if quick else 8000, seed=3, dtype=torch.float64)
    compare(f"depth L={n_blocks} w=4 d=6, 16 inputs, class score", class_score(arch, task, DEFAULT_TAU, "serial"),
            torch_class_score(arch, task, DEFAULT_TAU, "serial"), theta)
    compare(f"depth L={n_blocks} w=4 d=6, 16 inputs, target margin", target_margin_score(arch, task.x, task.target),
            torch_margin_score(arch, task.x, target_signs(task.target, task.n_inputs)), theta)


def main(quick: bool = False) -> None:
    torch.manual_seed(0)
    n_fast, n_naive = (4096, 100) if quick else (40960, 400)
    task = llama_task(3)
    arch = MLP([7, 40, 40, 1])
    theta = Prior().sample(arch, n_fast, seed=0)
    classify_llamas(arch, theta[:1024], task)  # warm-up
    fast = rate(lambda: classify_llamas(arch, theta, task), n_fast)
    naive = rate(lambda: naive_llama(arch, theta[:n_naive], task), n_naive)
    counts = classify_llamas(arch, theta[:4096], task).counts()
    print(f"llama 7-40-40-1: batched {fast:,.0f} nets/s, naive loop {naive:,.0f} nets/s, "
          f"ratio {fast / naive:.0f}x  (labels of 4096: {counts})")
    rtask = parity_task(4)
    rarch = ResidualMLP(4, 6, 4, 6)
    rtheta = Prior().sample(rarch, n_fast, seed=1)
    fast = rate(lambda: classify_depth(rarch, rtheta, rtask), n_fast)
    naive = rate(lambda: naive_depth(rarch, rtheta[:n_naive], rtask), n_naive)
    print(f"depth L=6 w=4: batched {fast:,.0f} nets/s, naive loop (serial check only) {naive:,.0f} nets/s, "
          f"ratio {fast / naive:.0f}x")
    peak = max(matmul_flops() for _ in range(3)) / 1e9
    print(f"class scores (load average {os.getloadavg()[0]:.1f}; sgemm peak {peak:.1f} GFLOP/s):")
    for m in (3, 4):
        llama_score_rates(m, quick, peak)
    for n_blocks in (4, 6):
        depth_score_rates(n_blocks, quick)


if __name__ == "__main__":
    main()
