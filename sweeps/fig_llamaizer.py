"""Figure: do inner llamaizers gain volume in proportion to the number of possible llamas?

Runs experiment=llamaizer for m = 1, 2, 3 (night: and 4) distractor bits (n-40-40-1 MLPs,
n = 4 + m inputs, target andor; m = 1 has shallow llamas only) and, at m = 2, for other widths
and depths (--budget default: width 20, depths 1 and 3; night: also width 80); budgets in BUDGET
(docs/results.md); --quick: m = 1, 2, 3 on a 2-bit AND target with tiny nets and budgets (m = 2
also at width 12 and depth 1). Panels of llamaizer.png: (a) log P(llamaizers | target) against
log |H_m| with the naive slope-1 prediction, the fitted slope, and an upper bound on the slope
where larger m gives only bounds; (b) constraint bits per llama class against its average
sensitivity, controls beside; (c) the same sums and controls against width; (d) against depth;
(e) every control against m (target and mixed functions; a llama of d1, d2 by layer and used
or not by the output: volume.experiments.llamaizer.LAYER_CONTROLS). In (a) the union
P(some llama of the kind | target) is drawn as the interval it is known to lie in, [max_h
P(h), min(1, sum_h P(h))], with the cross-check sum_h P(h) E[1/N | h] (MCMC samples) inside.
Estimates are filled markers with intervals; bounds are open markers with an arrow, never
joined to estimates; unreliable estimates are ringed red. Prints every number behind them;
--publish DIR also writes llamaizer.png and llamaizer.csv (the numbers plotted) there."""
from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common import (ESTIMATE_COLUMNS, LOG10, budget, diagnostic_fields, estimate_fields,  # noqa: E402
                    estimate_text, load, log10_columns, number, out_dir, parser, run_sweeps, save_figure)
from volume.experiments.llamaizer import LAYER_CONTROLS  # noqa: E402
from volume.plots import as_bits, estimate_columns, plot_estimates, read_classes  # noqa: E402

CONTROLS = ("target_and", "target_xor", "mixed_and", "mixed_xor", *(name for name, _, _ in LAYER_CONTROLS))


# Splitting budget and class draws per budget name. default: the published docs/figures;
# night: the budget aimed at issue 14's targets (costs in docs/results.md). 100 unit moves per
# level: fewer leave deep-llama runs trapped and biased low (-75 at 10, -62 at 100 on class 0x18,
# docs/estimators.md). max_evals caps each class: a class not reached by then is reported as the
# upper bound it is.
BUDGET = {"default": ["estimator.n_particles=100", "estimator.n_runs=4", "estimator.n_moves=100",
                      "estimator.max_evals=6000000", "experiment.n_classes_sampled=2"],
          "night": ["estimator.n_particles=200", "estimator.n_runs=12", "estimator.n_moves=100",
                    "estimator.max_evals=40000000", "experiment.n_classes_sampled=4"]}
MS = {"default": "task.n=7,6,5", "night": "task.n=8,7,6,5"}  # m = 3, 2, 1 (night: and 4), longest first
SHAPES = {"default": "model.hidden=[20,20],[40],[40,40,40]",
          "night": "model.hidden=[20,20],[40],[80,80],[40,40,40]"}


def settings(budget: str) -> tuple[list[list[str]], list[int], int]:
    """(hydra sweeps to run, hidden widths of the m panel, m of the width and depth panels)."""
    if budget == "quick":  # m = 1, 2, 3 at hidden [6,6]; m = 2 at [12,12] and [6]
        base = ["experiment=llamaizer", "task.target=and", "task.target_vars=[1,2]", "estimator.n_particles=30",
                "estimator.n_runs=3", "estimator.n_moves=2", "estimator.max_levels=40",
                "experiment.n_classes_sampled=1"]
        return [base + ["task.n=5,4,3", "model.hidden=[6,6]"], base + ["task.n=4", "model.hidden=[12,12],[6]"]], [6, 6], 2
    base = ["experiment=llamaizer", *BUDGET[budget]]
    # longest jobs first: a parallel launcher then starts them first
    return [base + [MS[budget]], base + ["task.n=6", SHAPES[budget]]], [40, 40], 2


def slope(points: list[tuple[float, float, float, float]], seed: int = 0) -> tuple[float, float, float] | None:
    """OLS slope of log P on log |H| and a 95% range from a parametric bootstrap of the
    points' intervals (normal, sd = interval width / 3.92)."""
    pts = [p for p in points if all(np.isfinite(p))]
    if len(pts) < 2:
        return None
    x, y, lo, hi = (np.array(v) for v in zip(*pts))
    fit = np.polyfit(x, y, 1)[0]
    rng = np.random.default_rng(seed)
    draws = y + rng.standard_normal((4000, len(y))) * (hi - lo) / 3.92
    boot = [np.polyfit(x, d, 1)[0] for d in draws]
    return float(fit), *map(float, np.quantile(boot, [0.025, 0.975]))


