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
