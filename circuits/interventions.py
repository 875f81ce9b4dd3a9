"""Causal interventions, batched over a population theta[B, P]:

- ablation of hidden units of an MLP (zero: the unit's output set to 0, its own "off" value;
  mean: set to its mean over the input set) and of residual blocks (the block's write
  replaced by 0 or by its mean over the input set in the clean run);
- activation patching: a unit's or block's value on input x_a replaced by its value on x_b;
- the path-length decomposition of a residual MLP's output (Veit et al. 2016).
"""
from __future__ import annotations

import torch

from volume.nets import ACTIVATIONS, MLP, ResidualMLP

MODES = ("zero", "mean")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"ablation mode: unknown {mode!r}; allowed: {list(MODES)}")


def mlp_intervene(arch: MLP, theta: torch.Tensor, x: torch.Tensor,
                  edit: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Outputs [B, N, k] when, after hidden layer l's activation, the units where
    mask[B, width] is set take the values of replacement[B, N or 1, width]. edit: l -> (mask, replacement)."""
    act = ACTIVATIONS[arch.activation]
    h = x.to(theta.dtype).expand(theta.shape[0], *x.shape)
    for layer in range(arch.n_layers):
        z = arch.affine(theta, h, layer)
        if layer == arch.n_layers - 1:
            return z
        h = act(z)
        if layer in edit:
            mask, value = edit[layer]
            h = torch.where(mask.unsqueeze(1), value.expand_as(h), h)
    raise AssertionError("unreachable")


def ablate_units(arch: MLP, theta: torch.Tensor, x: torch.Tensor, layer: int, mask: torch.Tensor,
                 mode: str = "zero") -> torch.Tensor:
    """Outputs [B, N, k] with the units of hidden layer `layer` where mask[B, width] holds ablated."""
    _check_mode(mode)
    if mode == "zero":
        value = torch.zeros(theta.shape[0], 1, arch.widths[layer + 1], dtype=theta.dtype)
    else:
        value = ACTIVATIONS[arch.activation](arch.preactivations(theta, x)[layer]).mean(1, keepdim=True)
    return mlp_intervene(arch, theta, x, {layer: (mask, value)})


def ablate_one_unit(arch: MLP, theta: torch.Tensor, pre: list[torch.Tensor], layer: int, unit: torch.Tensor,
                    mode: str = "zero") -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, ablated) outputs [E, N, k] when row e ablates unit[e] of hidden `layer`, from
    the rows' clean pre-activations `pre` (as MLP.preactivations). The ablation enters the next
    layer as a rank-one change, and both outputs go through the same operations from there on,
    so a unit whose ablation changes nothing gives bit-identical outputs."""
    _check_mode(mode)
    act = ACTIVATIONS[arch.activation]
    rows = torch.arange(theta.shape[0])
    a = act(pre[layer][rows, :, unit])  # [E, N]
    delta = (a.mean(1, keepdim=True) if mode == "mean" else torch.zeros_like(a)) - a
    w_next = arch.slice(f"W{layer + 1}").view(theta)[rows, unit]  # [E, width_next]
    outs = []
    for z in (pre[layer + 1], pre[layer + 1] + delta.unsqueeze(2) * w_next.unsqueeze(1)):
        for nxt in range(layer + 2, arch.n_layers):
            z = arch.affine(theta, act(z), nxt)
        outs.append(z)
    return outs[0], outs[1]


def patch_units(arch: MLP, theta: torch.Tensor, x_clean: torch.Tensor, x_source: torch.Tensor, layer: int,
                mask: torch.Tensor) -> torch.Tensor:
    """Outputs on x_clean[N, n] with the masked units of `layer` taking their values on the
    paired rows of x_source[N, n]."""
    source = ACTIVATIONS[arch.activation](arch.preactivations(theta, x_source)[layer])
    return mlp_intervene(arch, theta, x_clean, {layer: (mask, source)})


def residual_intervene(arch: ResidualMLP, theta: torch.Tensor, x: torch.Tensor,
                       edit: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Outputs [B, N, k] when block k's write is replaced, for rows where mask[B] holds, by
    replacement[B, N or 1, d]. edit: k -> (mask, replacement)."""
    r = arch.initial_stream(theta, x)
    for k in range(arch.n_blocks):
        write = arch.block_write(theta, r, k)
        if k in edit:
            mask, value = edit[k]
            write = torch.where(mask[:, None, None], value.expand_as(write), write)
        r = r + write
    return arch.readout(theta, r)


def ablate_blocks(arch: ResidualMLP, theta: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
                  mode: str = "mean") -> torch.Tensor:
    """Outputs [B, N, k] with the blocks where mask[B, L] holds ablated (their writes set to 0
    or to their clean mean over x). Mean ablation removes what the write says about the input
    and keeps its constant part (e.g. biases), so downstream offsets stay as trained."""
    _check_mode(mode)
    writes = arch.block_writes(theta, x)[0]
    edit = {}
    for k in range(arch.n_blocks):
        if bool(mask[:, k].any()):
            value = writes[k].mean(1, keepdim=True) if mode == "mean" else torch.zeros_like(writes[k][:, :1])
            edit[k] = (mask[:, k], value)
    return residual_intervene(arch, theta, x, edit)


def patch_block(arch: ResidualMLP, theta: torch.Tensor, x_clean: torch.Tensor, x_source: torch.Tensor,
                block: int) -> torch.Tensor:
    """Outputs on x_clean[N, n] with block `block`'s write taken from the paired x_source rows."""
    source = arch.block_writes(theta, x_source)[0][block]
    mask = torch.ones(theta.shape[0], dtype=torch.bool)
    return residual_intervene(arch, theta, x_clean, {block: (mask, source)})


def path_decomposition(arch: ResidualMLP, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """out[B, N, L+1, k]: the output split by path length (number of blocks a path passes).

    The stream unrolls into paths: the embedding through any subset of blocks (length = its
    size), a block's bias through later blocks (length 1 + their number), the readout bias
    (length 0). For identity activations this is exact term by term (Veit et al. 2016). For
    ReLU (or any gate) each block is linearised per input with its gates frozen at the clean
    forward: the terms still sum exactly to the output, but a term is what that path carries
    under the clean gates, not what the network would do with the other blocks removed."""
    act = ACTIVATIONS[arch.activation]
    if arch.activation not in ("relu", "identity"):
        raise ValueError(f"path decomposition needs relu or identity blocks, got {arch.activation!r}")
    r = arch.embed(x, theta.dtype).unsqueeze(0).expand(theta.shape[0], -1, -1)
    parts = [r] + [torch.zeros_like(r) for _ in range(arch.n_blocks)]
    for k in range(arch.n_blocks):
        w_in, w_out = arch.slice(f"W_in{k}").view(theta), arch.slice(f"W_out{k}").view(theta)
        z = torch.matmul(r, w_in)
        b_in = arch.slice(f"b_in{k}").view(theta).unsqueeze(1) if arch.bias else torch.zeros_like(z[:, :1])
        z = z + b_in
        gate = (z > 0).to(theta.dtype) if arch.activation == "relu" else torch.ones_like(z)
        new = [p.clone() for p in parts]
        for length in range(1, arch.n_blocks + 1):
            new[length] = new[length] + torch.matmul(torch.matmul(parts[length - 1], w_in) * gate, w_out)
        source = torch.matmul(b_in * gate, w_out)
        if arch.bias:
            source = source + arch.slice(f"b_out{k}").view(theta).unsqueeze(1)
        new[1] = new[1] + source
        parts = new
        r = r + torch.matmul(act(z), w_out) + (arch.slice(f"b_out{k}").view(theta).unsqueeze(1) if arch.bias else 0)
    w_read = arch.slice("W_read").view(theta)
    out = torch.stack([torch.matmul(p, w_read) for p in parts], 2)  # [B, N, L+1, k]
    if arch.bias:
        out[:, :, 0] = out[:, :, 0] + arch.slice("b_read").view(theta).unsqueeze(1)
    return out


def path_length_profile(decomposition: torch.Tensor) -> torch.Tensor:
    """Effective-depth profile [B, L+1]: each path length's share of sum_l ||out_l - mean||^2
    (sum over inputs and outputs; constant parts removed per length; cross terms between
    lengths are not attributed), from path_decomposition's [B, N, L+1, k]."""
    centred = decomposition - decomposition.mean(1, keepdim=True)
    power = (centred * centred).sum((1, 3))
    total = power.sum(1, keepdim=True)
    return torch.where(total > 0, power / total.clamp_min(torch.finfo(power.dtype).tiny), torch.zeros_like(power))
