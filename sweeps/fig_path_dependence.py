"""Figure: path dependence of minibatch training against width (experiment path_dependence):
the probability that two runs agree on held-out inputs (independent runs; same init with
another data order; the prior's posterior for reference) and the distance between P_SGD and
P_B, each with intervals, widths 8..1024 on a log axis.

Full size: 2,000 runs per width, 8 widths (about 30 min on 2 cores). --quick: n = 5, two
widths, tens of runs (seconds). The experiment draws the figure; this script runs (or reuses)
it, copies the figure and prints the numbers behind it."""
from __future__ import annotations

import shutil
import time

from common import ROOT, load, parser, run_sweep

QUICK = ["n_samples=60", "experiment.n_prior=4000", "task.n=5", "experiment.n_train=12", "experiment.split_seed=3",
         "experiment.widths=[4,32]", "experiment.n_inits=4", "experiment.runs_per_init=3", "experiment.n_boot=20",
         "trainer.max_steps=300"]


def main() -> None:
    args = parser(__doc__).parse_args()
    out = args.out or ROOT / "figures" / "path_dependence"
    start = time.perf_counter()
    overrides = ["experiment=path_dependence", *(QUICK if args.quick else [])]
    job = run_sweep(out / "runs", overrides, args.launcher, args.launcher_overrides)[0]
    for row in load(job)["summary"]["widths"]:
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    figure = out / "path_dependence.png"
    shutil.copyfile(job / "path_dependence.png", figure)
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
