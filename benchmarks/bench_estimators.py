"""Rare-event estimator on exact cases with log P from about -10 to -27 on 16 inputs: error
against the exact value, interval width, evaluations and seconds, and how the cost grows
with -log P. Baseline: plain Monte Carlo, whose cost for the same relative error is
(1/P) (1.96 / error)^2 evaluations (computed, not run: at P = 1e-12 it would take years).
Also the choice of the kept fraction per level (keep), at equal settings otherwise."""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import brentq

from volume.estimators.ground_truth import (ScoredCase, hadamard_case, hadamard_union_case, log_integral_gaussian,
                                            uniform_constant_case, xor_copies_case)
from volume.estimators.rare_event import rare_event
from volume.estimators.scores import target_margin_score

TARGETS = (-10.0, -15.0, -20.0, -27.0)


def hadamard_at(log_p: float):
    """Hadamard perceptron case (16 inputs, all-true target) whose margin puts log P at log_p."""
    signs = np.ones(16)
    margin = brentq(lambda k: log_integral_gaussian(signs, 1.0, 1.0, k) - log_p, 0.0, 30.0, xtol=1e-10)
    return hadamard_case(16, np.ones(16, bool), margin=margin)


def uniform_at(log_p: float):
    """Uniform-prior constant function on {-1,+1}^4 (16 inputs): log P falls as 4 log sigma_b."""
    sb = math.exp(brentq(lambda ls: uniform_constant_case(4, sigma_b=math.exp(ls)).log_p - log_p, -20.0, 0.0))
    return uniform_constant_case(4, sigma_b=sb)


def measure(case, seed: int = 0, **options) -> dict:
    score = case.score if isinstance(case, ScoredCase) else target_margin_score(case.arch, case.x, case.target,
                                                                                   margin=case.margin)
    start = time.perf_counter()
    est = rare_event(score, case.arch, case.prior, seed=seed, progress=False, **options)
    seconds = time.perf_counter() - start
    error = est.log_p - case.log_p
    mc_evals = math.exp(-case.log_p) * (1.96 / max(abs(error), 0.05)) ** 2
    moves = f" [{options['moves']}]" if "moves" in options else ""
    name = case.name + moves + ("" if est.reliable else " UNRELIABLE")
    return {"case": name, "exact": case.log_p, "error": error, "width": est.ci[1] - est.ci[0],
            "covered": est.ci[0] <= case.log_p <= est.ci[1], "evals": est.n_evals, "seconds": seconds,
            "mc_ratio": mc_evals / est.n_evals}


def table(rows: list[dict]) -> None:
    print(f"{'case':48s} {'exact':>8s} {'error':>7s} {'width':>6s} {'cover':>5s} {'evals':>10s} {'s':>6s} "
          f"{'evals/nat':>9s} {'MC/this':>9s}")
    for r in rows:
        print(f"{r['case']:48s} {r['exact']:8.2f} {r['error']:7.3f} {r['width']:6.3f} {str(r['covered']):>5s} "
              f"{r['evals']:10,d} {r['seconds']:6.1f} {r['evals'] / -r['exact']:9,.0f} {r['mc_ratio']:9.1e}",
              flush=True)


def main(quick: bool = False) -> None:
    targets = TARGETS[::3] if quick else TARGETS
    options = {"n_particles": 250 if quick else 500, "n_runs": 8, "n_moves": 20, "keep": 0.5}
    print(f"rare_event (subset simulation) {options}")
    rows = [measure(make(t), seed=i, **options) for i, t in enumerate(targets)
            for make in (hadamard_at, uniform_at)]
    table(rows)
    for make in (hadamard_at, uniform_at):
        sub = [r for r in rows if r["case"].startswith(make(-10.0).name[:8])]
        if len(sub) > 1:
            slope = np.polyfit([-r["exact"] for r in sub], [r["evals"] for r in sub], 1)[0]
            print(f"{sub[0]['case'][:20]}: cost grows by {slope:,.0f} evals per nat of -log P "
                  f"(evals/nat from {sub[0]['evals'] / -sub[0]['exact']:,.0f} to {sub[-1]['evals'] / -sub[-1]['exact']:,.0f})")
    non_convex(quick)
    if quick:
        return
    print("\nkept fraction per level, hadamard case at log P = -20, 5 seeds each (same n_particles, n_moves):")
    case = hadamard_at(-20.0)
    for keep in (0.1, 0.5, 0.9):
        runs = [measure(case, seed=s, **{**options, "keep": keep}) for s in range(5)]
        rmse = math.sqrt(np.mean([r["error"] ** 2 for r in runs]))
        evals = np.mean([r["evals"] for r in runs])
        print(f"keep={keep}: rmse {rmse:.3f} nats, mean width {np.mean([r['width'] for r in runs]):.3f}, "
              f"{evals:,.0f} evals, {np.mean([r['seconds'] for r in runs]):.1f} s, "
              f"rmse^2 x evals = {rmse**2 * evals:,.0f} (lower is better)", flush=True)


def non_convex(quick: bool) -> None:
    """Before/after on the non-convex suite: the old global pCN moves against the mixed
    (global + coordinate), unit (global + unit-block) and unit-block-only moves, at the same
    budget (an upper bound's error is its distance to the truth)."""
    rng = np.random.default_rng(7)
    targets = [np.ones(64, bool) for _ in range(3)]
    for target, n_false in zip(targets, (5, 6, 7)):  # cones of log P -20.0, -22.3, -24.4
        target[rng.choice(64, n_false, replace=False)] = False
    union = hadamard_union_case(64, targets)
    cases = [xor_copies_case(3)] if quick else [xor_copies_case(3), xor_copies_case(4), union]
    options = {"n_particles": 250, "n_runs": 8, "n_moves": 40}
    kinds = ("global", "mixed", "unit", "unit_only")
    print(f"\nnon-convex suite, before (moves=global) / after (moves={', '.join(kinds[1:])}), {options}:")
    table([measure(case, seed=11, moves=moves, **options) for case in cases for moves in kinds])
