"""Classifier 2: serial vs parallel parity circuits in residual MLPs, batched over theta[B, P].

A block computes chi_S when chi_S carries more than a fraction tau of the non-constant power
of the block's write (Walsh spectrum over the input cube, power summed over the stream
coordinates). For the parity of the target bits T (|T| = t):
- serial: a chain S_2 < S_3 < ... < S_t = T of nested sets growing by one bit, |S_2| = 2,
  computed in blocks i_2 < i_3 < ... < i_t (for t = 4: pair, triple containing it, full);
- parallel: T in block k and a split of T into two disjoint sets A, B (|A|, |B| >= 2; for
  t = 4 two pairs) computed in blocks i, j < k (i = j allowed);
- single: T in some block k with no intermediate (S in T, 2 <= |S| < t) in any block < k,
  and neither of the above; mixed: serial and parallel; other: none of these.
Each reading scores max over placements of the min over its conditions of (fraction - tau),
so a score is > 0 exactly when its reading holds. The label is then confirmed by mean
ablation: ablating each block of the winning placement must change the network's function;
an evidence block whose ablation changes nothing is a disagreement, and an unconfirmed
reading is labelled other (never forced).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb, factorial
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from circuits.classifier import label_codes, label_events
from circuits.interventions import ablate_blocks
from circuits.units import cube_dim, power_fractions, walsh
from volume.errors import ConfigError
from volume.estimators.scores import Score, target_and_class_score
from volume.nets import ResidualMLP
from volume.setup import Setup, fraction
from volume.tasks import Task, boolean_task

LABELS = ("serial", "parallel", "single", "mixed", "other")
DEFAULT_TAU = 0.4  # > 1/3: one ReLU unit puts at most 1/3 on a pair; < 1/2: two equal parities may share a block


def parity_task(n: int = 4, bits: list[int] | None = None) -> Task:
    """pm1 cube over n bits, target = parity (odd number of ones) of `bits` (1-based; default all)."""
    return boolean_task(n, "pm1", "parity", bits)


def target_set(task: Task) -> int:
    bits = task.info.get("target_vars") or list(range(1, cube_dim(task.n_inputs) + 1))
    return sum(1 << (int(v) - 1) for v in bits)


def _members(mask: int) -> list[int]:
    return [j for j in range(mask.bit_length()) if (mask >> j) & 1]


def chains(T: int) -> list[tuple[int, ...]]:
    """Every chain of nested sets S_2 < ... < S_t = T (bitmasks), t!/2 of them."""
    out = set()
    for order in itertools.permutations(_members(T)):
        sets, acc = [], 0
        for bit in order:
            acc |= 1 << bit
            sets.append(acc)
        out.add(tuple(sets[1:]))
    return sorted(out)


def splits(T: int) -> list[tuple[int, int]]:
    """Unordered splits of T into two disjoint sets of size >= 2."""
    out = []
    for a in range(1, T):
        if a & T == a and bin(a).count("1") >= 2 and bin(T ^ a).count("1") >= 2 and a < T ^ a:
            out.append((a, T ^ a))
    return out


def intermediates(T: int) -> list[int]:
    return [s for s in range(1, T) if s & T == s and 2 <= bin(s).count("1") < bin(T).count("1")]


@dataclass(frozen=True)
class Placements:
    """Explicit placements: sets[p, q] computed in block blocks[p, q] for every condition q."""

    sets: np.ndarray
    blocks: np.ndarray


def serial_placements(T: int, n_blocks: int) -> Placements:
    sets, blocks = [], []
    for chain in chains(T):
        for idx in itertools.combinations(range(n_blocks), len(chain)):
            sets.append(chain)
            blocks.append(idx)
    width = bin(T).count("1") - 1
    return Placements(np.array(sets, np.int64).reshape(-1, width), np.array(blocks, np.int64).reshape(-1, width))


def parallel_placements(T: int, n_blocks: int) -> Placements:
    sets, blocks = [], []
    for a, b in splits(T):
        for k in range(n_blocks):
            for i in range(k):
                for j in range(k):
                    sets.append((a, b, T))
                    blocks.append((i, j, k))
    return Placements(np.array(sets, np.int64).reshape(-1, 3), np.array(blocks, np.int64).reshape(-1, 3))


def block_fractions(arch: ResidualMLP, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B, L, 2^n]: share of each block write's non-constant Walsh power on each chi_S."""
    writes = torch.stack(arch.block_writes(theta, x)[0], 1)  # [B, L, N, d]
    return power_fractions(walsh(writes, dim=2))


