"""The NNGP: the Gaussian process an MLP's output tends to as its hidden layers grow wide,
and a counter-based sampler of that process's functions on a fixed input set.

Kernel recursion (Neal 1996; Lee et al. 2018) for the Gaussian prior of `volume.priors`:
K_0(x, x') = sigma_b^2 + sigma_w^2 x.x' / n_in, and per hidden layer
K_{l+1} = sigma_b^2 + sigma_w^2 E[phi(u) phi(u')], (u, u') ~ N(0, K_l), in closed form for
relu (arc-cosine kernel of degree 1), sign and identity. With no hidden layer the output is
exactly this Gaussian process; with one hidden layer its covariance equals the kernel at any
width (the expectation over the output weights is exact), and deeper nets reach it as the
widths grow. Hidden layers need fan-in scaling (else the sums diverge with the width; a
perceptron goes without: K_0 = sigma_b^2 + sigma_w^2 x.x'). The uniform prior is refused: its
variances match, but its first-layer pre-activations are sums of a few uniform terms, not
Gaussian, so its limit kernel differs (sign, n = 7: 0.748 against 0.678 for one entry).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from volume.errors import ConfigError
from volume.functions import n_words, pack_bits
from volume.nets import MLP
from volume.population import CHUNK
from volume.priors import Prior
from volume.rng import NNGP_STREAM, counter_sample, normal_rows

KERNEL_ACTIVATIONS = ("identity", "relu", "sign")
_BLAS = ThreadpoolController()


def check_nngp(arch: MLP, prior: Prior) -> None:
    """ConfigError unless the NNGP of this architecture and prior is known in closed form."""
    if not isinstance(arch, MLP):
        raise ConfigError(f"model.name: the NNGP is implemented for model=mlp only, got {arch.describe()}")
    if arch.n_layers > 1 and arch.activation not in KERNEL_ACTIVATIONS:
        raise ConfigError(f"model.activation: the NNGP kernel has a closed form for {list(KERNEL_ACTIVATIONS)}, "
                          f"got {arch.activation!r}")
    if prior.kind != "gaussian":
        # Same variances, but non-Gaussian first-layer pre-activations: another kernel.
        raise ConfigError(f"prior.name: the NNGP needs the gaussian prior, got {prior.kind!r}")
    if arch.n_layers > 1 and not prior.fan_in_scaling:
        raise ConfigError("prior.fan_in_scaling: must be true for the NNGP of a net with hidden layers "
                          "(without it the hidden-layer sums diverge as the width grows)")


def gaussian_product_moment(k11: torch.Tensor, k22: torch.Tensor, k12: torch.Tensor,
                            activation: str) -> torch.Tensor:
    """E[phi(u) phi(u')] for (u, u') ~ N(0, [[k11, k12], [k12, k22]]), elementwise. A zero
    variance means u = 0 almost surely, and phi(0) = 0 for every activation here."""
    if activation == "identity":
        return k12.clone()
    norm = torch.sqrt(k11 * k22)
    live = norm > 0
    cos = torch.where(live, k12 / torch.where(live, norm, 1.0), 0.0).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    if activation == "relu":
        # Arc-cosine kernel of degree 1 (Cho & Saul 2009).
        out = norm / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * cos)
    elif activation == "sign":
        out = 1.0 - 2.0 * theta / math.pi
    else:
        raise ValueError(f"activation must be one of {KERNEL_ACTIVATIONS}, got {activation!r}")
    return torch.where(live, out, 0.0)


def nngp_kernel(arch: MLP, prior: Prior, x: torch.Tensor) -> torch.Tensor:
    """Covariance [N, N] (float64) of one output over the inputs x[N, n_in] in the
    infinite-width limit of `arch` under `prior`."""
    check_nngp(arch, prior)
    x = x.to(torch.float64)
    bias = prior.sigma_b**2 if arch.bias else 0.0
    weight = prior.sigma_w**2 / (arch.n_in if prior.fan_in_scaling else 1)
    kernel = bias + weight * (x @ x.T)
    for _ in range(arch.n_layers - 1):
        diag = torch.diagonal(kernel)
        moment = gaussian_product_moment(diag[:, None], diag[None, :], kernel, arch.activation)
        kernel = bias + prior.sigma_w**2 * moment
    return kernel


def gp_factor(kernel: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Lower-triangular A with kernel = A A^T (float64), and how it was found: 'cholesky', or
    'semidefinite' when the kernel is singular (e.g. a perceptron's kernel has rank n_in + 1):
    the same elimination, with a column set to zero wherever the remaining variance is below
    1e-12 of the largest, so that input's output is fixed by the earlier ones. No jitter. Being
    triangular, the first k rows of A only use the first k normals: conditioning on the first
    inputs needs only their normals."""
    kernel = kernel.to(torch.float64)
    factor, info = torch.linalg.cholesky_ex(kernel)
    if int(info) == 0:
        return factor, "cholesky"
    n = kernel.shape[0]
    tol = 1e-12 * float(torch.diagonal(kernel).max().clamp(min=0.0))
    factor = torch.zeros_like(kernel)
    for j in range(n):
        rest = float(kernel[j, j] - factor[j, :j] @ factor[j, :j])
        if rest > tol:
            factor[j, j] = math.sqrt(rest)
            factor[j + 1 :, j] = (kernel[j + 1 :, j] - factor[j + 1 :, :j] @ factor[j, :j]) / factor[j, j]
    return factor, "semidefinite"


def ordered_factor(kernel: torch.Tensor, first: np.ndarray) -> tuple[torch.Tensor, np.ndarray, str]:
    """gp_factor of the kernel with the inputs `first` moved to the front (in that order), the
    input order used, and the method."""
    order = np.concatenate([first, np.setdiff1d(np.arange(kernel.shape[0]), first)]).astype(np.int64)
    index = torch.from_numpy(order)
    factor, method = gp_factor(kernel[index][:, index])
    return factor, order, method


def gp_keys(factor: torch.Tensor, order: np.ndarray, seed: int, chunks: range, n_samples: int,
            labels: np.ndarray | None = None, stream: int = NNGP_STREAM) -> np.ndarray:
    """Function keys (uint64 [B, W], bits in the original input order) of the GP samples of
    `chunks` below n_samples whose outputs on the first len(labels) inputs of `order` are
    `labels` (all samples when labels is None). Sample j is f = A z with z the j-th rows of the
    counter-based standard normals of streams (stream, stream + 1) for the conditioned and the
    other inputs; output > 0 is bit 1. The other inputs' normals are drawn only where needed,
    and every chunk is multiplied at the fixed shape [CHUNK, N], so the keys are bit-identical
    whatever the batch of chunks. (numpy, not torch: torch's thread pool makes these small
    products slow when the cores are shared.)"""
    a = factor.numpy() if isinstance(factor, torch.Tensor) else np.asarray(factor, np.float64)
    n_inputs = a.shape[0]
    head = 0 if labels is None else len(labels)
    want = np.asarray(labels if labels is not None else [], dtype=bool)
    inverse = np.argsort(order)
    z_head = counter_sample(seed, chunks.start * CHUNK, len(chunks) * CHUNK, np.ones(head), "normal", stream,
                            np.float64)
    with _BLAS.limit(limits=1, user_api="blas"):  # threads only slow these small products down
        keys = _chunk_keys(a, head, want, inverse, z_head, seed, chunks, n_samples, stream)
    return np.concatenate(keys) if keys else np.zeros((0, n_words(n_inputs)), np.uint64)


def _chunk_keys(a: np.ndarray, head: int, want: np.ndarray, inverse: np.ndarray, z_head: np.ndarray, seed: int,
                chunks: range, n_samples: int, stream: int) -> list[np.ndarray]:
    n_inputs, a_head, keys = a.shape[0], np.ascontiguousarray(a[:head, :head].T), []
    for i, chunk in enumerate(chunks):
        keep = min(CHUNK, n_samples - chunk * CHUNK)
        if keep <= 0:
            break
        f_head = z_head[i * CHUNK : (i + 1) * CHUNK] @ a_head
        rows = np.flatnonzero(((f_head[:keep] > 0) == want).all(1))
        if len(rows) == 0:
            continue
        z = np.zeros((CHUNK, n_inputs - head))
        z[rows] = normal_rows(seed, chunk * CHUNK + rows, n_inputs - head, stream + 1)
        f = np.concatenate([f_head, z_head[i * CHUNK : (i + 1) * CHUNK] @ a[head:, :head].T + z @ a[head:, head:].T], 1)
        keys.append(pack_bits(f[rows][:, inverse] > 0))
    return keys
