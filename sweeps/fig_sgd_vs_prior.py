"""Figure: log P_SGD(f | S) against log P_B(f | S) per function (and, in a second colour,
against the NNGP's log P_NNGP(f | S)), one panel per optimiser, batch size and width
(Mingard et al. 2020 setting; experiment sgd_vs_prior).

Full size: 7-40-40-1, 32 training inputs, 10^5 training runs and 4*10^6 prior samples per
panel (about 30-40 min each on 2 cores). --quick: n = 5, 300 runs per panel (seconds)."""
from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common import ROOT, load, parser, run_sweep  # noqa: E402

QUICK = ["n_samples=300", "experiment.n_prior=20000", "task.n=5", "experiment.n_train=12", "experiment.split_seed=3",
         "experiment.rare_event_top=0", "experiment.n_nngp=20000", "trainer.max_steps=300", "model.hidden=[16,16]"]
# One panel per setting: (label, overrides). Each differs from the default in one respect.
PANELS = [("Adam, batch 8 (default)", []), ("SGD + momentum", ["trainer=sgd"]),
          ("Adam, full batch", ["trainer.batch_size=0"]), ("Adam, width 10", ["model.hidden=[10,10]"])]


def main() -> None:
    args = parser(__doc__).parse_args()
    out = args.out or ROOT / "figures" / "sgd_vs_prior"
    base = ["experiment=sgd_vs_prior", *(QUICK if args.quick else [])]
    start = time.perf_counter()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 4), squeeze=False)
    for ax, (label, overrides) in zip(axes[0], PANELS):
        quick_width = args.quick and any(o.startswith("model.hidden") for o in overrides)
        job_overrides = [o for o in base if not (quick_width and o.startswith("model.hidden"))] + overrides
        slug = label.lower().replace(" ", "_").replace(",", "").replace("+", "").replace("(", "").replace(")", "")
        job = run_sweep(out / f"runs_{slug}", job_overrides, args.launcher, args.launcher_overrides)[0]
        summary = load(job)["summary"]
        frame = pd.read_csv(job / "functions.csv", dtype={"function": str})
        both = frame[(frame["count"] > 0) & (frame["count_prior"] > 0)]
        to10 = 1 / math.log(10)
        ax.errorbar(both["log_p_prior"] * to10, both["log_p"] * to10,
                    xerr=[(both["log_p_prior"] - both["ci_low_prior"]) * to10,
                          (both["ci_high_prior"] - both["log_p_prior"]) * to10],
                    yerr=[(both["log_p"] - both["ci_low"]) * to10, (both["ci_high"] - both["log_p"]) * to10],
                    fmt=".", ms=3, lw=0.5, alpha=0.7, label="x: P_B (prior, counted)")
        gp = frame[(frame["count"] > 0) & (frame["count_nngp"] > 0)] if "count_nngp" in frame else frame.iloc[:0]
        if len(gp):  # the NNGP's P(f | S) on the same axes, in a second colour
            ax.errorbar(gp["log_p_nngp"] * to10, gp["log_p"] * to10,
                        xerr=[(gp["log_p_nngp"] - gp["ci_low_nngp"]) * to10,
                              (gp["ci_high_nngp"] - gp["log_p_nngp"]) * to10],
                        fmt="x", ms=3, lw=0.5, alpha=0.7, color="C1", label="x: P_NNGP (Gaussian process)")
            ax.legend(fontsize=7)
        lims = [min(both["ci_low_prior"].min(), both["ci_low"].min()) * to10, 0]
        ax.plot(lims, lims, "k--", lw=0.7)
        ax.set(xlabel="log10 P_B(f | S)  (or P_NNGP)", ylabel="log10 P_SGD(f | S)", title=label)
        mass = ", ".join(f"top {k}: {v['p_sgd']:.3f} (prior {v['p_prior']:.3f})"
                         for k, v in summary["sgd_mass_on_prior_top"].items())
        print(f"{label}: {summary['n_runs']:,} runs ({summary['n_fitted']:,} fit S), {summary['n_consistent']:,} of "
              f"{summary['n_prior']:,} prior samples fit S; {len(both)} shared functions; Pearson(log) "
              f"{summary['pearson_log']:.3f}, Spearman {summary['spearman_log']:.3f}; P_SGD mass on the prior's "
              f"top functions: {mass}")
        if summary.get("n_nngp"):
            r_sgd, r_prior = (summary[k]["pearson"] for k in ("sgd_vs_nngp", "prior_vs_nngp"))
            print(f"  NNGP: {summary['n_consistent_nngp']:,} of {summary['n_nngp']:,} samples fit S; Pearson(log) "
                  f"with P_SGD {r_sgd if r_sgd is None else round(r_sgd, 3)}, "
                  f"with P_B {r_prior if r_prior is None else round(r_prior, 3)}")
    figure = out / "sgd_vs_prior.png"
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