def _best(a: torch.Tensor, pl: Placements) -> tuple[torch.Tensor, torch.Tensor]:
    if len(pl.sets) == 0:
        return torch.full((a.shape[0],), -float("inf"), dtype=a.dtype), torch.zeros(a.shape[0], dtype=torch.long)
    vals = a[:, torch.from_numpy(pl.blocks), torch.from_numpy(pl.sets)].amin(-1)  # [B, placements]
    return vals.max(1)


def reading_scores(frac: torch.Tensor, T: int, tau: float = DEFAULT_TAU) -> dict[str, torch.Tensor]:
    """serial, parallel, single scores [B] (> 0 iff the reading holds) and the index of the
    winning serial / parallel placement, from block fractions [B, L, 2^n]."""
    a = frac - tau
    n_blocks = a.shape[1]
    s, s_at = _best(a, serial_placements(T, n_blocks))
    p, p_at = _best(a, parallel_placements(T, n_blocks))
    inter = intermediates(T)
    worst = a[:, :, inter].amax(-1) if inter else torch.full(a.shape[:2], -float("inf"), dtype=a.dtype)
    clear = torch.cat([torch.full_like(worst[:, :1], float("inf")), (-worst).cummin(1).values[:, :-1]], 1)
    g, g_at = torch.minimum(a[:, :, T], clear).max(1)
    return {"serial": s, "parallel": p, "single": g, "serial_at": s_at, "parallel_at": p_at, "single_at": g_at}


def class_scores(frac: torch.Tensor, T: int, tau: float = DEFAULT_TAU) -> dict[str, torch.Tensor]:
    """Scores [B] of the exclusive Walsh classes: > 0 iff the network's Walsh reading is that
    class (ties at exactly 0 have probability zero). For rare-event estimators."""
    r = reading_scores(frac, T, tau)
    s, p, g = r["serial"], r["parallel"], r["single"]
    mn = torch.minimum
    return {"serial": mn(s, -p), "parallel": mn(p, -s), "mixed": mn(s, p), "single": mn(mn(g, -s), -p),
            "other": mn(mn(-s, -p), -g)}


def class_score(arch: ResidualMLP, task: Task, tau: float, name: str) -> Score:
    """Score of "computes the target and its Walsh reading is class `name`": min(target margin /
    its scale, class_scores[name]). One numba kernel (`volume.residual_scores`), equal to
    `torch_class_score`, the reference it is tested against, to float32 rounding."""
    from volume.residual_scores import DepthScorer  # imported here: the kernel reads this module's tables
    return DepthScorer(arch, task, target_set(task), tau, name)


