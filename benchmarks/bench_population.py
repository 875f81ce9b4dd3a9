"""Throughput of sample + forward + key + count on 7-40-40-1 with 128 inputs, against a naive
per-network torch.nn.Sequential loop, and the fraction of the machine's matmul FLOP rate."""
from __future__ import annotations

import time

import torch

from volume.functions import FunctionTable, output_keys
from volume.nets import MLP
from volume.population import CHUNK, batch_keys
from volume.priors import Prior
from volume.tasks import boolean_task

WIDTHS = [7, 40, 40, 1]


def batched_rate(n_samples: int) -> tuple[float, int]:
    arch, prior, task = MLP(WIDTHS), Prior(), boolean_task(7)
    table = FunctionTable(task.n_inputs)
    per_batch = 16384 // CHUNK
    batch_keys(arch, prior, task, 0, range(per_batch), 10**12)  # warm up (numba, allocator)
    start = time.perf_counter()
    n_chunks = n_samples // CHUNK
    for first in range(0, n_chunks, per_batch):
        table.add(batch_keys(arch, prior, task, 0, range(first, min(first + per_batch, n_chunks)), 10**12))
    table.keys  # include the final merge
    return n_chunks * CHUNK / (time.perf_counter() - start), len(table)


def naive_rate(n_samples: int) -> float:
    """One network at a time: torch.randn init, nn.Sequential forward, key, dict count."""
    task = boolean_task(7)
    counts: dict[bytes, int] = {}
    gen = torch.Generator().manual_seed(0)
    layers = []
    for a, b in zip(WIDTHS[:-1], WIDTHS[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(n_samples):
            for layer in net:
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.normal_(0, layer.in_features ** -0.5, generator=gen)
                    layer.bias.normal_(0, 1, generator=gen)
            key = output_keys(net(task.x)[None, :, 0]).tobytes()
            counts[key] = counts.get(key, 0) + 1
    return n_samples / (time.perf_counter() - start)


def matmul_flops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    return reps * 2 * 2048**3 / (time.perf_counter() - start)


def main(quick: bool = False) -> None:
    n = 2**16 if quick else 2**20
    rate, distinct = batched_rate(n)
    naive = naive_rate(2000 if quick else 20000)
    flops_per_net = 2 * 128 * sum(a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:]))
    peak = matmul_flops()
    print(f"threads: torch {torch.get_num_threads()}")
    print(f"batched sample+forward+key+count: {rate:,.0f} networks/s ({n:,} networks, {distinct:,} distinct)")
    print(f"naive per-network loop:           {naive:,.0f} networks/s")
    print(f"ratio batched / naive:            {rate / naive:.1f}x (target >= 13x)")
    print(f"matmul FLOP rate (2048^2 sgemm):  {peak / 1e9:.1f} GFLOP/s; the forward reaches "
          f"{rate * flops_per_net / 1e9:.1f} GFLOP/s = {100 * rate * flops_per_net / peak:.0f}% of it")
    arch, prior = MLP(WIDTHS), Prior()
    start = time.perf_counter()
    prior.sample(arch, 65536, 0)
    print(f"sampler alone: {65536 / (time.perf_counter() - start):,.0f} networks/s "
          f"({65536 * arch.n_params / (time.perf_counter() - start) / 1e6:,.0f} M normals/s)")
    theta, x = prior.sample(arch, CHUNK, 0), boolean_task(7).x
    arch.forward(theta, x)
    start = time.perf_counter()
    for _ in range(64):
        arch.forward(theta, x)
    print(f"forward alone: {64 * CHUNK / (time.perf_counter() - start):,.0f} networks/s")
