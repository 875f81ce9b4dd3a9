"""The one interface of a mechanistic classifier (each listed in circuits.registry).

A classifier decides, for a population theta[B, P] of one architecture on a task, which
class each network is in, from unit truth tables and causal interventions, and keeps the
evidence. The experiments use three faces of it: `label` (with evidence) and `arrays` /
`events` for trained networks (experiment trained_classes: fixed-width per-network arrays
that checkpoint with the training records, then one row per class with its count), and
`class_score` for the prior's volumes (the counting experiments: a continuous score > 0
exactly when a network computes the target and is in the class, which the rare-event
estimators drive).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from volume.estimators.scores import Score
    from volume.nets import Architecture
    from volume.setup import Setup
    from volume.tasks import Task


class Classifier(Protocol):
    name: ClassVar[str]  # its value of experiment.circuits
    labels: ClassVar[tuple[str, ...]]  # the classes `label` decides; "label" arrays are codes into these
    fields: ClassVar[tuple[str, ...]]  # names of the per-network arrays `arrays` returns
    prior_experiment: ClassVar[str]  # the counting experiment that measures P(class | target) under the prior
    same_keys: ClassVar[tuple[str, ...]]  # experiment keys the prior run must share with a trained run

    @classmethod
    def from_setup(cls, setup: Setup) -> Classifier:
        """The classifier for this run, after checking the model and task fit it (ConfigError names the key)."""

    def label(self, arch: Architecture, theta: torch.Tensor, task: Task) -> Any:
        """Every network's label with the evidence behind it (units, interventions)."""

    def arrays(self, result: Any) -> dict[str, np.ndarray]:
        """`label`'s result as fixed-width per-network arrays, one per name in `fields`."""

    def events(self, arrays: dict[str, np.ndarray]) -> pd.DataFrame:
        """One row per class: `class`, `kind` (label, union, h_class, ...) and `count` of networks."""

    def class_score(self, arch: Architecture, task: Task, cls: Any) -> Score:
        """Score theta[B, P] -> [B], > 0 exactly when a network computes the task's target and is in class cls."""


def label_codes(labels: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Label strings per network -> int8 codes into names."""
    return np.array([names.index(x) for x in labels], dtype=np.int8)


def label_events(codes: np.ndarray, names: tuple[str, ...]) -> list[dict]:
    """One event row per label: its name, kind "label" and the number of networks with it."""
    return [{"class": name, "kind": "label", "count": int((codes == i).sum())} for i, name in enumerate(names)]