def torch_class_score(arch: ResidualMLP, task: Task, tau: float, name: str) -> Score:
    """class_score through the batched torch forward: one pass gives both the block writes
    (for the Walsh reading) and the output."""
    T, x = target_set(task), task.x.to(torch.float32)

    def outputs_and_class(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        writes, stream = arch.block_writes(theta, x)
        frac = power_fractions(walsh(torch.stack(writes, 1), dim=2))
        return arch.readout(theta, stream)[..., 0], class_scores(frac, T, tau)[name]

    return target_and_class_score(task.target, task.n_inputs, outputs_and_class)


@dataclass
class DepthResult:
    """label: confirmed class per network; walsh_label: the Walsh reading alone; confirmed,
    disagreements (evidence blocks whose ablation left the function unchanged), solves;
    evidence: one row per (network, evidence block) with the set it carries and the ablation."""

    label: np.ndarray
    walsh_label: np.ndarray
    confirmed: np.ndarray
    disagreements: np.ndarray
    solves: np.ndarray
    evidence: pd.DataFrame

    def counts(self, walsh: bool = False) -> dict[str, int]:
        labels = self.walsh_label if walsh else self.label
        return {name: int((labels == name).sum()) for name in LABELS}


def classify_depth(arch: ResidualMLP, theta: torch.Tensor, task: Task, tau: float = DEFAULT_TAU,
                   ablation: str = "mean") -> DepthResult:
    """Label every network of theta[B, P] (see the module doc) with its evidence."""
    if not isinstance(arch, ResidualMLP) or arch.n_out != 1:
        raise ValueError("the depth classifier takes a ResidualMLP with one output")
    if not 0 < tau < 1:
        raise ValueError(f"tau: a fraction in (0, 1), got {tau}")
    T, x = target_set(task), task.x
    with torch.no_grad():
        frac = block_fractions(arch, theta, x)
        r = reading_scores(frac, T, tau)
        out = arch.forward(theta, x)[..., 0] > 0
    s, p, g = (r[k].numpy() > 0 for k in ("serial", "parallel", "single"))
    walsh_label = np.select([s & p, s, p, g], ["mixed", "serial", "parallel", "single"], "other").astype(object)
    solves = (out == torch.from_numpy(task.target)).all(1).numpy()
    rows = []
    for kind, pl in (("serial", serial_placements(T, arch.n_blocks)), ("parallel", parallel_placements(T, arch.n_blocks))):
        nets = np.flatnonzero(walsh_label == kind)
        at = r[f"{kind}_at"].numpy()[nets]
        for q in range(pl.sets.shape[1]):
            rows.append(pd.DataFrame({"network": nets, "kind": kind, "block": pl.blocks[at, q], "set": pl.sets[at, q]}))
    nets = np.flatnonzero(walsh_label == "single")
    rows.append(pd.DataFrame({"network": nets, "kind": "single", "block": r["single_at"].numpy()[nets], "set": T}))
    evidence = pd.concat(rows, ignore_index=True).drop_duplicates(["network", "block"], ignore_index=True)
    evidence["breaks"] = _breaks(arch, theta, x, out, evidence, ablation)
    misses = evidence.loc[~evidence["breaks"], "network"].to_numpy(np.int64)
    disagreements = np.bincount(misses, minlength=theta.shape[0])
    confirmed = disagreements == 0
    label = np.where(confirmed, walsh_label, "other").astype(object)
    return DepthResult(label, walsh_label, confirmed, disagreements, solves, evidence)


def _breaks(arch: ResidualMLP, theta: torch.Tensor, x: torch.Tensor, out: torch.Tensor, evidence: pd.DataFrame,
            ablation: str) -> np.ndarray:
    """Does ablating each evidence row's block change its network's thresholded output?"""
    if evidence.empty:
        return np.zeros(0, bool)
    nets = torch.tensor(evidence["network"].to_numpy(np.int64))
    mask = torch.zeros(len(nets), arch.n_blocks, dtype=torch.bool)
    mask[torch.arange(len(nets)), torch.tensor(evidence["block"].to_numpy(np.int64))] = True
    with torch.no_grad():
        after = ablate_blocks(arch, theta[nets], x, mask, ablation)[..., 0] > 0
    return (after != out[nets]).any(1).numpy()


# ---- the classifier's interface (circuits.classifier, listed in circuits.registry) ----

@dataclass(frozen=True)
class DepthClassifier:
    """Serial / parallel / single / mixed / other at threshold tau: "label" is the Walsh
    reading, "confirmed_label" the reading confirmed by block ablation (else other)."""

    tau: float = DEFAULT_TAU
    name: ClassVar[str] = "depth"
    labels: ClassVar[tuple[str, ...]] = LABELS
    fields: ClassVar[tuple[str, ...]] = ("label", "confirmed_label")
    prior_experiment: ClassVar[str] = "depth"
    same_keys: ClassVar[tuple[str, ...]] = ("tau",)

    @classmethod
    def from_setup(cls, setup: Setup) -> DepthClassifier:
        if not isinstance(setup.arch, ResidualMLP) or setup.arch.n_out != 1:
            raise ConfigError("model: experiment.circuits=depth needs model=resmlp with n_out=1")
        if setup.cfg.task.get("target") != "parity" or bin(target_set(setup.task)).count("1") != 4:
            raise ConfigError("task: experiment.circuits=depth needs task.target=parity of 4 bits")
        return cls(fraction(setup.cfg, "experiment.tau"))

    def label(self, arch: ResidualMLP, theta: torch.Tensor, task: Task) -> DepthResult:
        return classify_depth(arch, theta, task, self.tau)

    def arrays(self, result: DepthResult) -> dict[str, np.ndarray]:
        return {"label": label_codes(result.walsh_label, self.labels),
                "confirmed_label": label_codes(result.label, self.labels)}

    def events(self, arrays: dict[str, np.ndarray]) -> pd.DataFrame:
        """One row per label (the Walsh reading), with count_confirmed (confirmed by ablation)."""
        rows = label_events(arrays["label"], self.labels)
        for row, confirmed in zip(rows, label_events(arrays["confirmed_label"], self.labels)):
            row["count_confirmed"] = confirmed["count"]
        return pd.DataFrame(rows)

    def class_score(self, arch: ResidualMLP, task: Task, cls: str) -> Score:
        return class_score(arch, task, self.tau, cls)


# ---- counting placements ----

def count_placements(costs: list[int], parents: list[list[int]], n_blocks: int, width: int) -> int:
    """By enumeration: assignments of circuit nodes to blocks with every parent in an earlier
    block and at most `width` units used per block (node q needs costs[q] units)."""
    total = 0
    for assign in itertools.product(range(n_blocks), repeat=len(costs)):
        if any(assign[par] >= assign[q] for q, ps in enumerate(parents) for par in ps):
            continue
        used = np.bincount(assign, weights=costs, minlength=n_blocks)
        total += int((used <= width).all())
    return total


XOR_UNITS = 2  # units of one XOR gadget of two +-1 stream values (one ReLU cannot do it)


def chain_graph(t: int = 4) -> tuple[list[int], list[list[int]]]:
    return [XOR_UNITS] * (t - 1), [[]] + [[q - 1] for q in range(1, t - 1)]


def tree_graph() -> tuple[list[int], list[list[int]]]:
    return [XOR_UNITS] * 3, [[], [], [0, 1]]


def chain_placement_formula(n_blocks: int, width: int, t: int = 4) -> int:
    """One specific chain: its t - 1 steps in strictly increasing blocks."""
    return comb(n_blocks, t - 1) if width >= XOR_UNITS else 0


def tree_placement_formula(n_blocks: int, width: int) -> int:
    """One specific 4-bit tree: pairs in blocks i, j < k, i = j only when the block holds both:
    sum_k k(k-1) + [same block fits] sum_k k = L(L-1)(L-2)/3 + [w >= 2 XOR] L(L-1)/2."""
    if width < XOR_UNITS:
        return 0
    same = n_blocks * (n_blocks - 1) // 2 if width >= 2 * XOR_UNITS else 0
    return n_blocks * (n_blocks - 1) * (n_blocks - 2) // 3 + same


def all_chains_formula(n_blocks: int, width: int, t: int = 4) -> int:
    return factorial(t) // 2 * chain_placement_formula(n_blocks, width, t)


def all_trees_formula(n_blocks: int, width: int) -> int:
    return len(splits(0b1111)) * tree_placement_formula(n_blocks, width)
