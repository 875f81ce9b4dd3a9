"""Figure: does the depth figure's parallel/serial ratio hold at a larger splitting budget?

Every number of the published depth figure (sweeps/fig_depth.py, default budget) is flagged:
its runs spread 3-11x what independent samples give, and the target's estimate rises with the
budget (docs/estimators.md, "Depth's target"), so trapped runs pull the joints low. A log
ratio is robust to that only if both joints are pulled alike. This figure re-measures log
P(parity), the serial and parallel joints and their log ratio at L = 3..6 (tau = 0.4) with 4x
the chains and unit_only moves (LARGE: 1,000 chains x 12 runs x 100 moves) and draws each
next to the published value (read from docs/figures/depth.csv, or --published-csv):
(a) the log ratio against L with the two counting predictions; (b) log P(target) and the
joints against L. --budget default and night run LARGE and compare with depth.csv made at that
budget; --quick: tiny budget at L = 3 (bounds likely), compared with the default; --publish DIR writes
depth_budget.png and depth_budget.csv there (run it after fig_depth.py: `make figures` does)."""
from __future__ import annotations

import argparse
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from common import PUBLISHED, ROOT, budget, number, out_dir, parser, run_sweep, save_figure  # noqa: E402
from fig_depth import BUDGET, read_runs, table  # noqa: E402
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


def published_rows(csv, blocks: list[int], budget_name: str = "default") -> list[dict]:
    """The published depth figure's rows of the compared quantities at these L and tau = TAU
    (made at fig_depth's budget BUDGET_NAME: `make figures` runs both at one budget)."""
    frame = pd.read_csv(csv, dtype={"bound": str}).fillna({"bound": ""})
    keep = frame["series"].isin([*SERIES, RATIO]) & frame["L"].isin(blocks) & (frame["tau"] == TAU)
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


def draw(ax, rows: list[dict], series: str, x_shift: float, color: str, marker: str, name: str) -> None:
    part = pd.DataFrame([r for r in rows if r["series"] == series]).sort_values("L")
    if len(part):
        plot_estimates(ax, part["L"] + x_shift, part["log_p"], part["ci_low"], part["ci_high"], part["bound"],
                       part["reliable"], color=color, marker=marker, label=name, line=False)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--blocks", type=block_counts, default=[3, 4, 5, 6],
                   help="L values, comma-separated (default 3,4,5,6)")
    p.add_argument("--published-csv", default=ROOT / "docs" / "figures" / "depth.csv",
                   help="the published depth figure's CSV to compare with")
    args = p.parse_args()
    quick = budget(args) == "quick"
    blocks = [3] if quick else args.blocks
    large = LARGE["quick" if quick else "large"]
    out = out_dir(args, "depth_budget")
    start = time.perf_counter()
    overrides = ["experiment=depth", "experiment.classes=[serial,parallel]", f"experiment.tau={TAU}", *large,
                 "model.n_blocks=" + ",".join(map(str, blocks))]
    jobs = run_sweep(out / "runs", overrides, args.launcher, args.launcher_overrides)
    measured = [r for r in table(read_runs(jobs)) if r["series"] in (*SERIES, RATIO)]
    rows = published_rows(args.published_csv, blocks, "default" if quick else budget(args))
    rows += [{**r, "budget": "large: " + label(large)} for r in measured]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    ratios = pd.DataFrame([r for r in rows if r["series"] == RATIO]).drop_duplicates("L").sort_values("L")
    for key, style, what in (("predicted_one", "--", "one tree / one chain"), ("predicted_all", ":", "all / all")):
        axes[0].plot(ratios["L"], ratios[key], ls=style, marker="_", ms=25, color="gray", label=f"counting: {what}")
    axes[0].axhline(0, color="k", lw=0.5)
    for k, name in enumerate(budgets):
        in_budget = [r for r in rows if r["budget"] == name]
        shift, marker = 0.1 * (2 * k - len(budgets) + 1), "os"[k % 2]
        draw(axes[0], in_budget, RATIO, shift, f"C{k + 2}", marker, name)
        for series, color in SERIES.items():
            draw(axes[1], in_budget, series, shift, color, marker, f"{series}, {name.split(':')[0]}")
        for r in in_budget:
            print(f"L = {r['L']}, {name}: {r['series']:>21} {number(r['log_p']):8.2f} [{number(r['ci_low']):.2f}, "
                  f"{number(r['ci_high']):.2f}]{' ' + r['bound'] if r['bound'] else ''}"
                  f"{'' if r['reliable'] else ' (unreliable)'}{spread(r)}; {number(r['n_evals']):,.0f} evals")
    axes[0].set(xlabel="blocks L", ylabel="log P(parallel | parity) - log P(serial | parity) (nats)",
                title="(a) parallel / serial by splitting budget")
    axes[1].set(xlabel="blocks L", ylabel="log P (nats)",
                title="(b) log P(parity) and the joints (o published, s large)")
    L = sorted({r["L"] for r in rows})
    for ax in axes:
        ax.set_xticks(L)
        ax.set_xlim(L[0] - 0.5, L[-1] + 0.5)
        ax.legend(fontsize=6)
    save_figure(fig, out, "depth_budget", rows, args.publish, start)


if __name__ == "__main__":
    main()
