"""Many-seed batched training: B networks of one architecture as one tensor program.

Each network has its own initialisation (row `init_id` of the prior's INIT_STREAM) and its
own data order (its permutation of the training points in epoch e comes from row
`order_id` of stream ORDER_STREAM + e // ORDER_BLOCK), so network j's run depends only on
(seed, init_id[j], order_id[j]), never on which other networks share its batch. Networks do not interact, so the gradient
of the summed loss with respect to theta[B, P] is, row by row, each network's own gradient;
SGD (with momentum) and Adam are applied functionally to those rows.

Stopping: before every update the whole training set is evaluated; a network whose
thresholded outputs (output > 0) match every label stops there ('fit'), the others stop
after `max_steps` updates ('budget'). At most `pool` networks train at once; stopped ones
are replaced from the queue, so slow networks never hold up the rest. Minibatches are realised as per-network weights over the training set
(1/batch on the points of the current batch, 0 elsewhere): the gradient is exactly the
minibatch gradient, and the same forward pass gives the full-set accuracy for stopping.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np
import torch
from tqdm import tqdm

from volume.errors import ConfigError
from volume.nets import ACTIVATIONS, MLP, Architecture
from volume.priors import Prior
from volume.rng import INIT_STREAM, ORDER_STREAM, counter_sample

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "ce")
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
        z = torch.bmm(h, arch.slice(f"W{layer}").view(theta))
        if arch.bias:
            z += arch.slice(f"b{layer}").view(theta).unsqueeze(1)
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


@contextmanager
def single_threaded():
    """One torch and one numba thread inside: the pool's ops last micro- to milliseconds, and
    on a busy machine a second thread's synchronisation costs far more than it saves
    (measured: a small counter-based draw took 7.8 ms with 2 numba threads on 2 loaded cores,
    11 us with 1; 2 torch threads made pool-64 steps 10x slower). Scale out with processes."""
    torch_before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        numba.set_num_threads(numba_before)


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
    with single_threaded(), tqdm(total=n_nets, unit="net", disable=not progress, desc=desc) as bar:
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
                _refresh_order_(order, taken, ids, order_ids, seed, per_epoch, n_train)
            grad = grad_of(_weights(order, taken, per_epoch, batch, n_train))
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