def slope_bound(points: list[tuple[float, dict]]) -> tuple[float, float, float] | None:
    """Where larger multiplicities give only upper bounds, the slope is still bounded above:
    from the first estimate a (at x_a, low 95% end) to each later upper bound b (its value),
    slope <= (b - low_a) / (x_b - x_a). The tightest such bound and its two x, or None."""
    est = [(x, e) for x, e in points if e["bound"] is None and e["ci"][0] is not None]
    if not est:
        return None
    xa, a = min(est, key=lambda p: p[0])
    pairs = [((e["ci"][1] - a["ci"][0]) / (x - xa), xa, x) for x, e in points
             if x > xa and e["bound"] == "upper" and e["ci"][1] is not None]
    return min(pairs, default=None)


def _bits(ests: list[dict | None], x) -> tuple:
    """(x, bits, low, high, bound, reliable) for plot_estimates: bits = -log2 P."""
    *columns, reliable = estimate_columns(ests)
    return np.asarray(x, float), *as_bits(*columns), reliable


def union_interval(ax, x: np.ndarray, unions: list[dict], color: str, kind: str) -> None:
    """The union P(some llama of the kind | target) as the interval it lies in: a bar from
    max_h P(h) to min(1, sum_h P(h)) (their points, in log10; none without a measured class,
    where only the sum's bound is known), and the MCMC cross-check sum_h P(h) E[1/N | h] (x)."""
    low = np.array([np.nan if u["low"] is None else u["low"]["log_p"] for u in unions], float) / LOG10
    high = np.array([number(u["high"]["log_p"]) for u in unions]) / LOG10
    both = np.isfinite(low) & np.isfinite(high)
    ax.vlines(x[both], low[both], high[both], color=color, lw=6, alpha=0.25,
              label=f"{kind}: P(some {kind} llama) in [max_h, min(1, sum_h)]")
    plot_estimates(ax, *log10_columns([u["cross_check"] for u in unions], x), color=color, marker="x", line=False,
                   label=f"{kind}: cross-check sum_h P(h) E[1/N|h]")


def _overlap(row) -> str:
    """Overlap numbers seen inside a class (MCMC samples), when it was reached."""
    if not isinstance(row.get("mean_distinct_llamas"), float) or math.isnan(row["mean_distinct_llamas"]):
        return ""
    return (f"; inside: E[N] = {row['mean_distinct_llamas']:.2f}, P(N >= 2) = {row['share_other_llama']:.2f}, "
            f"E[1/N] = {row['mean_inv_distinct']:.2f}")


def shape_panel(ax, rows: list[tuple], what: str, m: int) -> None:
    """Constraint bits of the controls and of the sums over h against width or depth
    (number of hidden layers): rows of (x, m, classes frame, summary)."""
    rows = sorted(rows, key=lambda r: r[0])
    for name in ("target_and", "target_xor", "mixed_and", "mixed_xor"):
        have = [(x, f.loc[f["class"] == name].iloc[0]) for x, _, f, _ in rows if (f["class"] == name).any()]
        if have:
            part = pd.DataFrame([r for _, r in have])
            plot_estimates(ax, [x for x, _ in have], *as_bits(part["log_p"], part["ci_low"], part["ci_high"],
                                                              part["bound"]), part["reliable"], marker="x",
                           label=f"control {name}")
    for kind in ("deep", "shallow"):
        have = [(x, s[kind]["sum_over_h"]) for x, _, _, s in rows if kind in s]
        if have:
            x, bits, low, high, bound, reliable = _bits([e for _, e in have], [x for x, _ in have])
            plot_estimates(ax, x, bits, low, high, bound, reliable, label=f"{kind}: -log2 sum over h")
            print(f"{what}: {kind} -log2 sum_h P(h | target): " + ", ".join(
                f"{v:.0f}: {b:.1f} [{lo:.1f}, {hi:.1f}] bits{' (' + kind_ + ' bound)' if kind_ else ''}"
                for v, b, lo, hi, kind_ in zip(x, bits, low, high, bound)))
    label = "hidden width" if what == "width" else "hidden layers"
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel=label, ylabel="bits (open, arrow: bounds)", title=f"({'c' if what == 'width' else 'd'}) "
           f"against {what} (m = {m})")
    ax.legend(fontsize=6)


