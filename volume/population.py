"""Populations: prior samples in fixed-shape micro-chunks, their outputs and function keys.

Chunk c holds samples c*CHUNK .. (c+1)*CHUNK - 1 of a run. Every chunk is sampled and run
with exactly the same tensor shapes whatever the batch size, shard or worker, so matmul
rounding, and with it every function key, is bit-identical across all of them. MLPs take
the fused kernel of `volume.fused` instead (each network computed alone by one thread:
bit-identical too, and about twice as fast); other architectures take the torch path.
"""
from __future__ import annotations

import numpy as np
import torch

from volume import fused
from volume.functions import output_keys
from volume.nets import Architecture
from volume.priors import Prior
from volume.tasks import Task

CHUNK = 512


def n_chunks(n_samples: int) -> int:
    return -(-n_samples // CHUNK)


def shard_chunks(n_samples: int, shard: int, num_shards: int) -> range:
    """The contiguous chunk range that shard `shard` of `num_shards` owns."""
    total = n_chunks(n_samples)
    return range(shard * total // num_shards, (shard + 1) * total // num_shards)


def chunk_theta(arch: Architecture, prior: Prior, seed: int, chunks: range) -> torch.Tensor:
    """Parameters of every sample of the given chunks, [len(chunks) * CHUNK, P]."""
    return prior.sample(arch, len(chunks) * CHUNK, seed, offset=chunks.start * CHUNK)


def batch_keys(arch: Architecture, prior: Prior, task: Task, seed: int, chunks: range, n_samples: int,
               output: int = 0, device: str = "cpu") -> np.ndarray:
    """Function keys of the samples of `chunks` that lie below n_samples. MLPs on the CPU: the
    fused kernel. Otherwise (torch_keys, on `device`) sampling is done for all chunks at once
    (any batch gives the same rows) and the forward runs per chunk, always at shape [CHUNK, ...]."""
    if device == "cpu" and fused.supports(arch):
        first = chunks.start * CHUNK
        return fused.mlp_keys(arch, prior, task, seed, first, max(0, min(chunks.stop * CHUNK, n_samples) - first),
                              output)
    return torch_keys(arch, prior, task, seed, chunks, n_samples, output, device)


def torch_keys(arch: Architecture, prior: Prior, task: Task, seed: int, chunks: range, n_samples: int,
               output: int = 0, device: str = "cpu") -> np.ndarray:
    """batch_keys through prior.sample and arch.forward (any architecture, any device; the
    samples are drawn on the CPU, so they are the same on every device)."""
    theta = chunk_theta(arch, prior, seed, chunks).to(device)
    x = task.x.to(device)
    keys = []
    with torch.inference_mode():
        for i, chunk in enumerate(chunks):
            outputs = arch.forward(theta[i * CHUNK : (i + 1) * CHUNK], x)[..., output].cpu()
            keep = min(CHUNK, n_samples - chunk * CHUNK)
            keys.append(output_keys(outputs[:keep]))
    return np.concatenate(keys)
