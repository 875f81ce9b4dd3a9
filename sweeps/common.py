"""Shared by the figure scripts: run (or reuse) hydra sweeps, with any launcher."""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from volume import results
from volume.plots import estimate_columns

ROOT = Path(__file__).resolve().parent.parent
LAUNCHERS = ("basic", "joblib", "local", "slurm", "ray")
# Budgets of the counting figures (fig_llamaizer, fig_depth): quick (tiny, what the tests run),
# default (about 40 min of one core for both figures: the published docs/figures), night (the
# budget aimed at issue 14's precision targets, hours on 2 cores). docs/results.md has the costs.
BUDGETS = ("quick", "default", "night")
ESTIMATE_COLUMNS = ("log_p", "ci_low", "ci_high", "n_evals", "bound", "reliable")
MAX_PNG_BYTES = 300_000
LOG10 = math.log(10)
# fig_depth_budget labels the published depth figure's rows "PUBLISHED: budget"; results_tables keeps them apart
PUBLISHED = "published"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (what the tests run); same as --budget quick")
    p.add_argument("--budget", choices=BUDGETS, default="default",
                   help="counting figures only: quick, default (about 40 min of one core), night (hours)")
    p.add_argument("--publish", type=Path, default=None,
                   help="also write the figure (moderate dpi) and the CSV of its plotted numbers to this folder, "
                        "e.g. docs/figures")
    p.add_argument("--launcher", choices=LAUNCHERS, default="basic",
                   help="hydra launcher for the runs: basic (one after another), joblib (parallel on this "
                        "machine), local (submitit without a cluster), slurm (submitit), ray")
    p.add_argument("--out", type=Path, default=None, help="where runs and the figure go (default figures/NAME)")
    p.add_argument("launcher_overrides", nargs="*", help="extra hydra overrides, e.g. hydra.launcher.n_jobs=2")
    return p


def budget(args: argparse.Namespace) -> str:
    """The budget a figure script runs at: --quick wins over --budget."""
    return "quick" if args.quick else args.budget


def out_dir(args: argparse.Namespace, name: str) -> Path:
    """Where a counting figure's runs and figure go: --out, else figures/NAME/BUDGET (git-ignored;
    one folder per budget, so runs of one budget are never reused for another)."""
    return args.out or ROOT / "figures" / name / budget(args)


def number(value) -> float:
    """A results.json / CSV cell as a float: None (no estimate) becomes NaN."""
    return math.nan if value is None else float(value)


def log10_columns(ests: list[dict | None], x) -> tuple:
    """(x, log10 P, low, high, bound, reliable) of estimates in nats, for volume.plots.plot_estimates."""
    y, low, high, bound, reliable = estimate_columns(ests)
    return np.asarray(x, float), y / LOG10, low / LOG10, high / LOG10, bound, reliable


def interval_text(log_p, low, high) -> str:
    """'log_p [low, high]' (nats, two decimals) of a results.json estimate or a CSV row; a missing end is nan."""
    return f"{number(log_p):.2f} [{number(low):.2f}, {number(high):.2f}]"


def estimate_text(est: dict | None) -> str:
    """An Estimate-like dict as 'log_p [ci_low, ci_high]' (nats), with its bound if it is one."""
    if est is None or est["log_p"] is None:
        return "n/a"
    bound = f" ({est['bound']} bound)" if est.get("bound") else ""
    return interval_text(est["log_p"], *est["ci"]) + bound


def estimate_fields(est: dict | None) -> dict:
    """The ESTIMATE_COLUMNS of an Estimate-like dict (log_p, ci, n_evals, bound, reliable);
    a missing estimate gives empty cells."""
    if est is None:
        return {"log_p": None, "ci_low": None, "ci_high": None, "n_evals": None, "bound": "", "reliable": None}
    return {"log_p": est["log_p"], "ci_low": est["ci"][0], "ci_high": est["ci"][1], "n_evals": est.get("n_evals"),
            "bound": est.get("bound") or "", "reliable": est.get("reliable", True)}


def diagnostic_fields(record: dict | None) -> dict:
    """From a splitting record: the runs' spread against the ideal spread (reliable needs <= 3),
    the P-space mean log mean exp(run log P) (volume.estimators.rare_event), the number of runs."""
    diagnostics = (record or {}).get("diagnostics") or {}
    return {"spread_vs_ideal": diagnostics.get("spread_vs_ideal"), "log_mean_p": diagnostics.get("log_mean_p"),
            "n_runs": len((record or {}).get("run_log_p") or []) or None}


