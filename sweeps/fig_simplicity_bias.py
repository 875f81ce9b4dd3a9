"""Figure: P(f) of random 7-40-40-1 networks spans many decades and falls with LZ complexity.

Runs the default experiment (n = 10^7 networks; --quick: 2*10^4) for two bias scales and
draws rank plots and log P vs LZ side by side; prints the numbers behind them."""
from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common import ROOT, load, parser, run_sweep  # noqa: E402
from volume.experiments.simplicity_bias import lz_groups, rank_curve  # noqa: E402


def main() -> None:
    args = parser(__doc__).parse_args()
    out = args.out or ROOT / "figures" / "simplicity_bias"
    n = 20_000 if args.quick else 10_000_000
    start = time.perf_counter()
    jobs = run_sweep(out / "runs", [f"n_samples={n}", "prior.sigma_b=0.0001,1.0"], args.launcher, args.launcher_overrides)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for job in jobs:
        stored = load(job)
        frame = pd.read_csv(job / "functions.csv", dtype={"function": str})
        label = f"sigma_b = {stored['config']['prior']['sigma_b']:g}"
        # drawn from the distinct counts and (LZ, log P) pairs, millions of functions sharing them
        # (marker area grows with the number of functions at a pair)
        axes[0].loglog(*rank_curve(frame["count"].to_numpy(), n), ".-", ms=2, lw=1, label=label)
        groups = lz_groups(frame)
        axes[1].scatter(groups["lz"], groups["log_p"] / math.log(10), s=3 + 4 * np.log10(groups["n_functions"]),
                        alpha=0.6, label=label)
        s = stored["summary"]
        print(f"{label}: {s['n_samples']:,} networks, {s['n_distinct_functions']:,} functions, "
              f"log10 P in [{s['log10_p_range'][0]:.2f}, {s['log10_p_range'][1]:.2f}], "
              f"Spearman(log P, LZ) = {s['spearman_logp_vs_lz']:.3f}, top {s['top_function']['function']} "
              f"P = {math.exp(s['top_function']['log_p']):.4f}")
    axes[0].set(xlabel="rank", ylabel="P(f)", title="7-40-40-1 ReLU, n = 7 cube")
    axes[1].set(xlabel="LZ complexity", ylabel="log10 P(f)", title="P(f) falls with complexity")
    axes[0].legend()
    figure = out / "simplicity_bias.png"
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
