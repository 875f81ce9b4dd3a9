"""Figure: do inner llamaizers gain volume in proportion to the number of possible llamas?

Runs experiment=llamaizer for m = 2, 3, 4 distractor bits (7-40-40-1-style MLPs, n = 4 + m
inputs, target andor) and, at m = 2, for two more widths; --quick: m = 2, 3 on a 2-bit AND
target with tiny nets and budgets. Three panels in llamaizer.png: (a) log P(llamaizers |
target) against log |H_m| with the naive slope-1 prediction and the fitted slope; (b)
constraint bits per llama class against its average sensitivity, controls beside; (c) the
same sums and controls against width. Prints every number behind them."""
from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common import ROOT, load, parser, run_sweep  # noqa: E402

LOG10 = math.log(10)


def settings(quick: bool) -> tuple[list[list[str]], list[int], int]:
    """(hydra sweeps to run, hidden widths of the m panel, m of the width panel)."""
    if quick:  # one grid: m = 2, 3 x widths 6, 12 (one hydra start-up)
        return [["experiment=llamaizer", "task.target=and", "task.target_vars=[1,2]", "estimator.n_particles=30",
                 "estimator.n_runs=3", "estimator.n_moves=2", "estimator.max_levels=40",
                 "experiment.n_classes_sampled=1", "task.n=4,5", "model.hidden=[6,6],[12,12]"]], [6, 6], 2
    base = ["experiment=llamaizer", "experiment.n_classes_sampled=8"]
    return [base + ["task.n=6,7,8"], base + ["task.n=6", "model.hidden=[20,20],[80,80]"]], [40, 40], 2


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


def _num(v) -> float:
    return math.nan if v is None else float(v)


