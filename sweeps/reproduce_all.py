"""Regenerate every figure of the README (docs/scale-out.md) from nothing: `python sweeps/reproduce_all.py [--quick]
[--launcher L] [--only NAME ...] [--budget B] [--publish DIR] [-- OVERRIDE ...]`. --budget and --publish are for
the counting figures (llamaizer, depth; `make figures` publishes them to docs/figures); overrides after `--`
go to every run (e.g. hydra.launcher.n_jobs=2 threads=1). Prints the time each took and where it wrote."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = sorted(p.stem.removeprefix("fig_") for p in HERE.glob("fig_*.py"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--launcher", default="basic")
    p.add_argument("--only", nargs="*", choices=FIGURES, default=FIGURES)
    p.add_argument("--out", type=Path, default=None, help="root for all figures (default figures/)")
    p.add_argument("--budget", default="default", help="counting figures: quick, default, night")
    p.add_argument("--publish", type=Path, default=None, help="counting figures: also write PNG + CSV here")
    p.add_argument("overrides", nargs="*", help="hydra overrides for every run (after --)")
    args = p.parse_args()
    timings = []
    for name in args.only:
        cmd = [sys.executable, str(HERE / f"fig_{name}.py"), "--launcher", args.launcher, "--budget", args.budget]
        if args.quick:
            cmd.append("--quick")
        if args.out:
            cmd += ["--out", str(args.out / name)]
        if args.publish:
            cmd += ["--publish", str(args.publish)]
        cmd += args.overrides
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        timings.append((name, time.perf_counter() - start))
    print("\n".join(f"{name}: {seconds:.1f} s" for name, seconds in timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
