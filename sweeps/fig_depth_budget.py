"""Figure: does the depth figure's parallel/serial ratio hold at a larger splitting budget?

Every number of the published depth figure (sweeps/fig_depth.py, default budget) is flagged:
its runs spread 3-11x what independent samples give, and the target's estimate rises with the
budget (docs/estimators.md, "Depth's target"), so trapped runs pull the joints low. A log
ratio is robust to that only if both joints are pulled alike. This figure re-measures log
P(parity), the serial and parallel joints and their log ratio at L = 3..8 (tau = 0.4) and at
tau = 0.3, 0.5 (L = 4: the depth figure's tau panel) with 4x the chains and unit_only moves
(LARGE: 1,000 chains x 12 runs x 100 moves) and draws each next to the published value (read
from docs/figures/depth.csv, or --published-csv): (a) the log ratio against L with the two
counting predictions; (b) log P(target) and the joints against L; (c) the log ratio against
tau. --budget default and night run LARGE and compare with depth.csv made at that budget;
--quick: tiny budget at L = 3 and at tau = 0.5 (L = 4) (bounds likely), compared with the
default; --publish DIR writes depth_budget.png and depth_budget.csv there (run it after
fig_depth.py: `make figures` does)."""
from __future__ import annotations

import argparse
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from common import (PUBLISHED, ROOT, budget, interval_text, number, out_dir, parser, run_sweeps,  # noqa: E402
                    save_figure)
from fig_depth import BUDGET, TAU_L, TAUS, read_runs, table  # noqa: E402
from volume.plots import plot_estimates  # noqa: E402

LARGE = {"quick": ["estimator.n_particles=30", "estimator.n_runs=3", "estimator.n_moves=2",
                   "estimator.moves=unit_only", "estimator.max_levels=30"],
         "large": ["estimator.n_particles=1000", "estimator.n_runs=12", "estimator.n_moves=100",
                   "estimator.moves=unit_only", "estimator.max_evals=400000000"]}
SERIES = {"target": "k", "serial_joint": "C0", "parallel_joint": "C1"}  # panel (b), with their colours
RATIO = "ratio_parallel_serial"
TAU = 0.4


def label(overrides: list[str]) -> str:
    """'CHAINS x RUNS x MOVES KIND' of a budget's overrides (the kind from the depth config if not set)."""
    given = dict(o.removeprefix("estimator.").split("=") for o in overrides)
    moves = given.get("moves") or OmegaConf.load(ROOT / "conf" / "experiment" / "depth.yaml").estimator.moves
    return f"{given['n_particles']} x {given['n_runs']} x {given['n_moves']} {moves}"


def in_figure(L: int, tau: float, blocks: list[int], taus: tuple[float, ...]) -> bool:
    """Whether a row at (L, tau) is drawn: the L sweep at TAU, or the tau panel at TAU_L. Old jobs
    of an earlier, wider --blocks stay in the sweep folder; this keeps them out."""
    return (L in blocks and tau == TAU) or (L == TAU_L and tau in taus)


def published_rows(csv, blocks: list[int], taus: tuple[float, ...], budget_name: str = "default") -> list[dict]:
    """The published depth figure's rows of the compared quantities that are in_figure, made at
    fig_depth's budget BUDGET_NAME (`make figures` runs both at one budget)."""
    frame = pd.read_csv(csv, dtype={"bound": str}).fillna({"bound": ""})
    drawn = [in_figure(L, tau, blocks, taus) for L, tau in zip(frame["L"], frame["tau"])]
    keep = frame["series"].isin([*SERIES, RATIO]) & pd.Series(drawn, index=frame.index)
    return frame[keep].assign(budget=f"{PUBLISHED}: " + label(BUDGET[budget_name])).to_dict("records")


def spread(row: dict) -> str:
    """'; runs spread Nx the ideal' for a splitting estimate (a ratio has no spread of its own)."""
    value = number(row.get("spread_vs_ideal"))
    return "" if math.isnan(value) else f"; runs spread {value:.1f}x the ideal"


def block_counts(text: str) -> list[int]:
    """--blocks: comma-separated L >= 1, checked before any run starts."""
    try:
        blocks = [int(b) for b in text.split(",")]
    except ValueError:
        blocks = []
    if not blocks or min(blocks) < 1:
        raise argparse.ArgumentTypeError(f"comma-separated integers >= 1 (e.g. 3,4,5,6), got {text!r}")
    return blocks


def draw(ax, rows: list[dict], series: str, x: str, x_shift: float, color: str, marker: str, name: str) -> None:
    """One budget's SERIES against x ("L" or "tau"), shifted sideways so budgets do not overlap."""
    part = pd.DataFrame([r for r in rows if r["series"] == series]).sort_values(x)
    if len(part):
        plot_estimates(ax, part[x] + x_shift, part["log_p"], part["ci_low"], part["ci_high"], part["bound"],
                       part["reliable"], color=color, marker=marker, label=name, line=False)


