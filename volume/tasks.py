"""Tasks: a finite input set X[N, n] and an optional target labelling.

Boolean cube: input i has x_j = 1 when bit j-1 of i is set (x_1 is bit 0), else 0
(encoding '01') or -1 (encoding 'pm1'). Targets are boolean vectors over the N inputs,
in the same order as function keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from volume.errors import ConfigError

ENCODINGS = ("01", "pm1")
TARGETS = ("constant", "dictator", "parity", "majority", "and", "or", "andor")
MAX_N = 16


@dataclass
class Task:
    """An input set and an optional target. x: float32 [N, n]; target: bool [N] or None."""

    name: str
    x: torch.Tensor
    target: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_inputs(self) -> int:
        return self.x.shape[0]

    @property
    def n_vars(self) -> int:
        return self.x.shape[1]


def cube_bits(n: int) -> np.ndarray:
    """bits[i, j] = bit j of i, as bool [2^n, n]."""
    idx = np.arange(2**n, dtype=np.int64)
    return ((idx[:, None] >> np.arange(n)) & 1).astype(bool)


def cube_inputs(n: int, encoding: str) -> torch.Tensor:
    if encoding not in ENCODINGS:
        raise ConfigError(f"task.encoding: unknown {encoding!r}; allowed: {list(ENCODINGS)}")
    bits = torch.from_numpy(cube_bits(n)).to(torch.float32)
    return bits if encoding == "01" else 2 * bits - 1


def named_function(name: str, bits: np.ndarray) -> np.ndarray:
    """A named Boolean function of the columns of bits[N, k], as bool [N]."""
    k = bits.shape[1]
    ones = bits.sum(1)
    if name == "constant":
        return np.ones(bits.shape[0], dtype=bool)
    if name == "dictator":
        return bits[:, 0].copy()
    if name == "parity":
        return ones % 2 == 1
    if name == "majority":
        return 2 * ones > k
    if name == "and":
        return bits.all(1)
    if name == "or":
        return bits.any(1)
    if name == "andor":
        if k < 4:
            raise ConfigError(f"task.target: 'andor' = (x1 and x2) or (x3 and x4) needs 4 target variables, got {k}")
        return (bits[:, 0] & bits[:, 1]) | (bits[:, 2] & bits[:, 3])
    raise ConfigError(f"task.target: unknown {name!r}; allowed: {list(TARGETS)} or a hex key")


def hex_digits(n_inputs: int) -> int:
    """Length of a key over n_inputs inputs, in hex digits."""
    return max(1, -(-n_inputs // 4))


def key_to_bits(key: str, n_inputs: int, name: str = "task.target") -> np.ndarray:
    """bool [n_inputs] of a lowercase or uppercase hex key; bit i is input i."""
    want = hex_digits(n_inputs)
    text = key.lower().removeprefix("0x")
    if len(text) != want or any(ch not in "0123456789abcdef" for ch in text):
        raise ConfigError(f"{name}: a hex key over {n_inputs} inputs has {want} hex digits, got {key!r} "
                          f"({len(text)} digits)")
    value = int(text, 16)
    if value >> n_inputs:
        raise ConfigError(f"{name}: key {key!r} sets bits beyond the {n_inputs} inputs")
    return np.array([(value >> i) & 1 for i in range(n_inputs)], dtype=bool)


def target_on_cube(target, n: int, target_vars: list[int] | None) -> np.ndarray:
    """The target over the whole cube; it depends on the bits in target_vars (1-based) only."""
    vars_ = list(range(1, n + 1)) if target_vars is None else [int(v) for v in target_vars]
    if not vars_ or len(set(vars_)) != len(vars_) or any(v < 1 or v > n for v in vars_):
        raise ConfigError(f"task.target_vars: distinct variables in 1..{n}, got {target_vars}")
    bits = cube_bits(n)[:, [v - 1 for v in vars_]]
    name = str(target)
    if name in TARGETS:
        return named_function(name, bits)
    table = key_to_bits(name, 2 ** len(vars_))
    index = (bits.astype(np.int64) << np.arange(len(vars_))).sum(1)
    return table[index]


def boolean_task(n: int, encoding: str = "01", target=None, target_vars: list[int] | None = None) -> Task:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
        raise ConfigError(f"task.n: an integer in 1..{MAX_N}, got {n!r}")
    x = cube_inputs(n, encoding)
    y = None if target is None else target_on_cube(target, n, target_vars)
    return Task(f"boolean{n}", x, y, {"n": n, "encoding": encoding, "target": target, "target_vars": target_vars})


def digits_task(preprocess: str = "binary", label_rule: str = "lt5", encoding: str = "01") -> Task:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), in stored order."""
    from sklearn.datasets import load_digits

    if preprocess not in ("binary", "scaled"):
        raise ConfigError(f"task.preprocess: unknown {preprocess!r}; allowed: ['binary', 'scaled']")
    rules = {"lt5": lambda d: d < 5, "even": lambda d: d % 2 == 0}
    if label_rule not in rules:
        raise ConfigError(f"task.label_rule: unknown {label_rule!r}; allowed: {sorted(rules)}")
    if encoding not in ENCODINGS:
        raise ConfigError(f"task.encoding: unknown {encoding!r}; allowed: {list(ENCODINGS)}")
    data = load_digits()
    pixels = data.data.astype(np.float32)
    if preprocess == "binary":
        x = (pixels > 8).astype(np.float32)
        if encoding == "pm1":
            x = 2 * x - 1
    else:
        x = pixels / 16.0
    y = rules[label_rule](data.target)
    return Task("digits", torch.from_numpy(x), y, {"preprocess": preprocess, "label_rule": label_rule})


def build_task(task_cfg) -> Task:
    name = task_cfg.get("name", "boolean")
    if name == "boolean":
        target = task_cfg.get("target")
        target_vars = task_cfg.get("target_vars")
        return boolean_task(task_cfg.get("n"), task_cfg.get("encoding", "01"), target,
                            None if target_vars is None else list(target_vars))
    if name == "digits":
        return digits_task(task_cfg.get("preprocess", "binary"), task_cfg.get("label_rule", "lt5"),
                           task_cfg.get("encoding", "01"))
    raise ConfigError(f"task.name: unknown {name!r}; allowed: ['boolean', 'digits']")