def main() -> None:
    args = parser(__doc__).parse_args()
    out = args.out or ROOT / "figures" / "llamaizer"
    start = time.perf_counter()
    sweeps, hidden, width_m = settings(args.quick)
    jobs = [job for k, sweep in enumerate(sweeps)
            for job in run_sweep(out / f"runs{k}", sweep, args.launcher, args.launcher_overrides)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    frames, width_rows = [], []
    curves: dict[str, list] = {"deep": [], "shallow": []}
    for job in jobs:
        stored, frame = load(job), pd.read_csv(job / "classes.csv", dtype={"h": str})
        s, m, width = stored["summary"], stored["summary"]["m"], stored["config"]["model"]["hidden"]
        if m == width_m:
            width_rows.append((width[0], m, frame, s))
        if width != hidden:
            continue
        frames.append(frame)
        t = s["log_p_target"]
        print(f"m = {m}: log P(target) = {_num(t['log_p']):.2f} [{_num(t['ci'][0]):.2f}, {_num(t['ci'][1]):.2f}] "
              f"({t['n_evals']:,} evals); run total {s['n_evals']:,} evals in {s['seconds']:.0f} s")
        for kind in curves:
            if kind not in s or s[kind]["n_functions"] == 0:
                continue
            k = s[kind]
            tot, low = k["sum_over_h"], k["union_lower"]
            curves[kind].append((math.log(k["n_functions"]), _num(tot["log_p"]), _num(tot["ci"][0]),
                                 _num(tot["ci"][1]), tot["bound"], None if low is None else low["log_p"]))
            print(f"  {kind}: |H| = {k['n_functions']:,}, {k['n_classes_measured']} classes"
                  f"{' (sampled)' if k['sampled'] else ''}; log sum_h P(h | target) = {_num(tot['log_p']):.2f} "
                  f"[{_num(tot['ci'][0]):.2f}, {_num(tot['ci'][1]):.2f}]{' (' + tot['bound'] + ')' if tot['bound'] else ''}"
                  f"; best single class {None if low is None else round(low['log_p'], 2)}")
        print(f"  P(direct | target) >= exp({s.get('direct_lower_bound')}) (1 - union bound; None = vacuous); "
              f"labels of MCMC samples inside the target (cross-check only): {s.get('labels_in_target_population')}")
    # (a) log P vs log |H|
    ax = axes[0]
    for kind, color in (("deep", "C0"), ("shallow", "C1")):
        pts = sorted(curves[kind])
        if not pts:
            continue
        x = np.array([p[0] for p in pts]) / LOG10
        y, lo, hi = (np.array([p[i] for p in pts]) / LOG10 for i in (1, 2, 3))
        yerr = np.nan_to_num(np.array([y - lo, hi - y]), nan=0.0)
        ax.errorbar(x, y, yerr=yerr, fmt="o-", color=color, label=f"{kind}: sum over h (union upper bound)")
        bounded = np.array([p[4] is not None for p in pts])
        ax.plot(x[bounded], y[bounded], "v", color="white", mec=color, ms=9, label=f"{kind}: only a bound (class not reached)")
        best = np.array([np.nan if p[5] is None else p[5] for p in pts]) / LOG10
        ax.plot(x, best, "v:", color=color, label=f"{kind}: best class (union lower bound)")
        ax.plot(x, y[0] + (x - x[0]), "--", color=color, lw=0.8, alpha=0.7, label=f"{kind}: naive counting, slope 1")
        fit = slope([(p[0], p[1], p[2], p[3]) for p in pts if p[4] is None])
        if fit:
            print(f"{kind}: slope of log P(sum over h | target) vs log |H_m| = {fit[0]:.2f} "
                  f"(95% range {fit[1]:.2f} .. {fit[2]:.2f}); naive counting predicts 1")
            ax.plot([], [], " ", label=f"{kind}: fitted slope {fit[0]:.2f} [{fit[1]:.2f}, {fit[2]:.2f}]")
    ax.set(xlabel="log10 |H_m| (number of possible llamas)", ylabel="log10 P(llamaizers | target)",
           title="(a) llamaizer volume vs multiplicity")
    ax.legend(fontsize=6)
    # (b) constraint bits per class vs complexity
    ax = axes[1]
    allf = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for c, ((kind, m), part) in enumerate(allf[allf["kind"].isin(["deep", "shallow"])].groupby(["kind", "m"])):
        est = part["bound"].fillna("") == ""
        marker = "o" if kind == "deep" else "s"
        ax.plot(part.loc[est, "sensitivity"], part.loc[est, "bits"], marker, color=f"C{c}", ms=4,
                label=f"{kind}, m = {m}")
        ax.plot(part.loc[~est, "sensitivity"], part.loc[~est, "bits"], marker, color=f"C{c}", mfc="none", ms=6)
    for _, row in allf[allf["kind"] == "control"].iterrows():
        ax.axhline(row["bits"], lw=0.5, color="gray", alpha=0.5)
    for _, row in allf.iterrows():
        print(f"  m = {row['m']} {row['class']:>14}: bits = {row['bits']:.1f}, log P = {row['log_p']:.2f} "
              f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}] {row['bound'] if isinstance(row['bound'], str) else ''}"
              f" ({row['n_evals']:,} evals)")
    ax.set(xlabel="average sensitivity of h", ylabel="constraint bits -log2 P(llamaizer(h) | target)",
           title="(b) per llama class (open: bounds; gray lines: controls)")
    ax.legend(fontsize=6)
    # (c) against width
    ax = axes[2]
    width_rows.sort(key=lambda r: r[0])
    for name in ("target_and", "target_xor", "mixed_and", "mixed_xor"):
        pts = [(w, f.loc[f["class"] == name, "bits"].iloc[0]) for w, m, f, _ in width_rows if (f["class"] == name).any()]
        if pts:
            ax.plot(*zip(*pts), "x--", label=f"control {name}")
    for kind in ("deep", "shallow"):
        pts = [(w, -_num(s[kind]["sum_over_h"]["log_p"]) / math.log(2)) for w, m, f, s in width_rows if kind in s]
        if pts:
            ax.plot(*zip(*pts), "o-", label=f"{kind}: -log2 sum over h")
            print(f"width: {kind} " + ", ".join(f"{w}: {b:.1f} bits" for w, b in pts))
    ax.set(xlabel="hidden width", ylabel="bits", title=f"(c) against width (m = {width_rows[0][1] if width_rows else '?'})")
    ax.legend(fontsize=6)
    figure = out / "llamaizer.png"
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