def predictions(ax, ratios: pd.DataFrame, x: str) -> None:
    """The two placement-count nulls at each x of the ratio rows, and the no-preference line."""
    for key, style, what in (("predicted_one", "--", "one tree / one chain"), ("predicted_all", ":", "all / all")):
        ax.plot(ratios[x], ratios[key], ls=style, marker="_", ms=25, color="gray", label=f"counting: {what}")
    ax.axhline(0, color="k", lw=0.5)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--blocks", type=block_counts, default=[3, 4, 5, 6, 7, 8],
                   help="L values at tau = 0.4, comma-separated (default 3,4,5,6,7,8)")
    p.add_argument("--published-csv", default=ROOT / "docs" / "figures" / "depth.csv",
                   help="the published depth figure's CSV to compare with")
    args = p.parse_args()
    quick = budget(args) == "quick"
    blocks, taus = ([3], (0.5,)) if quick else (args.blocks, TAUS)
    large = LARGE["quick" if quick else "large"]
    out = out_dir(args, "depth_budget")
    start = time.perf_counter()
    base = ["experiment=depth", "experiment.classes=[serial,parallel]", *large]
    sweeps = [(out / "runs", [*base, f"experiment.tau={TAU}", "model.n_blocks=" + ",".join(map(str, blocks))]),
              (out / "runs_tau", [*base, f"model.n_blocks={TAU_L}", "experiment.tau=" + ",".join(map(str, taus))])]
    jobs = [job for sweep in run_sweeps(sweeps, args.launcher, args.launcher_overrides) for job in sweep]
    measured = [r for r in table(read_runs(jobs))
                if r["series"] in (*SERIES, RATIO) and in_figure(r["L"], r["tau"], blocks, taus)]
    rows = published_rows(args.published_csv, blocks, taus, "default" if quick else budget(args))
    rows += [{**r, "budget": "large: " + label(large)} for r in measured]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    ratios = pd.DataFrame([r for r in rows if r["series"] == RATIO])
    predictions(axes[0], ratios[ratios["tau"] == TAU].drop_duplicates("L").sort_values("L"), "L")
    predictions(axes[2], ratios[ratios["L"] == TAU_L].drop_duplicates("tau").sort_values("tau"), "tau")
    for k, name in enumerate(budgets):
        in_budget = [r for r in rows if r["budget"] == name]
        by_L, by_tau = [r for r in in_budget if r["tau"] == TAU], [r for r in in_budget if r["L"] == TAU_L]
        side, marker, color = 2 * k - len(budgets) + 1, "os"[k % 2], f"C{k + 2}"
        draw(axes[0], by_L, RATIO, "L", 0.1 * side, color, marker, name)
        for series, series_color in SERIES.items():
            draw(axes[1], by_L, series, "L", 0.1 * side, series_color, marker, f"{series}, {name.split(':')[0]}")
        draw(axes[2], by_tau, RATIO, "tau", 0.005 * side, color, marker, name)
        for r in sorted(in_budget, key=lambda r: (r["L"], r["tau"])):
            print(f"L = {r['L']}, tau = {r['tau']}, {name}: {r['series']:>21} "
                  f"{interval_text(r['log_p'], r['ci_low'], r['ci_high'])}{' ' + r['bound'] if r['bound'] else ''}"
                  f"{'' if r['reliable'] else ' (unreliable)'}{spread(r)}; {number(r['n_evals']):,.0f} evals")
    ratio_label = "log P(parallel | parity) - log P(serial | parity) (nats)"
    axes[0].set(xlabel="blocks L", ylabel=ratio_label)
    axes[1].set(xlabel="blocks L", ylabel="log P (nats)")
    axes[2].set(xlabel="tau (share of a block's write power needed to compute chi_S)", ylabel=ratio_label)
    for ax, title in zip(axes, (f"(a) parallel / serial by budget, tau = {TAU}",
                                f"(b) log P(parity), joints, tau = {TAU} (o published, s large)",
                                f"(c) parallel / serial by threshold tau, L = {TAU_L}")):
        ax.set_title(title, fontsize=9)
    L = sorted({r["L"] for r in rows if r["tau"] == TAU})
    for ax in axes[:2]:
        ax.set_xticks(L)
        ax.set_xlim(L[0] - 0.5, L[-1] + 0.5)
    axes[2].set_xlim(0.25, 0.55)
    for ax in axes:
        ax.legend(fontsize=6)
    save_figure(fig, out, "depth_budget", rows, args.publish, start)


if __name__ == "__main__":
    main()
