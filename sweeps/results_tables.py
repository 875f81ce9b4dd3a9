"""The tables of docs/results.md, from the published CSVs: `python sweeps/results_tables.py
[docs/figures]` prints them in markdown (after `make figures BUDGET=...`, paste them over the old
ones). Estimates are `log_p [ci_low, ci_high]` in nats; `*` marks reliable = false (the
estimator's diagnostics failed); bounds say so.

Targets (issue 14): for each target quantity, its measured 95% interval and width with n
runs per class, the runs a t interval would need to shrink to the target width (width ~ 1/sqrt(runs)), and the
evaluations and core-hours that costs at the figure's measured evaluations per second (one
thread). The extrapolation assumes the runs' spread stays what it was; where runs are trapped
(reliable = false) more runs narrow the interval around a mean that trapping biases, so these
are floors on the cost of the target, not the cost of a correct answer. A bound has no width
to extrapolate from: it is listed as not reached."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from common import PUBLISHED, ROOT

# figure -> (series, target width in its units, what the row is)
TARGETS = {"llamaizer": (("sum_deep", 10.0, "deep llama sum, m = {m:g}"), ("slope_deep", 0.6, "deep slope"),
                         ("slope_shallow", 0.6, "shallow slope")),
           "depth": (("ratio_parallel_serial", 4.0, "depth ratio, L = {L:g}, tau = {tau:g}"),),
           "depth_budget": (("ratio_parallel_serial", 4.0, "depth ratio, L = {L:g}, tau = {tau:g}, {budget}"),)}
MAIN_HIDDEN = "40-40"  # the llamaizer m panel's widths


def cell(row: pd.Series) -> str:
    """One estimate as text: value, interval, and what it is (bound, unreliable)."""
    if row["bound"] in ("upper", "lower"):  # at its conservative end, as the figures draw it
        end = row["ci_high"] if row["bound"] == "upper" else row["ci_low"]
        text = f"{row['bound']} bound {end if math.isfinite(end) else row['log_p']:.2f}"
    elif row["bound"] == "target_not_reached" or not math.isfinite(row["log_p"]):
        text = "n/a"
    else:
        text = f"{row['log_p']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    return text + ("" if row["reliable"] in (True, "True") else "*")


def table(header: list[str], lines: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(line) + " |" for line in lines)])


def pick(part: pd.DataFrame, series: str) -> str:
    hit = part[part["series"] == series]
    return cell(hit.iloc[0]) if len(hit) else "-"


def depth_tables(t: pd.DataFrame) -> str:
    """Per L at tau = 0.4, and per tau at L = 4: target, classes given target, the ratio."""
    cols = ["target", "serial", "parallel", "single", "ratio_parallel_serial"]
    out = []
    for key, part in (("L", t[t["tau"] == 0.4]), ("tau", t[t["L"] == 4])):
        lines = [[f"{v:g}", *(pick(g, c) for c in cols), f"{g['predicted_one'].dropna().iloc[0]:.2f}",
                  f"{g['predicted_all'].dropna().iloc[0]:.2f}"] for v, g in part.groupby(key)]
        out.append(table([key, "log P(parity)", "serial \\| parity", "parallel \\| parity", "single \\| parity",
                          "log ratio par/ser", "predicted: one/one", "all/all"], lines))
    return "\n\n".join(out)


def depth_budget_tables(t: pd.DataFrame) -> str:
    """Per L, tau and budget: log P(parity), the two joints and their log ratio (published vs large)."""
    cols = ["target", "serial_joint", "parallel_joint", "ratio_parallel_serial"]
    lines = [[f"{L:g}", f"{tau:g}", budget, *(pick(g, c) for c in cols)]
             for (L, tau, budget), g in t.sort_values(["L", "tau"], kind="stable").groupby(["L", "tau", "budget"],
                                                                                          sort=False)]
    return table(["L", "tau", "budget (chains x runs x moves)", "log P(parity)", "log P(serial, parity)",
                  "log P(parallel, parity)", "log ratio par/ser"], lines)


def llamaizer_tables(t: pd.DataFrame) -> str:
    """The sums over h and every control, per m, at the m panel's widths; then the sums per shape at m = 2."""
    main = t[t["hidden"] == MAIN_HIDDEN]
    controls = [c for c in main.loc[main["kind"] == "control", "series"].unique()]
    cols = ["target", "sum_deep", "sum_shallow", *controls]
    lines = [[f"{m:g}", *(pick(g, c) for c in cols)] for m, g in main.groupby("m")]
    shapes = [[h, *(pick(g, c) for c in ("target", "sum_deep", "sum_shallow"))]
              for h, g in t[t["m"] == 2].groupby("hidden")]
    slopes = [[s, pick(t, s)] for s in t["series"].unique() if str(s).startswith("slope")]
    return "\n\n".join([table(["m", *cols], lines), table(["hidden (m = 2)", "target", "sum_deep", "sum_shallow"],
                                                           shapes), table(["slope", "value [95% range]"], slopes)])


