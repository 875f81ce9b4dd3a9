"""`python sweeps/reproduce_all.py --quick --only NAME` regenerates each figure end to end
(one test per figure script, so `-k depth` runs one)."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPTS = sorted(p.stem.removeprefix("fig_") for p in (ROOT / "sweeps").glob("fig_*.py"))
# Lines each script must print besides its timing line (the numbers behind a panel).
PRINTS = {"depth": ["tau = 0.3, L = 4", "tau = 0.5, L = 4", "tau = 0.4:   serial"],
          "llamaizer": ["P(some deep llama | target) in [max_h", "cross-check sum_h P(h) E[1/N | h]",
                        "width: deep -log2 sum_h P(h | target)"]}


@pytest.mark.parametrize("name", SCRIPTS)
def test_reproduce_quick(tmp_path, name):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "sweeps/reproduce_all.py", "--quick", "--only", name, "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The figure sits in its own folder; its runs (and their per-run figures) below runs*/.
    figures = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")
               if not any(part.startswith("runs") for part in p.relative_to(tmp_path).parts)]
    assert figures == [f"{name}/{name}.png"]
    assert f"{name}:" in proc.stdout  # its timing line
    for line in PRINTS.get(name, []):
        assert line in proc.stdout, line


def test_llamaizer_slope_bound_from_an_estimate_to_later_upper_bounds():
    sys.path.insert(0, str(ROOT / "sweeps"))
    from fig_llamaizer import slope_bound

    estimate = {"log_p": -34.0, "ci": [-43.0, -25.0], "bound": None}
    loose, tight = {"log_p": -60.0, "ci": [None, -60.0], "bound": "upper"}, \
        {"log_p": -200.0, "ci": [None, -200.0], "bound": "upper"}
    assert slope_bound([(2.0, estimate), (5.0, loose), (11.0, tight)]) == ((-200.0 + 43.0) / 9.0, 2.0, 11.0)
    assert slope_bound([(5.0, loose), (11.0, tight)]) is None  # no estimate to start from
    assert slope_bound([(2.0, estimate), (1.0, loose)]) is None  # a bound only counts beyond the estimate
