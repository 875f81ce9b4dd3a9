"""Results directory: atomic writes, the guard against mixing configs, checkpoints (`Stages`,
every experiment's one way to checkpoint and resume), resume.

Every file is written to a temporary name in the same directory and renamed over the
target, so a killed run leaves the old file or the new one, never half of one.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from volume.errors import ConfigError

RESULTS = "results.json"
CHECKPOINT = "checkpoint.npz"
# Keys that change how a run goes but not what it computes: runs that differ only in these
# give bit-identical results, so they may share (and resume in) one directory.
FLOAT_FORMAT = "%.10g"  # floats in every CSV
NON_IDENTITY_KEYS = ("resume", "batch_size", "logger", "progress", "threads", "checkpoint_seconds")


def atomic_write(path: Path, write: Callable[[io.IOBase], None], binary: bool = False) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda h: json.dump(_json_safe(data), h, indent=2, allow_nan=False))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """frame as CSV, byte for byte what `frame.to_csv(index=False, float_format=FLOAT_FORMAT)`
    writes, but each distinct float formatted once and rows joined directly when no field
    needs quoting: pandas took 2.6 s for the default run's 230k-row functions.csv."""
    columns = [_csv_column(frame[name]) for name in frame.columns]
    if any(c is None for c in columns):
        atomic_write(path, lambda h: frame.to_csv(h, index=False, float_format=FLOAT_FORMAT))
        return
    header = [str(name) for name in frame.columns]
    plain = len(header) > 1 and not any(_needs_quotes(c) for c in [header, *columns])

    def write(handle) -> None:
        if plain:
            handle.write(os.linesep.join(map(",".join, [header, *zip(*columns)])) + os.linesep)
        else:  # the csv module quotes as pandas does (QUOTE_MINIMAL)
            out = csv.writer(handle, lineterminator=os.linesep)
            out.writerow(header)
            out.writerows(zip(*columns))

    atomic_write(path, write)


def _csv_column(column: pd.Series) -> list[str] | None:
    """A column's CSV fields as pandas writes them (missing values as ""), or None for a dtype
    left to pandas."""
    values = column.to_numpy()
    if values.dtype.kind == "f":  # distinct bit patterns (keeps -0.0 apart from 0.0), formatted once
        bits = np.ascontiguousarray(values).view(f"i{values.dtype.itemsize}")
        uniq, inverse = np.unique(bits, return_inverse=True)
        text = ["" if v != v else FLOAT_FORMAT % v for v in uniq.view(values.dtype).tolist()]
        return np.array(text, dtype=object)[inverse.ravel()].tolist()
    if values.dtype.kind in "iub":
        return [str(v) for v in values.tolist()]
    if values.dtype.kind == "O" and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return np.where(pd.isna(values), "", values).tolist()
    return None


def _needs_quotes(fields: list[str]) -> bool:
    text = "".join(fields)
    return any(c in text for c in ',"\r\n')


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda h: np.savez(h, **arrays), binary=True)


def save_figure(path: Path, fig) -> None:
    atomic_write(path, lambda h: fig.savefig(h, format="png", dpi=120, bbox_inches="tight"), binary=True)


def new_figure(*grid: int, figsize: tuple[float, float] = (5, 4)):
    """(fig, ax or axes) on the non-interactive backend, for the experiments' PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*grid, figsize=figsize)


def finish_figure(fig, path: Path, ax=None, xlabel: str = "", ylabel: str = "", title: str = "",
                  title_size: int = 8, legend_size: int | None = None) -> str:
    """Label ax (when given), write the PNG atomically, close the figure; returns its file name."""
    import matplotlib.pyplot as plt

    if ax is not None:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=title_size)
        if legend_size and ax.get_legend_handles_labels()[0]:  # a run that drew nothing labelled has no legend
            ax.legend(fontsize=legend_size)
    save_figure(path, fig)
    plt.close(fig)
    return path.name


def identity(config: dict) -> dict:
    """The part of a resolved config that determines the results."""
    return {k: v for k, v in config.items() if k not in NON_IDENTITY_KEYS}


def check_run_dir(run_dir: Path, config: dict, resume: bool) -> dict | None:
    """Refuse a directory that holds another config's results. Returns the checkpoint's
    state when resuming a run of this config, else None."""
    stored = None
    for name in (RESULTS, CHECKPOINT + ".json"):
        path = run_dir / name
        if path.exists():
            try:
                stored = json.loads(path.read_text())["config"]
            except (ValueError, KeyError, TypeError) as err:
                raise ConfigError(f"hydra.run.dir: {run_dir} holds an unreadable {name} ({err}); "
                                  "choose an empty directory") from err
            break
    if stored is None:
        return None
    if identity(_json_safe(stored)) != identity(_json_safe(config)):
        changed = sorted(k for k in set(identity(stored)) | set(identity(config))
                         if identity(stored).get(k) != identity(config).get(k))
        raise ConfigError(f"hydra.run.dir: {run_dir} already holds results of another config "
                          f"(differs in: {', '.join(changed)}); use an empty directory, or the same "
                          "config with resume=true")
    if not resume:
        return None
    if (run_dir / CHECKPOINT).exists():
        return read_checkpoint(run_dir / CHECKPOINT)
    return {"complete": True} if (run_dir / RESULTS).exists() else None


def read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """Every array of a checkpoint, read in full now, so a corrupt or truncated file stops the
    run here (exit 2, nothing written) instead of half-way."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError(f"resume: {path} is unreadable ({type(err).__name__}: {err}); finished results are "
                          "untouched; delete the checkpoint to start this run over, or run with resume=false") from err