def job_rows(s: dict, frame: pd.DataFrame, hidden: list[int], records: dict) -> list[dict]:
    """The published CSV's rows of one run (m, hidden widths): log P(target) with the run's
    cost, each kind's sum over h, and every classes.csv row (classes, controls, union brackets)."""
    run = {"m": s["m"], "hidden": "-".join(map(str, hidden))}
    rows = [{**estimate_fields(records["target"]), **diagnostic_fields(records["target"]), **run,
             "series": "target", "quantity": "log P(target)",
             "run_n_evals": s["n_evals"], "run_seconds": round(s["seconds"], 1)}]
    rows += [{**estimate_fields(s[kind]["sum_over_h"]), **run, "series": f"sum_{kind}", "kind": kind,
              "quantity": "log sum_h P(llamaizer(h) | target)", "n_functions": s[kind]["n_functions"],
              "n_runs": diagnostic_fields(records["target"])["n_runs"]}
             for kind in ("deep", "shallow") if kind in s and s[kind]["n_functions"]]
    for _, row in frame.iterrows():
        union = row["kind"] == "union"
        rows.append({**row[list(ESTIMATE_COLUMNS)].to_dict(), **run, "series": row["class"], "kind": row["kind"],
                     "quantity": "bracket of log P(some llama | target)" if union else "log P(class | target)",
                     "h": row.get("h"), "sensitivity": row.get("sensitivity"),
                     "log_p_joint": row.get("log_p_joint"), **diagnostic_fields(records.get(row["class"])),
                     **({"union_low": row["union_low"], "union_high": row["union_high"]} if union else {})})
    return rows


def controls_panel(ax, frames: list[pd.DataFrame]) -> None:
    """(e) constraint bits of every control class against m (the m panel's widths)."""
    allf = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["class"])
    for c, name in enumerate(CONTROLS):
        part = allf[allf["class"] == name].sort_values("m")
        if len(part):
            plot_estimates(ax, part["m"], *as_bits(part["log_p"], part["ci_low"], part["ci_high"], part["bound"]),
                           part["reliable"], color=f"C{c}", marker="os^vD<>P*"[c], label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="m (distractor bits)", ylabel="constraint bits -log2 P(class | target)",
           title="(e) controls against m (open, arrow: bounds)")
    ax.legend(fontsize=6)


