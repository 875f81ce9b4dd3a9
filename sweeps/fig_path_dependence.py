"""Figure: path dependence of minibatch training against width (experiment path_dependence):
the probability that two runs agree on held-out inputs (independent runs; same init with
another data order; the prior's posterior for reference) and the distance between P_SGD and
P_B, each with intervals, widths 8..1024 on a log axis.

Full size: 2,000 runs per width, 8 widths (13 min measured with one thread). --quick: n = 5, two
widths, tens of runs (seconds). The experiment draws the figure; this script runs (or reuses)
it, copies the figure and prints the numbers behind it."""
from __future__ import annotations

from common import width_sweep_figure

QUICK = ["n_samples=60", "experiment.n_prior=4000", "task.n=5", "experiment.n_train=12", "experiment.split_seed=3",
         "experiment.widths=[4,32]", "experiment.n_inits=4", "experiment.runs_per_init=3", "experiment.n_boot=20",
         "trainer.max_steps=300"]

if __name__ == "__main__":
    width_sweep_figure(__doc__, "path_dependence", QUICK)