def check_writable(run_dir: Path) -> None:
    """Refuse a run directory that cannot be written, before any work; creates nothing (a
    fresh directory's nearest existing ancestor is what must be writable)."""
    existing = Path(run_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"hydra.run.dir: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"hydra.run.dir: {existing} is not writable (read-only file system or permissions); "
                          "choose a writable directory")


# Test hook: VOLUME_EXIT_AFTER_CHECKPOINT=k ends the process right after its k-th checkpoint,
# with no clean-up at all, as kill -9 would; resume tests use it instead of racing the clock.
EXIT_AFTER_CHECKPOINT = "VOLUME_EXIT_AFTER_CHECKPOINT"
KILLED = 137  # the exit status a shell reports for kill -9
_checkpoints_written = [0]


def write_checkpoint(run_dir: Path, config: dict, state: dict[str, np.ndarray]) -> None:
    """One npz holds the whole state (counts and progress together, so they cannot
    disagree); the JSON beside it only records the config for the guard above."""
    write_json(run_dir / (CHECKPOINT + ".json"), {"config": config})
    write_npz(run_dir / CHECKPOINT, state)
    _checkpoints_written[0] += 1
    if _checkpoints_written[0] == int(os.environ.get(EXIT_AFTER_CHECKPOINT, 0)):
        os._exit(KILLED)


class Stages:
    """A run's checkpoint as named stages, each a dict of arrays (stored as "{stage}__{key}").
    A complete stage is kept as it is; a running stage saves its partial arrays (when it
    completes, and otherwise at most every `every_seconds`) and resumes from them. `state` is
    the checkpoint read when resuming (results.check_run_dir), else None."""

    def __init__(self, run_dir: Path, config: dict, state: dict[str, np.ndarray] | None, every_seconds: float):
        self.run_dir, self.config, self.every = run_dir, config, every_seconds
        self.arrays = {} if state is None else dict(state)
        self.last_save = time.perf_counter()

    def get(self, name: str) -> dict[str, np.ndarray]:
        """The stored arrays of stage `name` (empty when it never saved)."""
        prefix = f"{name}__"
        return {k.removeprefix(prefix): v for k, v in self.arrays.items() if k.startswith(prefix)}

    def done(self, name: str) -> bool:
        return bool(self.get(name).get("_complete", False))

    def due(self) -> bool:
        """Has every_seconds passed since the last save (a running stage's put would save)?"""
        return time.perf_counter() - self.last_save > self.every

    def put(self, name: str, arrays: dict[str, np.ndarray], complete: bool) -> None:
        """Record stage `name`'s arrays; write the checkpoint if complete or due."""
        self.arrays.update({f"{name}__{k}": np.asarray(v) for k, v in arrays.items()})
        self.arrays[f"{name}___complete"] = np.array(complete)
        if complete or self.due():
            write_checkpoint(self.run_dir, self.config, self.arrays)
            self.last_save = time.perf_counter()


def clear_checkpoint(run_dir: Path) -> None:
    for name in (CHECKPOINT, CHECKPOINT + ".json"):
        if (run_dir / name).exists():
            os.unlink(run_dir / name)


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files a killed run left behind (never a result: they were not renamed yet)."""
    for path in run_dir.glob(".*.tmp"):
        path.unlink(missing_ok=True)


def versions() -> dict[str, str]:
    import numba
    import scipy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "pandas": pd.__version__,
            "machine": platform.machine(), "cpu_count": str(os.cpu_count())}
