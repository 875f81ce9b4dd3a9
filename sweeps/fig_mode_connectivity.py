"""Figure: mode connectivity modulo permutation symmetry against width (experiment
mode_connectivity): the mean loss barrier on the straight path between two independently
trained networks, as trained and after weight matching of hidden units, with bootstrap
intervals; the fraction of pairs below the barrier threshold; the mean loss along the path
at the smallest and largest width.

Full size: 100 pairs per width, widths 8..512 (about 1 min on one core). --quick: n = 5, two
widths, ten pairs (seconds). The experiment draws the figure; this script runs (or reuses)
it, copies the figure and prints the numbers behind it."""
from __future__ import annotations

import shutil
import time

from common import ROOT, load, parser, run_sweep

QUICK = ["task.n=5", "experiment.n_train=12", "experiment.split_seed=3", "experiment.widths=[4,32]",
         "experiment.n_pairs=10", "experiment.n_boot=200", "trainer.max_steps=300"]


def main() -> None:
    args = parser(__doc__).parse_args()
    out = args.out or ROOT / "figures" / "mode_connectivity"
    start = time.perf_counter()
    overrides = ["experiment=mode_connectivity", *(QUICK if args.quick else [])]
    job = run_sweep(out / "runs", overrides, args.launcher, args.launcher_overrides)[0]
    summary = load(job)["summary"]
    print(f"threshold for 'connected': loss barrier <= {summary['threshold']:.4g}")
    for row in summary["widths"]:
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    for line in (job / "curves.csv").read_text().splitlines():
        print("curve:", line)
    figure = out / "mode_connectivity.png"
    shutil.copyfile(job / "mode_connectivity.png", figure)
    print(f"wrote {figure} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
