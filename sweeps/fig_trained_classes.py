"""Figure: trained networks by circuit class, next to the prior's P(class | target).

Runs (or reuses) four jobs: the prior's class volumes (experiment=llamaizer at m = 2
distractor bits, experiment=depth at L = 4, block width 4, all five classes) and the trained
populations on the same model, prior and task (experiment=trained_classes with task.n=6,
10^4 runs; experiment=trained_classes_depth, 10^4 runs), each pointed at its prior run.
trained_classes.png: one panel per task, log10 P_SGD(class | target) with exact intervals
against the prior's interval. Prints every number. --quick: tiny models and budgets.
Full size took 42 min with threads=1 on a loaded 2-core machine: llamaizer m = 2 23 min, depth 9 min,
training 2 + 25 min (the residual MLPs train through autograd)."""
from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common import ROOT, load, parser, run_sweep  # noqa: E402
from volume.experiments.trained_classes import class_panel  # noqa: E402

LLAMA = ["task.n=6"]
DEPTH: list[str] = []
QUICK_LLAMA = ["task.target=and", "task.target_vars=[1,2]", "task.n=4", "model.hidden=[6,6]"]
QUICK_PRIOR = ["estimator.n_particles=30", "estimator.n_runs=3", "estimator.n_moves=2", "estimator.max_levels=30"]
QUICK_TRAINED = ["n_samples=60", "trainer.max_steps=600", "experiment.basin_per_class=1",
                 "experiment.basin_directions=20"]


def main() -> None:
    args = parser(__doc__).parse_args()
    out = args.out or ROOT / "figures" / "trained_classes"
    start = time.perf_counter()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (name, prior_exp, trained_exp, task) in zip(axes, (
            ("llama", "llamaizer", "trained_classes", QUICK_LLAMA if args.quick else LLAMA),
            ("depth", "depth", "trained_classes_depth", DEPTH))):
        prior_extra = (QUICK_PRIOR + (["experiment.n_classes_sampled=2", "experiment.controls=false"]
                                      if name == "llama" else [])) if args.quick else []
        prior_job, = run_sweep(out / f"runs_prior_{name}", [f"experiment={prior_exp}", *task, *prior_extra],
                               args.launcher, args.launcher_overrides)
        trained_job, = run_sweep(out / f"runs_trained_{name}", [f"experiment={trained_exp}", *task,
                                                          f"experiment.prior_run={prior_job}",
                                                          *(QUICK_TRAINED if args.quick else [])],
                                 args.launcher, args.launcher_overrides)
        summary = load(trained_job)["summary"]
        frame = pd.read_csv(trained_job / "classes.csv")
        frame["prior_meaning"] = [m if isinstance(m, str) else "" for m in frame["prior_meaning"]]
        print(f"\n{name}: {summary['n_fitted']:,} of {summary['n_runs']:,} trained networks fit; prior run {prior_job}")
        for _, row in frame.iterrows():
            prior = (f"[{row['prior_low'] / math.log(10):.2f}, {row['prior_high'] / math.log(10):.2f}] "
                     f"{row['prior_meaning']}" if pd.notna(row["prior_high"]) else row["prior_meaning"] or "not measured")
            print(f"  {row['class']:>14}: {row['count']:>6,} runs, log10 P_SGD = {row['log_p_sgd'] / math.log(10):.2f} "
                  f"[{row['ci_low_sgd'] / math.log(10):.2f}, {row['ci_high_sgd'] / math.log(10):.2f}]; "
                  f"log10 P_prior {prior}")
        class_panel(ax, frame, f"{name}: {summary['n_fitted']:,} trained networks that compute the target")
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / "trained_classes.png", dpi=120)
    print(f"\nwrote {out / 'trained_classes.png'} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