def publish(fig, rows: list[dict], folder: Path, name: str, dpi: int = 72) -> tuple[Path, Path]:
    """Write the published figure folder/NAME.png (moderate dpi, at most MAX_PNG_BYTES) and
    folder/NAME.csv: one row per plotted number, ESTIMATE_COLUMNS first (natural logs; bound
    "", "upper", "lower", "interval" or "target_not_reached"; reliable from the estimator's
    diagnostics), then the columns saying what the row is."""
    folder.mkdir(parents=True, exist_ok=True)
    png, csv = folder / f"{name}.png", folder / f"{name}.csv"
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    if png.stat().st_size > MAX_PNG_BYTES:
        raise RuntimeError(f"{png} is {png.stat().st_size:,} bytes; published figures must be <= {MAX_PNG_BYTES:,}")
    frame = pd.DataFrame(rows)
    ordered = [*ESTIMATE_COLUMNS, *(c for c in frame.columns if c not in ESTIMATE_COLUMNS)]
    results.write_csv(csv, frame.reindex(columns=ordered))
    print(f"published {png} ({png.stat().st_size:,} bytes) and {csv} ({len(frame)} rows)")
    return png, csv


def save_figure(fig, out: Path, name: str, rows: list[dict], publish_to: Path | None, start: float) -> None:
    """The sweep's own figure out/NAME.png, the published copy (`publish`) when asked, and the time taken."""
    figure = out / f"{name}.png"
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    if publish_to:
        publish(fig, rows, publish_to, name)
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")


def launcher_args(launcher: str) -> list[str]:
    return [] if launcher == "basic" else [f"hydra/launcher={launcher}"]


def run_sweeps(sweeps: list[tuple[Path, list[str]]], launcher: str = "basic",
               extra: Sequence[str] = ()) -> list[list[Path]]:
    """Run `python -m volume -m OVERRIDES` into each (sweep_dir, overrides) and return each
    sweep's job directories. resume=true makes jobs that already finished no-ops, so a re-run
    only completes the rest. With the basic launcher the sweeps run one after another; with a
    parallel one they run side by side, so no core idles while one sweep's last job finishes.
    The launcher's n_jobs applies to each sweep: two sweeps at n_jobs=2 run four jobs (pin
    threads=1 then, as `make figures` does). If the figure script itself is stopped, the
    sweeps it started are stopped too (their finished jobs stay; resume=true continues)."""
    env = {**os.environ}
    env.setdefault("WANDB_MODE", "disabled")
    commands = [[sys.executable, "-m", "volume", "-m", "resume=true", "progress=false", *launcher_args(launcher),
                 f"hydra.sweep.dir={sweep_dir}", *overrides, *extra] for sweep_dir, overrides in sweeps]
    procs = []
    try:
        for cmd in commands:
            print("$", " ".join(cmd[1:]), flush=True)
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env))
            if launcher == "basic" and procs[-1].wait():
                break
        # a failed sweep stops the figure only once the others have finished (and saved their jobs)
        codes = [proc.wait() for proc in procs]
    except BaseException:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        raise
    failed = [(code, cmd) for code, cmd in zip(codes, commands) if code]
    for code, cmd in failed:
        print(f"sweep failed (exit {code}): {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    if failed:
        raise subprocess.CalledProcessError(*failed[0])
    return [sorted((p for p in sweep_dir.iterdir() if (p / "results.json").exists()),
                   key=lambda p: int(p.name) if p.name.isdigit() else p.name) for sweep_dir, _ in sweeps]


def run_sweep(sweep_dir: Path, overrides: list[str], launcher: str = "basic",
              extra: Sequence[str] = ()) -> list[Path]:
    """One sweep's job directories (see run_sweeps)."""
    return run_sweeps([(sweep_dir, overrides)], launcher, extra)[0]


def load(job_dir: Path) -> dict:
    return json.loads((job_dir / "results.json").read_text())


def width_sweep_figure(description: str, name: str, quick: list[str],
                       report: Callable[[Path, dict], None] | None = None) -> None:
    """The figure script of a width-sweep experiment that draws its own figure: run (or reuse)
    experiment=NAME, print its per-width rows (and whatever report(job, summary) prints),
    copy NAME.png to the output folder."""
    args = parser(description).parse_args()
    out = args.out or ROOT / "figures" / name
    start = time.perf_counter()
    overrides = [f"experiment={name}", *(quick if args.quick else [])]
    job = run_sweep(out / "runs", overrides, args.launcher, args.launcher_overrides)[0]
    summary = load(job)["summary"]
    for row in summary["widths"]:
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if report is not None:
        report(job, summary)
    figure = out / f"{name}.png"
    shutil.copyfile(job / f"{name}.png", figure)
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")
