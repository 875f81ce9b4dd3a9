"""Figure: do parallel parity circuits outweigh serial ones, and by the placement count?

Runs experiment=depth (residual MLPs, 4-bit parity, block width 4, stream 6) for L = 3..8
blocks, classes serial, parallel, single (--quick: L = 3, 4, tiny budgets: bounds only;
add model.block_width=4,8 for widths). depth.png has three panels: (a) the
measured log P(parallel | target) - log P(serial | target) against L with the two counting
predictions (one specific tree vs one specific chain; all trees vs all chains); (b) log
P(class and target) per class against L, with log P(target); (c) the path-length profile of each class at the
largest L. Prints every number behind them; bounds (class or target not reached) are
printed and drawn as such, never as estimates."""
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
MARKERS = {"serial": "o", "parallel": "s", "single": "^", "mixed": "D", "other": "x"}


def settings(quick: bool) -> list[str]:
    if quick:
        return ["experiment=depth", "model.n_blocks=3,4", "estimator.n_particles=30", "estimator.n_runs=3",
                "estimator.n_moves=2", "estimator.max_levels=30", "experiment.classes=[serial,parallel,single]"]
    return ["experiment=depth", "model.n_blocks=3,4,5,6,7,8", "experiment.classes=[serial,parallel,single]"]


def _num(v) -> float:
    return math.nan if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def main() -> None:
    args = parser(__doc__).parse_args()
    out = args.out or ROOT / "figures" / "depth"
    start = time.perf_counter()
    jobs = run_sweep(out / "runs", settings(args.quick), args.launcher, args.launcher_overrides)
    runs = sorted(((load(j)["summary"], pd.read_csv(j / "classes.csv"), load(j)["estimates"]) for j in jobs),
                  key=lambda r: (r[0]["block_width"], r[0]["n_blocks"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    widths = sorted({s["block_width"] for s, _, _ in runs})
    for c, width in enumerate(widths):
        color = f"C{c}"
        part = [r for r in runs if r[0]["block_width"] == width]
        L = np.array([s["n_blocks"] for s, _, _ in part])
        for key, style, label in (("predicted_log_ratio_one", "--", "one tree / one chain"),
                                  ("predicted_log_ratio_all", ":", "all trees / all chains")):
            axes[0].plot(L, [_num(s[key]) / LOG10 for s, _, _ in part], style, color=color,
                         label=f"w = {width}: counting, {label}")
        for s, frame, _ in part:
            r = s["log_ratio_parallel_serial"]
            t = s["log_p_target"]
            print(f"L = {s['n_blocks']}, w = {width}: log P(target) = {_num(t['log_p']):.2f}"
                  f"{' (upper bound: not reached)' if t['bound'] else ''} [{_num(t['ci'][0]):.2f}, {_num(t['ci'][1]):.2f}]"
                  f"; log ratio parallel/serial = {'n/a' if r is None else round(_num(r['log_p']), 2)}"
                  f"{'' if r is None or not r['bound'] else ' (' + r['bound'] + ' bound)'}; predicted "
                  f"{_num(s['predicted_log_ratio_one']):.2f} (one) / {_num(s['predicted_log_ratio_all']):.2f} (all); "
                  f"{s['n_evals']:,} evals in {s['seconds']:.0f} s")
            for _, row in frame.iterrows():
                print(f"    {row['class']:>8}: log P(class | target) = {_num(row['log_p']):.2f} "
                      f"[{_num(row['ci_low']):.2f}, {_num(row['ci_high']):.2f}] {row['bound'] if isinstance(row['bound'], str) else ''}"
                      f"; joint {row['log_p_joint']:.2f}; {row['n_evals']:,} evals; confirmed by ablation "
                      f"{_num(row.get('frac_confirmed')):.2f}; mean path length {_num(row.get('mean_path_length')):.2f}")
            if r is not None:
                lo, hi = (_num(v) / LOG10 for v in r["ci"])
                y = _num(r["log_p"]) / LOG10
                marker = {"lower": "^", "upper": "v"}.get(r["bound"], "o")
                axes[0].errorbar([s["n_blocks"]], [y], yerr=[[np.nan_to_num(y - lo)], [np.nan_to_num(hi - y)]],
                                 fmt=marker, color=color)
        bound = any(s["log_p_target"]["bound"] for s, _, _ in part)
        axes[1].plot(L, [_num(s["log_p_target"]["log_p"]) / LOG10 for s, _, _ in part], "k-" if c == 0 else "k--",
                     lw=1, label=f"target, w = {width}{' (upper bounds)' if bound else ''}")
        for name, marker in MARKERS.items():
            pts = [(s["n_blocks"], est[name]["log_p"] / LOG10, est[name]["bound"]) for s, _, est in part if name in est]
            for filled in (True, False):
                sel = [(x, y) for x, y, b in pts if (b is None) == filled]
                if sel:
                    axes[1].plot(*zip(*sel), marker + ("-" if filled else ""), color=color, ms=5 if filled else 7,
                                 mfc=None if filled else "none", label=f"{name}, w = {width}" if filled else None)
    axes[0].set(xlabel="blocks L", ylabel="log10 P(parallel | target) / P(serial | target)",
                title="(a) parallel / serial (^ v: bounds)")
    axes[0].legend(fontsize=6)
    axes[1].set(xlabel="blocks L", ylabel="log10 P(class and target)",
                title="(b) class and target (open: bounds)")
    axes[1].legend(fontsize=6, ncol=2)
    s_last, _, est_last = max(runs, key=lambda r: (r[0]["n_blocks"], r[0]["block_width"]))
    for name, marker in MARKERS.items():
        profile = est_last.get(name, {}).get("path_profile")
        if profile:
            axes[2].plot(range(len(profile)), profile, marker + "-", label=name)
            print(f"path-length profile, L = {s_last['n_blocks']}, w = {s_last['block_width']}, {name}: "
                  + " ".join(f"{p:.3f}" for p in profile))
    axes[2].set(xlabel="path length (blocks on the path)", ylabel="share of output variance",
                title=f"(c) path lengths per class, L = {s_last['n_blocks']}")
    if axes[2].lines:
        axes[2].legend(fontsize=7)
    else:
        axes[2].text(0.5, 0.5, "no class reached: no samples inside", ha="center", transform=axes[2].transAxes)
    figure = out / "depth.png"
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
