"""Plots of estimates (points that may be bounds, unreliable ones ringed) and reading and
writing the class tables (classes.csv) the figures are drawn from."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from volume import results

UNRELIABLE_LABEL = "unreliable (runs disagree or never arrived)"


def estimate_columns(ests: list[dict | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[bool]]:
    """(log_p, ci_low, ci_high, bound, reliable) for plot_estimates from Estimate-like dicts
    (log_p, ci, bound, reliable); None values and missing dicts become NaN (not drawn). A
    bound is drawn at its conservative end (an upper bound at its interval's top, a lower
    one at its bottom)."""
    ests = [e or {"log_p": None, "ci": [None, None], "bound": None} for e in ests]
    table = np.array([[math.nan if v is None else v for v in (e["log_p"], *e["ci"])] for e in ests], float)
    table = table.reshape(-1, 3)
    for row, e in zip(table, ests):
        end = {"upper": 2, "lower": 1}.get(e["bound"])
        if end is not None and np.isfinite(row[end]):
            row[0] = row[end]
    return table[:, 0], table[:, 1], table[:, 2], [e["bound"] or "" for e in ests], [e.get("reliable", True) for e in ests]


def as_bits(log_p, ci_low, ci_high, bound) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Constraint bits -log2 P with their interval, and what each point is: an upper bound on
    P is a lower bound on the bits."""
    bits = lambda v: -np.asarray(v, float) / math.log(2)  # noqa: E731
    flip = {"upper": "lower", "lower": "upper"}
    return bits(log_p), bits(ci_high), bits(ci_low), [flip.get(b, "") if isinstance(b, str) else "" for b in bound]


def plot_estimates(ax, x, y, low, high, bound, reliable=None, color=None, marker: str = "o",
                   label: str | None = None, line: bool = True, ms: float = 5) -> None:
    """Draw points that may be estimates or bounds, never one like the other: estimates as
    filled markers with their intervals (joined by a line when `line`); bounds ('upper' /
    'lower': the plotted value is at most / at least y) as open markers with an arrow
    pointing where the value may lie, no interval, never joined. Points whose diagnostics
    failed (`reliable` False) get a red ring. NaN points are skipped."""
    x, y, low, high = (np.asarray(v, float) for v in (x, y, low, high))
    if reliable is not None:
        doubtful = ~np.asarray(reliable, bool) & np.isfinite(y)
        if doubtful.any():
            ax.plot(x[doubtful], y[doubtful], "o", ls="none", mfc="none", mec="red", ms=ms + 7, mew=1.2,
                    label=UNRELIABLE_LABEL if UNRELIABLE_LABEL not in ax.get_legend_handles_labels()[1] else None)
    bound = np.array([b if b in ("upper", "lower") else "" for b in bound])
    est = (bound == "") & np.isfinite(y)
    if est.any():
        err = np.nan_to_num(np.array([y[est] - low[est], high[est] - y[est]]), nan=0.0, posinf=0.0, neginf=0.0)
        bars = ax.errorbar(x[est], y[est], yerr=np.clip(err, 0, None), fmt=marker + ("-" if line else ""),
                           color=color, ms=ms, capsize=2, label=label)
        color, label = bars.lines[0].get_color(), None
    for kind, direction in (("upper", -1), ("lower", 1)):
        sel = (bound == kind) & np.isfinite(y)
        if not sel.any():
            continue
        dots = ax.plot(x[sel], y[sel], marker, ls="none", color=color, mfc="none", ms=ms + 2,
                       label=None if label is None else f"{label} ({kind} bounds)")
        color, label = dots[0].get_color(), None
        for xi, yi in zip(x[sel], y[sel]):
            ax.annotate("", (xi, yi), xytext=(0, 18 * direction), textcoords="offset points",
                        arrowprops={"arrowstyle": "<-", "color": color, "lw": 1})


def write_classes(run_dir: Path, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    results.write_csv(run_dir / "classes.csv", frame)
    return frame


def read_classes(run_dir: Path) -> pd.DataFrame:
    """A run's classes.csv as written: `h` stays text (hex keys) and `bound` is "", "upper",
    ... (an empty cell would otherwise read as NaN)."""
    frame = pd.read_csv(run_dir / "classes.csv", dtype={"h": str, "bound": str})
    frame["bound"] = frame["bound"].fillna("")
    return frame
