"""Every mechanistic classifier, by its name (experiment.circuits): each implements
circuits.classifier.Classifier. A new classifier adds its class here, nowhere else."""
from __future__ import annotations

from circuits.classifier import Classifier
from circuits.depth import DepthClassifier
from circuits.llama import LlamaClassifier
from volume.setup import Setup, one_of

CLASSIFIERS: dict[str, type[Classifier]] = {c.name: c for c in (LlamaClassifier, DepthClassifier)}


def classifier(setup: Setup) -> Classifier:
    """The classifier experiment.circuits names, after checking the model and task fit it."""
    return CLASSIFIERS[one_of(setup.cfg, "experiment.circuits", tuple(CLASSIFIERS))].from_setup(setup)