def main() -> None:
    args = parser(__doc__).parse_args()
    out = out_dir(args, "llamaizer")
    start = time.perf_counter()
    sweeps, hidden, width_m = settings(budget(args))
    jobs = [job for sweep_jobs in run_sweeps([(out / f"runs{k}", sweep) for k, sweep in enumerate(sweeps)],
                                             args.launcher, args.launcher_overrides) for job in sweep_jobs]
    fig, axes = plt.subplots(2, 3, figsize=(19, 10))
    axes = axes.ravel()
    frames, shape_rows, rows = [], [], []
    curves: dict[str, list] = {"deep": [], "shallow": []}
    for job in jobs:
        stored, frame = load(job), read_classes(job)
        s, m, width = stored["summary"], stored["summary"]["m"], stored["config"]["model"]["hidden"]
        rows += job_rows(s, frame, width, stored["estimates"])
        if m == width_m:
            shape_rows.append((width, m, frame, s))
        if width != hidden:
            continue
        frames.append(frame)
        t = s["log_p_target"]
        print(f"m = {m}: log P(target) = {estimate_text(t)} "
              f"({t['n_evals']:,} evals); run total {s['n_evals']:,} evals in {s['seconds']:.0f} s")
        for kind in curves:
            if kind not in s or s[kind]["n_functions"] == 0:
                continue
            k = s[kind]
            tot, u = k["sum_over_h"], k["union"]
            curves[kind].append((math.log(k["n_functions"]), tot, u))
            print(f"  {kind}: |H| = {k['n_functions']:,}, {k['n_classes_measured']} classes"
                  f"{' (sampled)' if k['sampled'] else ''}; log sum_h P(h | target) = {estimate_text(tot)}; "
                  f"P(some {kind} llama | target) in [max_h {estimate_text(u['low'])}, "
                  f"min(1, sum) {estimate_text(u['high'])}]; "
                  f"cross-check sum_h P(h) E[1/N | h] = {estimate_text(u['cross_check'])}")
        if "any_llama" in s:
            u = s["any_llama"]
            print(f"  any llama: P in [{estimate_text(u['low'])}, {estimate_text(u['high'])}]; "
                  f"cross-check {estimate_text(u['cross_check'])}")
        print(f"  P(direct | target) >= exp({s.get('direct_lower_bound')}) (1 - union bound; None = vacuous); "
              f"labels of MCMC samples inside the target (cross-check only): {s.get('labels_in_target_population')}")
    # (a) log P vs log |H|
    ax = axes[0]
    for kind, color in (("deep", "C0"), ("shallow", "C1")):
        pts = sorted(curves[kind], key=lambda p: p[0])
        if not pts:
            continue
        x = np.array([p[0] for p in pts]) / LOG10
        plot_estimates(ax, *log10_columns([p[1] for p in pts], x), color=color, label=f"{kind}: sum over h")
        union_interval(ax, x, [p[2] for p in pts], color, kind)
        est = [(xi, p[1]) for xi, p in zip(x, pts) if p[1]["bound"] is None and p[1]["log_p"] is not None]
        if est:  # anchored at the first estimate, never at a bound
            ax.plot(x, est[0][1]["log_p"] / LOG10 + (x - est[0][0]), "--", color=color, lw=0.8, alpha=0.7,
                    label=f"{kind}: naive counting, slope 1")
        fit = slope([(p[0], number(p[1]["log_p"]), number(p[1]["ci"][0]), number(p[1]["ci"][1]))
                     for p in pts if p[1]["bound"] is None])
        if fit:
            print(f"{kind}: slope of log P(sum over h | target) vs log |H_m| = {fit[0]:.2f} "
                  f"(95% range {fit[1]:.2f} .. {fit[2]:.2f}); naive counting predicts 1")
            ax.plot([], [], " ", label=f"{kind}: fitted slope {fit[0]:.2f} [{fit[1]:.2f}, {fit[2]:.2f}]")
            rows.append({"log_p": fit[0], "ci_low": fit[1], "ci_high": fit[2], "bound": "", "series": f"slope_{kind}",
                         "reliable": all(p[1].get("reliable", True) for p in pts if p[1]["bound"] is None),
                         "kind": kind, "quantity": "slope of log sum_h P(h | target) against log |H_m| (estimates)"})
        cap = slope_bound([(p[0], p[1]) for p in pts])
        if cap:
            print(f"{kind}: slope <= {cap[0]:.2f} between log |H| = {cap[1]:.2f} (estimate, low 95% end) and "
                  f"{cap[2]:.2f} (upper bound); naive counting predicts 1")
            ax.plot([], [], " ", label=f"{kind}: slope <= {cap[0]:.2f} (estimate to bound)")
            rows.append({"log_p": cap[0], "ci_high": cap[0], "bound": "upper", "series": f"slope_bound_{kind}",
                         "kind": kind, "quantity": f"slope bound, log |H| from {cap[1]:.2f} to {cap[2]:.2f}"})
    ax.set(xlabel="log10 |H_m| (number of possible llamas)", ylabel="log10 P(llamaizers | target)",
           title="(a) llamaizer volume vs multiplicity (open + arrow: bounds)")
    ax.legend(fontsize=6)
    # (b) constraint bits per class vs complexity
    ax = axes[1]
    allf = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for c, ((kind, m), part) in enumerate(allf[allf["kind"].isin(["deep", "shallow"])].groupby(["kind", "m"])):
        plot_estimates(ax, part["sensitivity"], *as_bits(part["log_p"], part["ci_low"], part["ci_high"], part["bound"]),
                       part["reliable"], color=f"C{c}", marker="o" if kind == "deep" else "s", line=False, ms=4,
                       label=f"{kind}, m = {m}")
    for _, row in allf[allf["kind"] == "control"].iterrows():  # dotted: only a bound
        ax.axhline(row["bits"], lw=0.5, color="gray", alpha=0.5, ls="-" if row["bound"] != "upper" else ":")
    for _, row in allf[allf["kind"] != "union"].iterrows():
        print(f"  m = {row['m']} {row['class']:>14}: bits = {row['bits']:.1f}, log P = {row['log_p']:.2f} "
              f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}] {row['bound']}"
              f" ({row['n_evals']:,} evals){_overlap(row)}")
    ax.set(xlabel="average sensitivity of h", ylabel="constraint bits -log2 P(llamaizer(h) | target)",
           title="(b) per llama class (open + arrow: bounds)\ngray lines: controls (dotted: bounds)")
    ax.legend(fontsize=6)
    # (c) against width at the m panel's depth, (d) against depth at its width
    shape_panel(axes[2], [(w[0], *r) for w, *r in shape_rows if len(w) == len(hidden)], "width", width_m)
    shape_panel(axes[3], [(len(w), *r) for w, *r in shape_rows if w[0] == hidden[0]], "depth", width_m)
    controls_panel(axes[4], frames)
    axes[5].axis("off")
    save_figure(fig, out, "llamaizer", rows, args.publish, start)


if __name__ == "__main__":
    main()
