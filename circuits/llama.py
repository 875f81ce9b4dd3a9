"""Classifier 1: direct vs inner llamaizer, batched over a population theta[B, P] of MLPs.

Task: pm1 cube over n = n_target + m bits; the target depends on the first bits only (the
task's target_vars), the other m bits are distractors. Hidden unit u carries a llama h
when its thresholded truth table (z > 0) is a non-constant function h of the distractor
bits only. The llama is deep when h is not linearly separable (it took a second layer),
shallow when it is; inert when ablating u (zero by default) leaves the network's function
unchanged, used when it changes it. Labels, most specific first:
deep_used > deep_inert > shallow_used > shallow_inert > direct, where "used" means some llama
of the label's depth is used. Controls count units whose table is a non-constant function of
the target bits only (target_only) or depends on both kinds of bits (mixed).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from circuits import boolean
from circuits.boolean import canonical, is_threshold
from circuits.classifier import label_codes, label_events
from circuits.interventions import ablate_one_unit
from circuits.units import cube_dim, dependence_masks, function_margins, subset_index, table_keys
from volume import fused
from volume.errors import ConfigError
from volume.estimators.scores import Score, target_and_class_score
from volume.nets import ACTIVATIONS, MLP
from volume.setup import Setup
from volume.tasks import Task, boolean_task
from volume.unit_scores import UnitScorer

LABELS = ("direct", "shallow_inert", "shallow_used", "deep_inert", "deep_used")


def llama_task(m: int = 3, target: str = "andor", n_target: int = 4) -> Task:
    """The llamaizer task: pm1 cube over n_target + m bits, target on the first n_target."""
    if not isinstance(m, int) or not 1 <= m <= 6:
        raise ValueError(f"m: the number of distractor bits, an integer in 1..6, got {m!r}")
    return boolean_task(n_target + m, "pm1", target, list(range(1, n_target + 1)))


@dataclass(frozen=True)
class Split:
    n: int
    target: list[int]  # 0-based target bits
    distractors: list[int]  # 0-based distractor bits

    @property
    def target_mask(self) -> int:
        return sum(1 << v for v in self.target)

    @property
    def distractor_mask(self) -> int:
        return sum(1 << v for v in self.distractors)


def split_of(task: Task) -> Split:
    """Target and distractor bits of a Boolean-cube task with target_vars."""
    n = cube_dim(task.n_inputs)
    tv = task.info.get("target_vars")
    if task.target is None or tv is None:
        raise ValueError("the llama classifier needs a Boolean task with a target and target_vars")
    target = sorted(int(v) - 1 for v in tv)
    distractors = [v for v in range(n) if v not in target]
    if not distractors or len(distractors) > 6:
        raise ValueError(f"the llama classifier needs 1..6 distractor bits, got {len(distractors)}")
    return Split(n, target, distractors)


@dataclass
class LlamaResult:
    """Per network: label, solves (computes the task's target), unit counts; llamas: one row
    per llama unit (network, layer, unit, h, h_class, depth, used, margin)."""

    label: np.ndarray
    solves: np.ndarray
    n_shallow: np.ndarray
    n_deep: np.ndarray
    n_target_only: np.ndarray
    n_mixed: np.ndarray
    llamas: pd.DataFrame

    def counts(self) -> dict[str, int]:
        return {name: int((self.label == name).sum()) for name in LABELS}


def _unit_layer(arch: MLP, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.cumsum([0, *arch.widths[1:-1]])
    layer = np.searchsorted(edges, flat, side="right") - 1
    return layer, flat - edges[layer]


def scan(arch: MLP, theta: torch.Tensor, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The hot path: dependence masks of every hidden unit [B, U] (numpy) and the thresholded output
    [B, N]. Runs in the transposed layout [B, width, N] so that each unit's truth table is
    contiguous, and keeps no activations beyond the current layer."""
    h = x.to(theta.dtype).t().expand(theta.shape[0], *x.shape[::-1])
    masks = []
    for layer in range(arch.n_layers):
        # MLP.affine in the transposed layout (units along dim 1), deliberately: unit tables stay contiguous
        w = arch.slice(f"W{layer}").view(theta).transpose(1, 2)
        z = (torch.baddbmm(arch.slice(f"b{layer}").view(theta).unsqueeze(2), w, h) if arch.bias
             else torch.bmm(w, h))
        if layer < arch.n_layers - 1:
            masks.append(dependence_masks(z > 0, n))
            h = z.relu_() if arch.activation == "relu" else ACTIVATIONS[arch.activation](z)
    return np.concatenate(masks, 1), z[:, 0] > 0


def _llama_rows(arch: MLP, theta: torch.Tensor, x: torch.Tensor, split: Split, b: np.ndarray, u: np.ndarray,
                ablation: str) -> pd.DataFrame:
    """Evidence for the llama units (b, u) of theta's networks: h, its class, depth, margin,
    and whether ablating the unit changes the network's thresholded output."""
    nets, inv = np.unique(b, return_inverse=True)
    pre = [p[torch.from_numpy(inv)] for p in arch.preactivations(theta[torch.from_numpy(nets)], x)]
    th = theta[torch.from_numpy(b)]
    layer, unit = _unit_layer(arch, u)
    rows = torch.arange(len(b))
    z = torch.cat(pre[:-1], 2)[rows, :, torch.from_numpy(u)]  # [E, N]
    h = table_keys((z > 0).unsqueeze(2), split.n, split.distractors)[:, 0]
    cube = subset_index(split.n, split.distractors).astype(np.uint64)
    sign = torch.from_numpy(np.where((h[:, None] >> cube) & np.uint64(1), 1.0, -1.0)).to(z.dtype)
    used = np.zeros(len(b), dtype=bool)
    for ell in np.unique(layer):
        sel = torch.from_numpy(np.flatnonzero(layer == ell))
        clean, ablated = ablate_one_unit(arch, th[sel], [p[sel] for p in pre], int(ell),
                                         torch.from_numpy(unit)[sel], ablation)
        used[sel.numpy()] = ((clean[..., 0] > 0) != (ablated[..., 0] > 0)).any(1).numpy()
    m = len(split.distractors)
    return pd.DataFrame({
        "network": b, "layer": layer, "unit": unit, "h": h, "h_class": canonical(h, m),
        "depth": np.where(is_threshold(h, m), "shallow", "deep"), "used": used,
        "margin": (sign * z).amin(1).numpy()})


COLUMNS = ("network", "layer", "unit", "h", "h_class", "depth", "used", "margin")


def classify_llamas(arch: MLP, theta: torch.Tensor, task: Task, ablation: str = "zero",
                    chunk: int = 1024) -> LlamaResult:
    """Label every network of theta[B, P] (see the module doc) with its evidence."""
    if not isinstance(arch, MLP) or arch.n_out != 1:
        raise ValueError("the llama classifier takes an MLP with one output")
    if ablation not in ("zero", "mean"):
        raise ValueError(f"ablation: unknown {ablation!r}; allowed: ['zero', 'mean']")
    split = split_of(task)
    x, target = task.x, torch.from_numpy(task.target)
    tm, dm = split.target_mask, split.distractor_mask
    n_b = theta.shape[0]
    solves = np.zeros(n_b, bool)
    n_llama, n_target_only, n_mixed = (np.zeros(n_b, np.int64) for _ in range(3))
    rows = []
    with torch.no_grad():
        for start in range(0, n_b, chunk):
            th = theta[start : start + chunk]
            masks, out = scan(arch, th, x, split.n)
            stop = start + th.shape[0]
            llama = (masks != 0) & (masks & tm == 0)
            solves[start:stop] = (out == target).all(1).numpy()
            n_llama[start:stop] = llama.sum(1)
            n_target_only[start:stop] = ((masks != 0) & (masks & dm == 0)).sum(1)
            n_mixed[start:stop] = ((masks & tm != 0) & (masks & dm != 0)).sum(1)
            b, u = np.nonzero(llama)
            if len(b):
                part = _llama_rows(arch, th, x, split, b, u, ablation)
                part["network"] += start
                rows.append(part)
    llamas = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({c: [] for c in COLUMNS})
    label = np.full(n_b, "direct", dtype=object)
    n_deep = np.zeros(n_b, np.int64)
    for depth in ("shallow", "deep"):  # deep overrides shallow
        sel = llamas[llamas["depth"] == depth]
        nets = sel["network"].to_numpy(np.int64)
        label[nets] = f"{depth}_inert"
        label[sel.loc[sel["used"].astype(bool), "network"].to_numpy(np.int64)] = f"{depth}_used"
        if depth == "deep":
            np.add.at(n_deep, nets, 1)
    return LlamaResult(label, solves, n_llama - n_deep, n_deep, n_target_only, n_mixed, llamas)


# ---- continuous scores for rare-event estimators: > 0 iff the condition holds ----

def target_margin(arch: MLP, theta: torch.Tensor, task: Task) -> torch.Tensor:
    """[B]: min over inputs of s_f(x) out(x); > 0 iff the network computes the target."""
    sign = torch.from_numpy(np.where(task.target, 1.0, -1.0)).to(theta.dtype)
    return (arch.forward(theta, task.x)[..., 0] * sign).amin(1)


def llama_margins(arch: MLP, theta: torch.Tensor, task: Task, h_keys, variables: str = "distractors",
                  layers: list[int] | None = None) -> torch.Tensor:
    """[B, U, G]: margin of each hidden unit (layers concatenated, or only `layers`) against
    each function key over the `variables` ("distractors", "target", or "all" for the mixed
    control). Positive iff the unit's truth table is exactly that function on the cube."""
    split = split_of(task)
    chosen = {"distractors": split.distractors, "target": split.target, "all": list(range(split.n))}
    if variables not in chosen:
        raise ValueError(f"variables: unknown {variables!r}; allowed: {sorted(chosen)}")
    pre = arch.preactivations(theta, task.x)[:-1]
    z = torch.cat([pre[i] for i in (layers if layers is not None else range(len(pre)))], 2)
    return function_margins(z, split.n, chosen[variables], np.asarray(h_keys, np.uint64))


def llama_score(arch: MLP, theta: torch.Tensor, task: Task, h_keys, layers: list[int] | None = None,
                per_key: bool = False) -> torch.Tensor:
    """Score of "some hidden unit carries one of the llamas h_keys": the max over units (and
    keys, unless per_key, which gives [B, G]) of the unit margin; [B]. Cost grows with len(h_keys)."""
    margins = llama_margins(arch, theta, task, h_keys, "distractors", layers).amax(1)
    return margins if per_key else margins.amax(1)


def unit_class_score(arch: MLP, task: Task, variables: list[int], keys) -> Score:
    """Score of "computes the target and some hidden unit carries one of the function keys of
    `variables`": min(target margin, max over hidden units and keys of the unit's margin
    against the key), each margin divided by its own max |value| over the cube (scale-free,
    so splitting levels cannot creep to 0 by shrinking units; the unit part's positive set is
    that of llama_score). One numba kernel (`volume.unit_scores`), equal bit for bit to
    `torch_unit_class_score`, the reference it is tested against."""
    return UnitScorer(arch, task, variables, keys)


def unit_carry_margins(hidden: list[torch.Tensor], n: int, variables: list[int], keys: np.ndarray) -> torch.Tensor:
    """[B, U]: each unit's scaled margin for carrying its best key among `keys`, over the units
    of the given hidden layers' pre-activations (each [B, N, width]), side by side."""
    return torch.cat([function_margins(z, n, variables, keys, scaled=True).amax(2) for z in hidden], 1)


def torch_unit_class_score(arch: MLP, task: Task, variables: list[int], keys) -> Score:
    """unit_class_score through torch reductions over the fused forward's pre-activations."""
    keys = np.asarray(keys, np.uint64)
    x, n = task.x.to(torch.float32), task.n_vars

    def outputs_and_class(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = fused.mlp_preactivations(arch, theta, x)
        return pre[-1][..., 0], unit_carry_margins(pre[:-1], n, variables, keys).amax(1)

    return target_and_class_score(task.target, task.n_inputs, outputs_and_class)


# ---- the classifier's interface (circuits.classifier, listed in circuits.registry) ----

def distractor_bits(setup: Setup, who: str, max_m: int) -> int:
    """m, the number of distractor bits, after checking that the model (an MLP with one
    output and >= 1 hidden layer) and the task (pm1 cube, target, target_vars) suit a llama
    experiment; `who` names the experiment in the ConfigError."""
    cfg, task = setup.cfg, setup.task
    if not isinstance(setup.arch, MLP) or setup.arch.n_out != 1 or setup.arch.n_layers < 2:
        raise ConfigError(f"model: {who} needs model=mlp with >= 1 hidden layer and n_out=1")
    if cfg.task.get("name") != "boolean" or cfg.task.get("encoding") != "pm1" or task.target is None \
            or not cfg.task.get("target_vars"):
        raise ConfigError(f"task: {who} needs task.name=boolean, task.encoding=pm1, a task.target "
                          "and task.target_vars (the other bits are the distractors)")
    m = task.n_vars - len(cfg.task.target_vars)
    if not 1 <= m <= max_m:
        raise ConfigError(f"task.n: the number of distractor bits m = task.n - len(task.target_vars) must be in "
                          f"1..{max_m} for {who}, got {m}")
    return m


@dataclass(frozen=True)
class LlamaClassifier:
    """Direct vs llamaizer labels, plus which symmetry class of llama h (permutation/negation
    of the m distractor bits) each network carries: class_reps are the canonical keys of every
    non-constant h, class_sizes their members. Class scores are indexed by a llama key h."""

    m: int
    name: ClassVar[str] = "llama"
    labels: ClassVar[tuple[str, ...]] = LABELS
    fields: ClassVar[tuple[str, ...]] = ("label", "n_shallow", "n_deep", "carried")
    prior_experiment: ClassVar[str] = "llamaizer"
    same_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_setup(cls, setup: Setup) -> LlamaClassifier:
        m = distractor_bits(setup, "experiment.circuits=llama", 4)  # the class table is built for m <= 4
        if setup.arch.activation == "sign":
            raise ConfigError("model.activation: 'sign' has zero gradient almost everywhere; train with relu, tanh "
                              "or identity")
        return cls(m)

    @cached_property
    def _classes(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.arange(1, boolean.n_functions(self.m) - 1)  # every non-constant h
        reps, sizes = np.unique(boolean.class_table(self.m)[keys], return_counts=True)
        return reps.astype(np.uint64), sizes

    @property
    def class_reps(self) -> np.ndarray:
        return self._classes[0]

    @property
    def class_sizes(self) -> np.ndarray:
        return self._classes[1]

    def label(self, arch: MLP, theta: torch.Tensor, task: Task) -> LlamaResult:
        return classify_llamas(arch, theta, task)

    def arrays(self, result: LlamaResult) -> dict[str, np.ndarray]:
        carried = np.zeros((len(result.label), len(self.class_reps)), bool)
        rows = result.llamas
        if len(rows):
            cls = np.searchsorted(self.class_reps, canonical(rows["h"].to_numpy(np.uint64), self.m))
            carried[rows["network"].to_numpy(np.int64), cls] = True
        return {"label": label_codes(result.label, self.labels), "n_shallow": result.n_shallow,
                "n_deep": result.n_deep, "carried": carried}

    def events(self, arrays: dict[str, np.ndarray]) -> pd.DataFrame:
        """Labels, any_deep / any_shallow (unions) and one h_class row per symmetry class."""
        rows = label_events(arrays["label"], self.labels)
        rows += [{"class": "any_deep", "kind": "union", "count": int((arrays["n_deep"] > 0).sum())},
                 {"class": "any_shallow", "kind": "union", "count": int((arrays["n_shallow"] > 0).sum())}]
        deep = ~is_threshold(self.class_reps, self.m)
        for c, rep in enumerate(self.class_reps):
            rows.append({"class": f"{'deep' if deep[c] else 'shallow'}_{int(rep):x}", "kind": "h_class",
                         "class_size": int(self.class_sizes[c]), "count": int(arrays["carried"][:, c].sum())})
        return pd.DataFrame(rows)

    def class_score(self, arch: MLP, task: Task, cls: int) -> Score:
        """llamaizer(h = cls): some hidden unit's truth table is exactly h of the distractors."""
        return unit_class_score(arch, task, split_of(task).distractors, [cls])
