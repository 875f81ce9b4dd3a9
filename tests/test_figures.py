"""`python sweeps/reproduce_all.py --quick` regenerates every figure end to end."""
import os
import subprocess
import sys

from conftest import ROOT


def test_reproduce_all_quick(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "sweeps/reproduce_all.py", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Each script's figure sits in its own folder; its runs (and their per-run figures) below runs*/.
    figures = sorted(p.name for p in tmp_path.rglob("*.png")
                     if not any(part.startswith("runs") for part in p.relative_to(tmp_path).parts))
    scripts = sorted(p.stem.removeprefix("fig_") + ".png" for p in (ROOT / "sweeps").glob("fig_*.py"))
    assert figures == scripts
    for script in scripts:
        assert f"{script.removesuffix('.png')}:" in proc.stdout  # its timing line