def cost(name: str, t: pd.DataFrame) -> str:
    runs = t[t["series"] == "target"]
    return (f"{name}: {len(runs)} runs, {runs['run_n_evals'].sum():,.0f} evaluations, "
            f"{runs['run_seconds'].sum():,.0f} s of job time")


def needs(width: float, target: float, n_runs: int, n_evals: float) -> tuple[int, float]:
    """(runs per class, evaluations) for a t interval of `width` over n_runs to shrink to `target`."""
    factor = max(1.0, (width / target) ** 2)
    return math.ceil(n_runs * factor), n_evals * factor


def rate(table: pd.DataFrame) -> float:
    """Evaluations per second of the figure's runs (their target rows carry each run's cost)."""
    runs = table[table["series"] == "target"]
    return runs["run_n_evals"].sum() / runs["run_seconds"].sum()


def slope_cost(table: pd.DataFrame, kind: str) -> tuple[int, float]:
    """(runs per class, evaluations) behind a slope: the sums it was fitted to."""
    sums = table[(table["series"] == f"sum_{kind}") & (table["hidden"] == MAIN_HIDDEN)]
    return int(sums["n_runs"].max()), float(sums["n_evals"].sum())


def target_rows(name: str, t: pd.DataFrame) -> list[list[str]]:
    """One line per target quantity of figure `name`: what reaching issue 14's width would take."""
    out, per_second = [], rate(t)
    if "hidden" in t.columns:  # the llamaizer targets are about the m panel's widths
        t = t[(t["hidden"] == MAIN_HIDDEN) | t["hidden"].isna()]
    for series, target, label in TARGETS[name]:
        for _, row in t[t["series"] == series].iterrows():
            head = [label.format(**row.to_dict()), cell(row)]
            if row["bound"] in ("upper", "lower") or not math.isfinite(row["ci_low"]):
                out.append([*head, "-", f"{target}", "-", "not reached", "-", "-"])
                continue
            n_runs, n_evals = slope_cost(t, series.split("_")[1]) if series.startswith("slope") \
                else (int(row["n_runs"]), float(row["n_evals"]))
            width = row["ci_high"] - row["ci_low"]
            runs, evals = needs(width, target, n_runs, n_evals)
            out.append([*head, f"{width:.1f}", f"{target}", f"{n_runs}", f"{runs:,}", f"{evals:.2e}",
                        f"{evals / per_second / 3600:.1f}"])
    return out


def own_rows(t: pd.DataFrame) -> pd.DataFrame:
    """A figure's rows without those it copied from another figure (depth_budget's published rows)."""
    return t[~t["budget"].str.startswith(PUBLISHED)] if "budget" in t.columns else t


def main(folder: Path) -> None:
    render = {"llamaizer": llamaizer_tables, "depth": depth_tables, "depth_budget": depth_budget_tables}
    tables = {name: pd.read_csv(folder / f"{name}.csv", keep_default_na=False, na_values=[""])
              for name in render if (folder / f"{name}.csv").exists()}
    for name, t in tables.items():
        print(f"### {name}\n\n{render[name](t)}\n\n{cost(name, own_rows(t))}\n")
    lines = [line for name, t in tables.items() if name in TARGETS for line in target_rows(name, own_rows(t))]
    print("### targets\n\n" + table(["quantity", "measured (95%)", "width", "target", "runs/class", "runs needed",
                                       "evaluations", "hours at the measured rate"], lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "figures")
