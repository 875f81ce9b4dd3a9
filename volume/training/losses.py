"""Per-point losses and their gradients for a whole population: row j of the gradient is
network j's own (networks do not interact); MLPs get a hand-written backward pass."""
from __future__ import annotations

import torch

from volume.nets import ACTIVATIONS, MLP, Architecture


def point_losses(out: torch.Tensor, sign: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-network, per-point loss of outputs out[B, M] against +-1 targets sign[M]."""
    if loss == "mse":
        return (out - sign).square()
    return torch.nn.functional.softplus(-sign * out)


_ACTIVATION_GRADS = {"relu": lambda z, h: (z > 0).to(z.dtype), "tanh": lambda z, h: 1 - h * h,
                     "identity": lambda z, h: torch.ones_like(z)}


def losses_and_grad(arch: Architecture, theta: torch.Tensor, x: torch.Tensor, sign: torch.Tensor, loss: str):
    """Outputs out[B, M], per-point losses [B, M], and a function weights -> gradient[B, P] of
    sum_j sum_i weights[j, i] * loss[j, i]: row j is network j's own gradient, since networks
    do not interact. MLPs get a hand-written backward pass (one bmm per weight gradient,
    written straight into its slice); other architectures use autograd."""
    if isinstance(arch, MLP) and arch.activation in _ACTIVATION_GRADS:
        return _mlp_losses_and_grad(arch, theta, x, sign, loss)
    leaf = theta.detach().requires_grad_()
    out = arch.forward(leaf, x)[..., 0]
    losses = point_losses(out, sign, loss)
    return out.detach(), losses.detach(), lambda w: torch.autograd.grad((losses * w).sum(), leaf)[0]


def _mlp_losses_and_grad(arch: MLP, theta: torch.Tensor, x: torch.Tensor, sign: torch.Tensor, loss: str):
    inputs, pre = [], []
    h = x.expand(theta.shape[0], *x.shape)
    for layer in range(arch.n_layers):
        z = arch.affine(theta, h, layer)
        inputs.append(h)
        pre.append(z)
        h = ACTIVATIONS[arch.activation](z) if layer < arch.n_layers - 1 else z
    out = h[..., 0]
    losses = point_losses(out, sign, loss)

    def grad_of(weights: torch.Tensor) -> torch.Tensor:
        if loss == "mse":
            d_out = 2 * (out - sign)
        else:
            d_out = -sign * torch.sigmoid(-sign * out)
        dz = (d_out * weights).unsqueeze(2)
        grad = torch.empty_like(theta)
        for layer in reversed(range(arch.n_layers)):
            w = arch.slice(f"W{layer}")
            grad[:, w.start : w.stop] = torch.bmm(inputs[layer].transpose(1, 2), dz).reshape(len(theta), -1)
            if arch.bias:
                b = arch.slice(f"b{layer}")
                grad[:, b.start : b.stop] = dz.sum(1)
            if layer:
                dz = torch.bmm(dz, w.view(theta).transpose(1, 2))
                dz *= _ACTIVATION_GRADS[arch.activation](pre[layer - 1], inputs[layer])
        return grad

    return out, losses, grad_of
