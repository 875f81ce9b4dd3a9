"""Independent references the tests compare the fast code against."""
from __future__ import annotations

import numpy as np
import torch

from volume.nets import Architecture
from volume.training import Trainer
from volume.training.losses import point_losses
from volume.training.order import ORDER_BLOCK, block_orders


def train_one_textbook(arch: Architecture, theta0: torch.Tensor, x: torch.Tensor, labels: np.ndarray,
                       trainer: Trainer, seed: int = 0, order_id: int = 0) -> tuple[torch.Tensor, int, bool]:
    """One network trained the usual way (a leaf tensor, torch.optim, loss.backward()), with the
    same data order and stopping rule as `train`: the naive baseline of the benchmark and the
    independent reference of the tests. Returns (final theta[P], steps, fitted)."""
    p = theta0.detach().clone().float().unsqueeze(0).requires_grad_()
    if trainer.optimizer == "adam":
        opt = torch.optim.Adam([p], lr=trainer.lr, betas=(trainer.beta1, trainer.beta2), eps=trainer.eps)
    else:
        opt = torch.optim.SGD([p], lr=trainer.lr, momentum=trainer.momentum)
    n = x.shape[0]
    batch = trainer.batch_size if 0 < trainer.batch_size < n else n
    per_epoch = -(-n // batch)
    label = np.asarray(labels, dtype=bool)
    sign = torch.from_numpy(label).float() * 2 - 1
    perm = None
    for t in range(trainer.max_steps + 1):
        out = arch.forward(p, x.float())[0, :, 0]
        fitted = bool(((out > 0).numpy() == label).all())
        if fitted or t == trainer.max_steps:
            return p.detach()[0], t, fitted
        if t % (per_epoch * ORDER_BLOCK) == 0:
            perm = block_orders(seed, np.array([order_id]), t // (per_epoch * ORDER_BLOCK), n)[0]
        points = perm[(t // per_epoch) % ORDER_BLOCK, (t % per_epoch) * batch : (t % per_epoch + 1) * batch]
        loss = point_losses(out[points], sign[points], trainer.loss).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise AssertionError("unreachable")
