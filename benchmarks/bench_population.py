"""Throughput of sample + forward + key + count on 7-40-40-1 with 128 inputs: the fused numba
kernel (what batch_keys runs for MLPs) and the torch-batched path, against a naive
per-network torch.nn.Sequential loop, and the fraction of the machine's matmul FLOP rate."""
from __future__ import annotations

import os
import time

import numba
import torch

from volume.functions import FunctionTable, output_keys
from volume.margins import flops_per_network
from volume.nets import MLP
from volume.population import CHUNK, batch_keys, torch_keys
from volume.priors import Prior
from volume.tasks import boolean_task

WIDTHS = [7, 40, 40, 1]


def batched_rate(n_samples: int, keys_fn=batch_keys, clock=time.perf_counter) -> tuple[float, int]:
    """End to end, as the default run does it: keys of 16,384-sample batches counted in a table."""
    arch, prior, task = MLP(WIDTHS), Prior(), boolean_task(7)
    table = FunctionTable(task.n_inputs)
    per_batch = 16384 // CHUNK
    keys_fn(arch, prior, task, 0, range(per_batch), 10**12)  # warm up (numba, allocator)
    start = clock()
    n_chunks = n_samples // CHUNK
    for first in range(0, n_chunks, per_batch):
        table.add(keys_fn(arch, prior, task, 0, range(first, min(first + per_batch, n_chunks)), 10**12))
    table.keys  # include the final merge
    return n_chunks * CHUNK / (clock() - start), len(table)


def one_core_rates(n_samples: int) -> dict[str, float]:
    """Networks per CPU-second of this process, everything on 1 thread: robust to other
    processes sharing the machine (wall-clock rates are not). Process, not thread, CPU time:
    numba's workqueue layer runs kernels on a worker thread. The kernel is embarrassingly
    parallel, so an idle k-core machine gives about k times these."""
    threads = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    try:
        rates = {"fused": batched_rate(n_samples, batch_keys, time.process_time)[0],
                 "torch-batched": batched_rate(n_samples // 2, torch_keys, time.process_time)[0],
                 "naive": naive_rate(n_samples // 50, time.process_time)}
    finally:
        numba.set_num_threads(threads[0])
        torch.set_num_threads(threads[1])
    return rates


def naive_rate(n_samples: int, clock=time.perf_counter) -> float:
    """One network at a time: torch.randn init, nn.Sequential forward, key, dict count."""
    task = boolean_task(7)
    counts: dict[bytes, int] = {}
    gen = torch.Generator().manual_seed(0)
    layers = []
    for a, b in zip(WIDTHS[:-1], WIDTHS[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    start = clock()
    with torch.no_grad():
        for _ in range(n_samples):
            for layer in net:
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.normal_(0, layer.in_features ** -0.5, generator=gen)
                    layer.bias.normal_(0, 1, generator=gen)
            key = output_keys(net(task.x)[None, :, 0]).tobytes()
            counts[key] = counts.get(key, 0) + 1
    return n_samples / (clock() - start)


def matmul_flops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    return reps * 2 * 2048**3 / (time.perf_counter() - start)


def main(quick: bool = False) -> None:
    n = 2**16 if quick else 2**20
    arch = MLP(WIDTHS)
    flops_per_net = flops_per_network(arch, 128)
    print(f"threads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus (other work slows every number)")
    fused, distinct = batched_rate(n)
    batched, _ = batched_rate(n // 4, torch_keys)
    naive = naive_rate(2000 if quick else 20000)
    per_core = one_core_rates(n // 4)
    peak = matmul_flops()
    print(f"fused sample+forward+key+count:   {fused:,.0f} networks/s ({n:,} networks, {distinct:,} distinct; "
          f"target >= 100,000)")
    print(f"torch-batched (sample, bmm, key): {batched:,.0f} networks/s")
    print(f"naive per-network loop:           {naive:,.0f} networks/s")
    print(f"ratio fused / naive:              {fused / naive:.1f}x (target >= 13x); fused / torch-batched "
          f"{fused / batched:.2f}x")
    print(f"matmul FLOP rate (2048^2 sgemm):  {peak / 1e9:.1f} GFLOP/s; the fused run reaches "
          f"{fused * flops_per_net / 1e9:.1f} GFLOP/s = {100 * fused * flops_per_net / peak:.0f}% of it")
    print("per core (process CPU time, all on 1 thread): " + ", ".join(
        f"{name} {rate:,.0f}/s" for name, rate in per_core.items()) +
        f"; fused / naive {per_core['fused'] / per_core['naive']:.1f}x, fused / torch-batched "
        f"{per_core['fused'] / per_core['torch-batched']:.2f}x; an idle {os.cpu_count()}-core machine: "
        f"~{os.cpu_count() * per_core['fused']:,.0f} fused networks/s")
    prior = Prior()
    prior.sample(arch, 1024, 0)
    start = time.perf_counter()
    prior.sample(arch, 65536, 0)
    elapsed = time.perf_counter() - start
    print(f"sampler alone: {65536 / elapsed:,.0f} networks/s "
          f"({65536 * arch.n_params / elapsed / 1e6:,.0f} M normals/s)")
    theta, x = prior.sample(arch, CHUNK, 0), boolean_task(7).x
    with torch.inference_mode():
        arch.forward(theta, x)
        start = time.perf_counter()
        for _ in range(64):
            arch.forward(theta, x)
    print(f"torch forward alone: {64 * CHUNK / (time.perf_counter() - start):,.0f} networks/s")
