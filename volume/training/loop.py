"""The training loop: a pool of at most `trainer.pool` networks trained side by side, stopped
networks replaced from the queue, with each network's result independent of its pool-mates."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from volume.errors import ConfigError
from volume.nets import Architecture
from volume.priors import Prior
from volume.threads import threads_limited
from volume.training.losses import losses_and_grad
from volume.training.optimizers import Trainer, update_
from volume.training.order import ORDER_BLOCK, init_theta, minibatch_weights, refresh_order_


@dataclass
class TrainResult:
    """Per network: updates applied, full-training-set loss at the end, whether it stopped by
    fitting every training point (else by the step budget); final parameters when asked for,
    and the final outputs on the evaluation inputs when given."""

    steps: np.ndarray
    loss: np.ndarray
    fitted: np.ndarray
    theta: torch.Tensor | None = None
    outputs: torch.Tensor | None = None

    @property
    def stopped_reason(self) -> np.ndarray:
        return np.where(self.fitted, "fit", "budget")


def train(arch: Architecture, x: torch.Tensor, labels: np.ndarray, trainer: Trainer, seed: int = 0,
          init_ids: np.ndarray | None = None, order_ids: np.ndarray | None = None, prior: Prior | None = None,
          theta0: torch.Tensor | None = None, eval_x: torch.Tensor | None = None, keep_theta: bool = False,
          progress: bool = False, desc: str = "training") -> TrainResult:
    """Train networks on inputs x[M, n] with boolean labels[M]. Network j starts from theta0[j]
    or, without theta0, from row init_ids[j] of the prior's initialisation stream; its data
    order is row order_ids[j] (default: init_ids, or 0..B-1). At most trainer.pool networks
    run at once; stopped networks' slots are refilled from the queue once an eighth of the
    pool is idle."""
    if arch.n_out != 1:
        raise ConfigError(f"model.n_out: training fits one output (keys threshold it at 0), got {arch.n_out}")
    if getattr(arch, "activation", None) == "sign":
        raise ConfigError("model.activation: 'sign' has zero gradient almost everywhere; train with relu, tanh "
                          "or identity")
    if (theta0 is None) == (prior is None):
        raise ValueError("give exactly one of theta0 (initial parameters) and prior (to sample them)")
    n_nets = theta0.shape[0] if theta0 is not None else len(init_ids)
    init_ids = np.arange(n_nets) if init_ids is None else np.asarray(init_ids, dtype=np.int64)
    order_ids = init_ids if order_ids is None else np.asarray(order_ids, dtype=np.int64)
    if n_nets == 0 or init_ids.shape != (n_nets,) or order_ids.shape != (n_nets,):
        raise ValueError("need at least one network, and one init id and one order id per network")
    n_train = x.shape[0]
    batch = n_train if trainer.batch_size == 0 or trainer.batch_size >= n_train else trainer.batch_size
    per_epoch = -(-n_train // batch)
    label = torch.as_tensor(np.asarray(labels, dtype=bool))
    sign = label.float() * 2 - 1
    x = x.float()

    result = TrainResult(np.full(n_nets, trainer.max_steps, np.int64), np.zeros(n_nets), np.zeros(n_nets, bool),
                         torch.empty(n_nets, arch.n_params) if keep_theta else None,
                         None if eval_x is None else torch.empty(n_nets, eval_x.shape[0]))
    n_moments = 2 if trainer.optimizer == "adam" else 1
    theta = torch.empty(0, arch.n_params)
    moments = [torch.empty(0, arch.n_params) for _ in range(n_moments)]
    ids = np.zeros(0, np.int64)  # which network each pool row holds
    taken = np.zeros(0, np.int64)  # updates each pool row has applied
    order = torch.zeros(0, ORDER_BLOCK, n_train, dtype=torch.int64)
    queued = 0
    live = np.zeros(0, bool)  # pool rows still training (stopped rows idle until the next compaction)
    with threads_limited(1), tqdm(total=n_nets, unit="net", disable=not progress, desc=desc) as bar:
        while True:
            # Compact and refill only once an eighth of the pool is idle: gathers cost a pass over
            # all pool rows, so doing it for every stopped network would cost more than it saves.
            idle = int((~live).sum()) + trainer.pool - len(live)
            if idle >= max(1, trainer.pool // 8) or not live.any():
                keep = torch.from_numpy(live)
                new = np.arange(queued, min(n_nets, queued + trainer.pool - int(live.sum())))
                queued += len(new)
                if theta0 is not None or len(new) == 0:
                    start = (theta0 if theta0 is not None else theta)[torch.from_numpy(new)]
                else:
                    start = init_theta(arch, prior, seed, init_ids[new])
                theta = torch.cat([theta[keep], start.float()])
                moments = [torch.cat([m[keep], torch.zeros(len(new), arch.n_params)]) for m in moments]
                ids = np.concatenate([ids[live], new])
                taken = np.concatenate([taken[live], np.zeros(len(new), np.int64)])
                order = torch.cat([order[keep], torch.zeros(len(new), ORDER_BLOCK, n_train, dtype=torch.int64)])
                live = np.ones(len(ids), bool)
            out, losses, grad_of = losses_and_grad(arch, theta, x, sign, trainer.loss)
            correct = ((out > 0) == label).all(1).numpy()
            done = live & (correct | (taken >= trainer.max_steps))
            if done.any():
                rows, pick = ids[done], torch.from_numpy(done)
                result.steps[rows], result.fitted[rows] = taken[done], correct[done]
                result.loss[rows] = losses[pick].mean(1).double().numpy()
                with torch.no_grad():
                    if keep_theta:
                        result.theta[rows] = theta[pick]
                    if eval_x is not None:
                        result.outputs[rows] = arch.forward(theta[pick], eval_x)[..., 0]
                bar.update(len(rows))
                live &= ~done
                if not live.any() and queued == n_nets:
                    return result
            if batch < n_train:
                refresh_order_(order, taken, ids, order_ids, seed, per_epoch, n_train)
            grad = grad_of(minibatch_weights(order, taken, per_epoch, batch, n_train))
            update_(theta, grad, moments, trainer, taken + 1)
            taken = taken + 1
