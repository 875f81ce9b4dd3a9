"""Many-seed batched training: B networks of one architecture as one tensor program.

Each network has its own initialisation (row `init_id` of the prior's INIT_STREAM) and its
own data order (its permutation of the training points in epoch e comes from row `order_id` of
stream ORDER_STREAM + e // ORDER_BLOCK), so network j's run depends only on (seed, init_id[j], order_id[j]),
never on which other networks share its batch. Networks do not interact, so the gradient
of the summed loss with respect to theta[B, P] is, row by row, each network's own gradient;
SGD (with momentum) and Adam are applied functionally to those rows.

Stopping: before every update the whole training set is evaluated; a network whose
thresholded outputs (output > 0) match every label stops there ('fit'), the others stop
after `max_steps` updates ('budget'). Stopped networks leave the batch, so the work shrinks
as they finish. Minibatches are realised as per-network weights over the training set
(1/batch on the points of the current batch, 0 elsewhere): the gradient is exactly the
minibatch gradient, and the same forward pass gives the full-set accuracy for stopping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from volume.errors import ConfigError
from volume.nets import Architecture
from volume.priors import Prior
from volume.rng import counter_sample

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "ce")
INIT_STREAM = 1
ORDER_STREAM = 1 << 20  # + block of epochs; far from the streams of sampling and initialisation
ORDER_BLOCK = 16  # epochs of data order drawn at once per network


@dataclass(frozen=True)
class Trainer:
    """optimizer: 'sgd' (PyTorch's momentum convention, no dampening) or 'adam'; loss: 'mse'
    on +-1 targets or 'ce' (logistic loss); batch_size 0 = full batch; pool = networks
    trained side by side (cache-sized; a finished network's slot is refilled at once, so
    results do not depend on it)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    loss: str = "mse"
    batch_size: int = 0
    max_steps: int = 10000
    pool: int = 256

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"trainer.optimizer: unknown {self.optimizer!r}; allowed: {list(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"trainer.loss: unknown {self.loss!r}; allowed: {list(LOSSES)}")
        _check_number("lr", self.lr, low=0.0, open_low=True)
        for key in ("momentum", "beta1", "beta2"):
            _check_number(key, getattr(self, key), low=0.0, high=1.0)
        _check_number("eps", self.eps, low=0.0, open_low=True)
        for key, minimum in (("batch_size", 0), ("max_steps", 1), ("pool", 1)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"trainer.{key}: must be an integer >= {minimum}, got {value!r}")


def _check_number(key: str, value, low: float, high: float = math.inf, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or value > high or (open_low and value == low) or (high == 1.0 and value == 1.0):
        bound = f"in [{low}, {high})" if high < math.inf else f"> {low}"
        raise ConfigError(f"trainer.{key}: must be a number {bound}, got {value!r}")


def build_trainer(trainer_cfg) -> Trainer:
    """Trainer from the `trainer` config group (unknown keys are refused, by name)."""
    allowed = set(Trainer.__dataclass_fields__) | {"name"}
    unknown = sorted(set(trainer_cfg) - allowed)
    if unknown:
        raise ConfigError(f"trainer: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return Trainer(**{k: v for k, v in trainer_cfg.items() if k != "name"})


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


def _runs(ids: np.ndarray, draw) -> np.ndarray:
    """draw(first, n) for each run of consecutive distinct ids, gathered back to ids' order."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
    parts = [draw(int(run[0]), len(run)) for run in np.split(uniq, breaks)]
    return np.concatenate(parts)[inverse.ravel()]


def init_theta(arch: Architecture, prior: Prior, seed: int, init_ids: np.ndarray) -> torch.Tensor:
    """Initial parameters: row init_ids[j] of the prior's initialisation stream."""
    draw = lambda first, n: prior.sample(arch, n, seed, offset=first, stream=INIT_STREAM).numpy()  # noqa: E731
    return torch.from_numpy(_runs(np.asarray(init_ids, dtype=np.int64), draw))


def block_orders(seed: int, order_ids: np.ndarray, block: int, n_train: int) -> torch.Tensor:
    """int64 [len(order_ids), ORDER_BLOCK, n_train]: each network's permutations of the
    training points for epochs block*ORDER_BLOCK .. +ORDER_BLOCK-1 (argsort of counter-based
    uniforms: row order_id of stream ORDER_STREAM + block)."""
    scale = np.ones(ORDER_BLOCK * n_train)
    draw = lambda first, n: counter_sample(seed, first, n, scale, "uniform", stream=ORDER_STREAM + block,  # noqa: E731
                                           dtype=np.float64)
    u = _runs(np.asarray(order_ids, dtype=np.int64), draw).reshape(-1, ORDER_BLOCK, n_train)
    return torch.from_numpy(np.argsort(u, axis=2, kind="stable"))


def epoch_order(seed: int, order_ids: np.ndarray, epoch: int, n_train: int) -> torch.Tensor:
    """int64 [len(order_ids), n_train]: each network's permutation in this epoch."""
    return block_orders(seed, order_ids, epoch // ORDER_BLOCK, n_train)[:, epoch % ORDER_BLOCK]


def point_losses(out: torch.Tensor, sign: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-network, per-point loss of outputs out[B, M] against +-1 targets sign[M]."""
    if loss == "mse":
        return (out - sign).square()
    return torch.nn.functional.softplus(-sign * out)


def _forward_with_grad(arch: Architecture, theta: torch.Tensor, x: torch.Tensor):
    # One leaf per named slice, joined by cat: its backward hands each leaf its gradient
    # block directly, instead of scattering every slice into a zero-filled [B, P] buffer.
    leaves = [theta[:, s.start : s.stop].detach().requires_grad_() for s in arch.slices]
    out = arch.forward(torch.cat(leaves, 1), x)[..., 0]
    return out, leaves


def train(arch: Architecture, x: torch.Tensor, labels: np.ndarray, trainer: Trainer, seed: int = 0,
          init_ids: np.ndarray | None = None, order_ids: np.ndarray | None = None, prior: Prior | None = None,
          theta0: torch.Tensor | None = None, eval_x: torch.Tensor | None = None, keep_theta: bool = False,
          progress: bool = False, desc: str = "training") -> TrainResult:
    """Train networks on inputs x[M, n] with boolean labels[M]. Network j starts from theta0[j]
    or, without theta0, from row init_ids[j] of the prior's initialisation stream; its data
    order is row order_ids[j] (default: init_ids, or 0..B-1). At most trainer.pool networks
    run at once; a stopped network's slot is refilled from the queue at once."""
    if arch.n_out != 1:
        raise ConfigError(f"model.n_out: training fits one output (keys threshold it at 0), got {arch.n_out}")
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
    with tqdm(total=n_nets, unit="net", disable=not progress, desc=desc) as bar:
        while True:
            free = trainer.pool - len(ids)
            if queued < n_nets and (free >= max(1, trainer.pool // 8) or len(ids) == 0):
                new = np.arange(queued, min(n_nets, queued + free))
                queued = new[-1] + 1
                start = theta0[new] if theta0 is not None else init_theta(arch, prior, seed, init_ids[new])
                theta = torch.cat([theta, start.float()])
                moments = [torch.cat([m, torch.zeros(len(new), arch.n_params)]) for m in moments]
                ids, taken = np.concatenate([ids, new]), np.concatenate([taken, np.zeros(len(new), np.int64)])
                order = torch.cat([order, torch.zeros(len(new), ORDER_BLOCK, n_train, dtype=torch.int64)])
            out, leaves = _forward_with_grad(arch, theta, x)
            losses = point_losses(out, sign, trainer.loss)
            correct = ((out > 0) == label).all(1).numpy()
            done = correct | (taken >= trainer.max_steps)
            kept = torch.from_numpy(~done)
            if done.any():
                rows = ids[done]
                result.steps[rows], result.fitted[rows] = taken[done], correct[done]
                result.loss[rows] = losses[torch.from_numpy(done)].detach().mean(1).double().numpy()
                with torch.no_grad():
                    if keep_theta:
                        result.theta[rows] = theta[torch.from_numpy(done)]
                    if eval_x is not None:
                        result.outputs[rows] = arch.forward(theta[torch.from_numpy(done)], eval_x)[..., 0]
                bar.update(int(done.sum()))
                if done.all() and queued == n_nets:
                    return result
                theta, ids, taken, order = theta[kept], ids[~done], taken[~done], order[kept]
                moments = [m[kept] for m in moments]
                losses = losses[kept]
            if batch < n_train:
                _refresh_order_(order, taken, ids, order_ids, seed, per_epoch, n_train)
            objective = (losses * _weights(order, taken, per_epoch, batch, n_train)).sum()
            grad = torch.cat(torch.autograd.grad(objective, leaves), 1)
            grad = grad[kept] if len(ids) < len(kept) else grad
            _update_(theta, grad, moments, trainer, taken + 1)
            taken = taken + 1


def _refresh_order_(order: torch.Tensor, taken: np.ndarray, ids: np.ndarray, order_ids: np.ndarray, seed: int,
                    per_epoch: int, n_train: int) -> None:
    """Draw the next block of epoch orders for the pool rows that begin one with this step."""
    per_block = per_epoch * ORDER_BLOCK
    starting = np.flatnonzero(taken % per_block == 0)
    blocks = taken[starting] // per_block
    for block in np.unique(blocks):
        rows = starting[blocks == block]
        order[torch.from_numpy(rows)] = block_orders(seed, order_ids[ids[rows]], int(block), n_train)


def _weights(order: torch.Tensor, taken: np.ndarray, per_epoch: int, batch: int, n_train: int):
    """Per-row weights over the training points: 1/|batch| on the points of the row's current
    minibatch (the last one of an epoch may be smaller), 0 elsewhere. Full batch: 1/M."""
    if batch == n_train:
        return torch.tensor(1.0 / n_train)
    epoch = torch.from_numpy((taken // per_epoch) % ORDER_BLOCK)
    this_epoch = order[torch.arange(len(taken)), epoch]
    first = torch.from_numpy((taken % per_epoch) * batch)
    position = first[:, None] + torch.arange(batch)
    inside = position < n_train
    size = inside.sum(1, keepdim=True).float()
    points = this_epoch.gather(1, position.clamp(max=n_train - 1))
    # scatter_add: a clamped duplicate adds weight 0, never overwrites a real one.
    return torch.zeros(this_epoch.shape).scatter_add_(1, points, inside.float() / size)


@torch.no_grad()
def _update_(theta: torch.Tensor, grad: torch.Tensor, moments: list[torch.Tensor], trainer: Trainer,
             step: np.ndarray) -> None:
    """One optimiser step of every pool row, in place; step[j] counts row j's updates
    including this one (Adam's bias correction is per network)."""
    if trainer.optimizer == "sgd":
        (velocity,) = moments
        velocity.mul_(trainer.momentum).add_(grad)
        theta.sub_(velocity, alpha=trainer.lr)
        return
    m, v = moments
    m.lerp_(grad, 1 - trainer.beta1)
    v.mul_(trainer.beta2).addcmul_(grad, grad, value=1 - trainer.beta2)
    correction1 = torch.from_numpy(1 - trainer.beta1 ** step.astype(np.float64)).float()[:, None]
    root2 = torch.from_numpy(np.sqrt(1 - trainer.beta2 ** step.astype(np.float64))).float()[:, None]
    denom = v.sqrt().div_(root2).add_(trainer.eps)
    theta.addcdiv_(m, denom.mul_(correction1), value=-trainer.lr)
