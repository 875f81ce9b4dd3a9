"""Figure: mode connectivity modulo permutation symmetry against width (experiment
mode_connectivity): the mean loss barrier on the straight path between two independently
trained networks, as trained and after weight matching of hidden units, with bootstrap
intervals; the fraction of pairs below the barrier threshold; the mean loss along the path
at the smallest and largest width.

Full size: 100 pairs per width, widths 8..512 (about 1 min on one core). --quick: n = 5, two
widths, ten pairs (seconds). The experiment draws the figure; this script runs (or reuses)
it, copies the figure and prints the numbers behind it."""
from __future__ import annotations

from pathlib import Path

from common import width_sweep_figure

QUICK = ["task.n=5", "experiment.n_train=12", "experiment.split_seed=3", "experiment.widths=[4,32]",
         "experiment.n_pairs=10", "experiment.n_boot=200", "trainer.max_steps=300"]


def report(job: Path, summary: dict) -> None:
    print(f"threshold for 'connected': loss barrier <= {summary['threshold']:.4g}")
    for line in (job / "curves.csv").read_text().splitlines():
        print("curve:", line)


if __name__ == "__main__":
    width_sweep_figure(__doc__, "mode_connectivity", QUICK, report)
