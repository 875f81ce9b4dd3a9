"""Issue 13's product bar over fresh seeds: on k copies of a 2-2-1 XOR sub-network (exact
log P = k log p), the joint at k = 5, 6 and the conditional P(all k | first j) at (k, j) =
(5, 2), (6, 3), 8 runs x 250 chains, each seed a fresh random stream. Prints and writes one row
per case (error against the truth, interval, reliable, evaluations, seconds) to
OUT/xor_seeds.csv after every case, so an interrupted sweep resumes where it stopped, and
OUT/xor_seeds.png (error with its 95% interval per seed, the +-0.5 nat bar shaded).

    python sweeps/xor_seeds.py --moves mixed --n-moves 160 --seeds 201 202 203
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from volume import results
from volume.estimators.conditional import conditional
from volume.estimators.ground_truth import XOR_FACTOR_LOG_P, xor_copies_case, xor_first_copies_score
from volume.estimators.rare_event import MOVES, splitting

ROOT = Path(__file__).resolve().parent.parent
CASES = ((5, 0), (6, 0), (5, 2), (6, 3))  # (k, j): j = 0 is the joint, else P(all k | first j)


def measure(k: int, j: int, seed: int, moves: str, n_moves: int) -> dict:
    case = xor_copies_case(k)
    options = dict(seed=seed, n_particles=250, n_runs=8, n_moves=n_moves, moves=moves, progress=False)
    start = time.perf_counter()
    if j == 0:
        est, exact = splitting(case.score, case.arch, case.prior, **options).estimate, case.log_p
    else:
        est = conditional(case.score, xor_first_copies_score(case.arch, j), case.arch, case.prior, population=False,
                          **options).estimate
        exact = (k - j) * XOR_FACTOR_LOG_P
    return {"moves": moves, "n_moves": n_moves, "seed": seed, "k": k, "j": j, "exact": exact, "log_p": est.log_p,
            "ci_low": est.ci[0], "ci_high": est.ci[1], "error": est.log_p - exact, "bound": est.bound or "",
            "reliable": est.reliable, "covered": est.bound is None and est.ci[0] <= exact <= est.ci[1],
            "n_evals": est.n_evals, "seconds": time.perf_counter() - start}


def plot(frame: pd.DataFrame, path: Path) -> None:
    groups = frame.groupby(["moves", "n_moves", "k", "j"], sort=False)
    fig, ax = results.new_figure(figsize=(max(6.0, 1.2 * groups.ngroups), 3.5))
    ax.axhspan(-0.5, 0.5, color="0.9")
    labels = []
    for c, ((moves, n_moves, k, j), part) in enumerate(groups):
        x = c + 0.6 * (part["seed"].rank(method="first") - 1) / max(len(part), 1)
        ax.errorbar(x, part["error"], [part["error"] - part["ci_low"] + part["exact"],
                                       part["ci_high"] - part["exact"] - part["error"]], fmt="o", ms=4)
        ax.plot(x[~part["reliable"]], part["error"][~part["reliable"]], "o", mfc="none", mec="red", ms=9)
        labels.append(f"k = {k}" + (f" | first {j}" if j else ", joint") + f"\n{moves} x {n_moves}")
    ax.set_xticks([c + 0.3 for c in range(len(labels))], labels, fontsize=7)
    ax.axhline(0, color="k", lw=0.5)
    results.finish_figure(fig, path, ax, "case (one point per seed)", "estimate - exact log P (nats)",
                          "XOR copies, 8 x 250 chains (red ring: unreliable)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--moves", choices=list(MOVES), default="mixed")
    p.add_argument("--n-moves", type=int, default=160)
    p.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203])
    p.add_argument("--out", type=Path, default=ROOT / "figures" / "xor_seeds")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "xor_seeds.csv"
    rows = pd.read_csv(csv, dtype={"bound": str}).fillna({"bound": ""}).to_dict("records") if csv.exists() else []
    done = {(r["moves"], r["n_moves"], r["seed"], r["k"], r["j"]) for r in rows}
    for seed in args.seeds:
        for k, j in CASES:
            if (args.moves, args.n_moves, seed, k, j) in done:
                continue
            rows.append(measure(k, j, seed, args.moves, args.n_moves))
            results.write_csv(csv, pd.DataFrame(rows))
            r = rows[-1]
            print(f"seed {seed} k = {k} j = {j}: error {r['error']:+.3f} [{r['ci_low'] - r['exact']:+.2f}, "
                  f"{r['ci_high'] - r['exact']:+.2f}], reliable {r['reliable']}, {r['n_evals']:,} evaluations, "
                  f"{r['seconds']:.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    plot(frame, args.out / "xor_seeds.png")
    print(frame.groupby(["moves", "n_moves", "k", "j"])[["error", "covered", "reliable", "n_evals", "seconds"]]
          .agg(["mean", "min", "max"]).round(3).to_string())


if __name__ == "__main__":
    main()
