"""Rare event: log P(score(theta) > 0) under the prior, far below sampling reach.

Method: adaptive multilevel splitting (subset simulation). R independent runs of N chains
each are held as one population tensor. Each level keeps the `keep` fraction of a run
with the highest scores, refills the rest by cloning survivors, and moves every chain with
MCMC that leaves the prior restricted to {score > level} invariant:
- Gaussian prior: preconditioned Crank-Nicolson in whitened coordinates,
  z' = sqrt(1 - b^2) z + b xi, accepted iff score(z') > level (pCN keeps N(0, I) exactly,
  so the restricted prior needs no density ratio);
- uniform prior: a Gaussian random-walk step folded back into the box (a symmetric
  kernel, so the uniform law is kept), accepted iff score > level.
Which coordinates a step moves (`moves`, a named cycle of step kinds): "global" moves all
at once with one step size per run; "coordinate" moves one random coordinate per chain,
with a step size per coordinate; "unit" alternates global steps with unit-block steps,
which move one random unit's parameters together (its incoming weights, bias and outgoing
weights: `Architecture.unit_blocks`, read off the slices of any architecture) with a step
size per block; "unit_only" makes unit-block steps only; "mixed" (default) alternates global
and coordinate steps; "all" cycles global, coordinate and unit. A global move must satisfy
every constraint at once, so on a class that is a product of k pieces (k sub-networks
side by side) its acceptance is a product of k and its step shrinks with k; single-coordinate
and unit moves keep large steps, and are what let chains cross between the pieces of a
non-convex level set (measured in docs/estimators.md, "Non-convex classes"). Every kind is pCN (or the folded
walk) on a subset of whitened coordinates chosen independently of the state, so each keeps
the restricted prior (tests/test_estimators.py checks it against exact samples).
When the score has an atom at the first level (e.g. the normalized margin is exactly -1
on many networks), too few chains lie strictly above it; the run then draws more exact
prior samples until N lie above, instead of keeping a handful of survivors.
Per level the log of the surviving fraction is estimated by psi(M + 1) - psi(N + 1)
(M survivors of N, psi the digamma): with independent exact samples this is exactly
unbiased for E[log P(level | previous level)] at quantile levels, so each run's log P is
(nearly) unbiased in log space and the mean over runs is the estimate. The 95% interval
is a Student-t interval over the R independent runs: it includes whatever extra variance
MCMC correlation adds. Why splitting and not one-at-a-time nested sampling, and why
keep = 0.5: see docs/estimators.md, "Rare event: subset simulation" (measured by benchmarks/bench_estimators.py).
"""
from __future__ import annotations

import math
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import special, stats
from tqdm import tqdm

from volume.estimate import Estimate
from volume.estimators.monte_carlo import LEVEL, monte_carlo_estimate
from volume.estimators.scores import Score
from volume.nets import Architecture
from volume.priors import Prior
from volume.rng import torch_generator
from volume.threads import threads_limited

TARGET_ACCEPT = 0.25
STUCK = 0.01  # mean acceptance below which the chains are declared stuck (warning)
# named cycles of step kinds: step t of a level uses cycle[t % len(cycle)]
MOVES = {"mixed": ("global", "coordinate"), "global": ("global",), "coordinate": ("coordinate",),
         "unit": ("global", "unit"), "unit_only": ("unit",), "all": ("global", "coordinate", "unit")}
MAX_SPREAD = 3.0  # run-to-run sd / ideal sd above which the runs are called trapped (unreliable)
MAX_FIRST_DRAWS = 200  # batches of N prior samples spent at most on an atom at the first level
SMALL = 2_000_000  # population elements (chains x parameters) below which one thread is faster
# ... unless scoring the population is itself big work: a score may say what one network costs
# (`flops_per_network`); above this many FLOPs per population its kernel gains from every core
# (a dense perceptron on 65,536 inputs, 2.2 MFLOP per network: 4,000 chains took 428 s on one thread
# of two; on the cube the outer sums cost 13 k operations for a dictator target, so one thread, and
# 273 k for a random one, so both threads at 4,000 chains).
SMALL_SCORE_FLOPS = 1_000_000_000


@dataclass
class SplittingResult:
    """The estimate plus what later experiments may want to look inside."""

    estimate: Estimate
    run_log_p: np.ndarray  # [R] each run's log P (or, for a run that failed, its bound)
    reached: np.ndarray  # [R] bool: the run reached {score > 0}
    levels: list[np.ndarray] = field(default_factory=list)  # per run: the levels crossed
    log_p_levels: list[np.ndarray] = field(default_factory=list)  # per run: log P(score > level)
    acceptance: list[float] = field(default_factory=list)  # mean MCMC acceptance per level
    theta: torch.Tensor | None = None  # final population in the class, [M, P] (if asked)
    run_ids: np.ndarray | None = None  # [M] independent run of each final sample
    ancestors: np.ndarray | None = None  # [M] initial chain each final sample descends from
    diagnostics: dict = field(default_factory=dict)  # spread vs ideal, ancestors, why unreliable


def _fold(z: torch.Tensor, half: float) -> torch.Tensor:
    """Reflect z into [-half, half] (repeatedly, like a billiard)."""
    y = torch.remainder(z + half, 4 * half)
    return torch.where(y > 2 * half, 4 * half - y, y) - half


def _propose(z: torch.Tensor, beta: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    xi = torch.randn(z.shape, generator=gen, dtype=z.dtype)
    b = beta.unsqueeze(1) if beta.ndim == 1 else beta  # one step per chain, or per chain and coordinate
    if kind == "gaussian":
        return torch.sqrt(1 - b * b) * z + b * xi
    half = math.sqrt(3.0)  # whitened uniform prior: U(-sqrt 3, sqrt 3), unit variance
    return _fold(z + b * half * xi, half)


def block_index(arch: Architecture) -> torch.Tensor:
    """arch.unit_blocks() as one index tensor [n_blocks, largest block], padded with P."""
    unit_blocks = arch.unit_blocks()
    blocks = torch.full((len(unit_blocks), max(map(len, unit_blocks))), arch.n_params)
    for b, index in enumerate(unit_blocks):
        blocks[b, : len(index)] = torch.from_numpy(index)
    return blocks


def _propose_at(flat: torch.Tensor, index: torch.Tensor, step: torch.Tensor, kind: str,
                gen: torch.Generator) -> torch.Tensor:
    """flat[C, P] with the coordinates index[c] of each chain c proposed anew (step per
    chain) and the rest kept: noise is drawn for the moved coordinates only. An index equal
    to P is padding (blocks of unequal size) and moves nothing."""
    P = flat.shape[1]
    real = index < P
    # padding reads a real coordinate (its noise is drawn and discarded, keeping the stream)
    moved = _propose(flat.gather(1, index.clamp(max=P - 1)), step, kind, gen)
    proposal = flat.clone()
    chain = torch.arange(flat.shape[0]).unsqueeze(1).expand_as(index)
    proposal[chain[real], index[real]] = moved[real]
    return proposal


def _ideal_var(n_levels: int, n_keep: int, N: int) -> float:
    """Variance of one run's log P if every level had independent exact samples: each
    quantile level adds Var(U_(k)) = psi'(n_keep + 1) - psi'(N + 1) (U_(k): the k-th of N
    Exp(1) order statistics). MCMC correlation only adds to it, so it floors the spread."""
    return n_levels * float(special.polygamma(1, n_keep + 1) - special.polygamma(1, N + 1))


def t_interval(values: np.ndarray, ideal_var: float) -> tuple[float, tuple[float, float]]:
    """Student-t interval over independent runs; the run-to-run variance is floored at the
    ideal variance, because with few runs the sample variance is often by chance too small
    (measured: coverage 88% without the floor on 60 exact cases)."""
    mean = float(values.mean())
    sd = math.sqrt(max(values.var(ddof=1), ideal_var))
    half = stats.t.ppf(0.5 + LEVEL / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return mean, (mean - half, mean + half)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_options(n_particles: int, n_runs: int, keep: float, n_moves: int, moves: str, max_levels: int,
                  max_evals: int) -> None:
    """The one check of splitting's options (the CLI reports its message as estimator.<key>).
    ValueError whose message starts with the bad option's name and says what is allowed."""
    if moves not in MOVES:
        raise ValueError(f"moves: one of {list(MOVES)}, got {moves!r}")
    if not _is_int(n_particles) or n_particles < 10:
        raise ValueError(f"n_particles: an integer >= 10 chains per run, got {n_particles!r}")
    if not _is_int(n_runs) or n_runs < 2:
        raise ValueError(f"n_runs: an integer >= 2 (the interval comes from independent runs), got {n_runs!r}")
    if (isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep < 1
            or round(keep * n_particles) < 1 or round(keep * n_particles) >= n_particles):
        raise ValueError(f"keep: the fraction kept per level, in (0, 1) with 1 <= keep * n_particles < "
                         f"n_particles, got {keep!r}")
    if not _is_int(n_moves) or n_moves < 1:
        raise ValueError(f"n_moves: MCMC steps per level, an integer >= 1, got {n_moves!r}")
    for name, value in (("max_levels", max_levels), ("max_evals", max_evals)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name}: a budget, an integer >= 1, got {value!r}")


def splitting(score: Score, arch: Architecture, prior: Prior, *, n_particles: int = 500, n_runs: int = 8,
              keep: float = 0.5, n_moves: int = 20, moves: str = "mixed", seed: int = 0, stream: int = 0,
              max_levels: int = 2000, max_evals: int = 10**8, final_population: bool = False, progress: bool = True,
              start: SplittingResult | None = None, within: Score | None = None) -> SplittingResult:
    """Subset simulation for log P(score > 0) under `prior`; see the module docstring.

    If a run cannot reach {score > 0} (a score stuck on a plateau, never positive, or the
    max_levels / max_evals budget spent), the result is an explicit upper bound
    (Estimate.bound == 'upper'), never log 0. With final_population, every run that
    reached the class refills and moves its chains once more inside it, giving
    n_particles samples of the prior restricted to the class per run (correlated; see
    volume.estimators.conditional for what fractions among them can and cannot say).

    Continuation inside a class D: with `start` (a finished run on D's score with
    final_population, the same n_runs and n_particles) and `within` (D's score), run r
    starts from run r's samples of the prior restricted to D, every move stays inside D,
    and the result is log P(score > 0 | D) per run (its n_evals include D's run)."""
    check_options(n_particles, n_runs, keep, n_moves, moves, max_levels, max_evals)
    _check_start(start, within, n_particles, n_runs)
    # one thread for small populations with cheap scores: their ops last microseconds (volume.threads)
    small = (n_particles * n_runs * arch.n_params < SMALL
             and n_particles * n_runs * getattr(score, "flops_per_network", 0) < SMALL_SCORE_FLOPS)
    with threads_limited(1) if small else nullcontext():
        return _splitting(score, arch, prior, n_particles, n_runs, keep, n_moves, moves, seed, stream, max_levels,
                          max_evals, final_population, progress, start, within)


def _check_start(start: SplittingResult | None, within: Score | None, n_particles: int, n_runs: int) -> None:
    if (start is None) != (within is None):
        raise ValueError("start and within: give both (a finished run on D's score and D's score) or neither")
    if start is None:
        return
    if start.theta is None or not start.reached.all():
        raise ValueError("start: every run on D must have reached D and kept its final population "
                         "(final_population=True); continue only from an estimate, not a bound")
    if start.theta.shape[0] != n_runs * n_particles:
        raise ValueError(f"start: {start.theta.shape[0]} samples, but n_runs x n_particles = {n_runs * n_particles}; "
                         "use the same n_runs and n_particles as D's run")


def _splitting(score, arch, prior, n_particles, n_runs, keep, n_moves, moves, seed, stream, max_levels, max_evals,
               final_population, progress, start=None, within=None) -> SplittingResult:
    R, N = n_runs, n_particles
    n_kill = N - round(keep * N)
    std = torch.from_numpy(prior.std(arch))
    gen = torch_generator(seed, stream)
    if start is None:
        z = prior.sample(arch, R * N, seed, stream=stream, dtype=torch.float64) / std
    else:
        z = start.theta.to(torch.float64) / std
    n_evals = 0 if start is None else start.estimate.n_evals

    def evaluate(rows: torch.Tensor) -> torch.Tensor:
        nonlocal n_evals
        n_evals += rows.shape[0]
        theta = rows * std
        if within is None:
            values = score(theta).to(torch.float64)
        else:  # outside D the score is -inf (no level accepts a move there); C is scored inside only
            inside = within(theta) > 0
            values = torch.full((rows.shape[0],), -math.inf, dtype=torch.float64)
            if inside.any():
                values[inside] = score(theta[inside]).to(torch.float64)
        if torch.isnan(values).any():
            raise ValueError("score: returned NaN for some parameters; a score must be a real number everywhere")
        return values

    s = evaluate(z).view(R, N)
    z = z.view(R, N, -1)
    ancestors = torch.arange(N).repeat(R, 1) if start is None else torch.from_numpy(start.ancestors).view(R, N)
    log_p = np.zeros(R)
    active = np.ones(R, dtype=bool)
    reached = np.zeros(R, dtype=bool)
    blocks = block_index(arch)
    beta = torch.full((R, 1 + arch.n_params + len(blocks)), 0.5, dtype=torch.float64)  # global, coordinates, blocks
    levels: list[list[float]] = [[] for _ in range(R)]
    trace: list[list[float]] = [[] for _ in range(R)]

    def draw(r: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        # offsets past the initial R x N samples, disjoint per run and batch: reproducible
        rows = prior.sample(arch, N, seed, offset=(batch + 1) * R * N + r * N, stream=stream,
                            dtype=torch.float64) / std
        return rows, evaluate(rows)

    for r in range(R if start is None else 0):  # fresh exact samples exist only for the prior itself
        _atom_at_first_level(r, z, s, N - n_kill, log_p, levels, trace, lambda batch: draw(r, batch))
    acceptance: list[float] = []
    stuck_warned = False
    bar = tqdm(desc="rare event", unit="level", disable=not progress)
    while active.any():
        level = torch.kthvalue(s, n_kill, dim=1).values.numpy()
        for r in np.flatnonzero(active):
            if level[r] >= 0:  # more than `keep` of the run already inside: last factor
                level[r] = 0.0
            alive = int((s[r] > level[r]).sum())
            # No survivor: a plateau or a score never above this level. Keep the exact
            # zero-hit upper bound for this factor, so the run ends as an explicit bound.
            log_p[r] += (special.digamma(alive + 1) - special.digamma(N + 1) if alive
                         else monte_carlo_estimate(0, N).log_p)
            levels[r].append(float(level[r]))
            trace[r].append(log_p[r])
            if level[r] == 0.0 or alive == 0:
                active[r], reached[r] = False, alive > 0
        over_budget = len(acceptance) >= max_levels or n_evals >= max_evals
        if over_budget:
            active[:] = False
        rows = np.flatnonzero(active)
        if not len(rows):
            break
        thresholds = torch.from_numpy(level[rows]).unsqueeze(1)
        z_act, s_act, anc = _refill(z[rows], s[rows], ancestors[rows], thresholds, gen)
        z_act, s_act, acc = _move(z_act, s_act, thresholds, beta, rows, prior.kind, n_moves, moves, gen, evaluate, blocks)
        z[rows], s[rows], ancestors[rows] = z_act, s_act, anc
        acceptance.append(acc)
        if acc < STUCK and not stuck_warned:
            stuck_warned = True
            warnings.warn(f"rare_event: MCMC acceptance fell to {acc:.3f} at level {level[rows].min():.3g}: chains "
                          "barely move, so levels may stall and the estimate (or bound) is unreliable. Try a "
                          "scale-free score, more n_moves or more n_particles", RuntimeWarning, stacklevel=3)
        bar.update(1)
        bar.set_postfix(level=f"{level[rows].min():.3g}", log_p=f"{log_p[rows].mean():.2f}", accept=f"{acc:.2f}")
    bar.close()
    estimate, diagnostics = _estimate(log_p, reached, levels, N, R, keep, n_moves, moves, n_evals, acceptance,
                                      [len(torch.unique(a)) for a in ancestors])
    result = SplittingResult(estimate, log_p, reached, [np.array(v) for v in levels], [np.array(v) for v in trace],
                             acceptance, diagnostics=diagnostics)
    if final_population and reached.any():
        rows = np.flatnonzero(reached)
        zero = torch.zeros(len(rows), 1, dtype=torch.float64)
        z_in, s_in, anc = _refill(z[rows], s[rows], ancestors[rows], zero, gen)
        z_in, _, _ = _move(z_in, s_in, zero, beta, rows, prior.kind, n_moves, moves, gen, evaluate, blocks)
        result.theta = (z_in * std).reshape(-1, arch.n_params)
        result.run_ids = np.repeat(rows, N)
        result.ancestors = anc.reshape(-1).numpy()
        result.estimate = replace(result.estimate, n_evals=n_evals)
    return result


def _refill(z: torch.Tensor, s: torch.Tensor, anc: torch.Tensor, thresholds: torch.Tensor,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace every chain at or below its run's level by a clone of a random survivor."""
    alive = s > thresholds
    parents = torch.multinomial(alive.to(torch.float64), s.shape[1], replacement=True, generator=gen)
    idx = torch.where(alive, torch.arange(s.shape[1]).expand_as(parents), parents)
    return (torch.gather(z, 1, idx.unsqueeze(2).expand_as(z)), torch.gather(s, 1, idx), torch.gather(anc, 1, idx))


def _atom_at_first_level(r: int, z: torch.Tensor, s: torch.Tensor, n_above: int, log_p: np.ndarray, levels: list,
                         trace: list, draw) -> None:
    """If fewer than n_above of run r's exact prior samples lie strictly above its first
    quantile level (an atom of the score there), replace the run's population by the first
    N exact prior samples above that level, drawn in batches of N (`draw(batch)` gives
    whitened samples and their scores), and count the first factor as their fraction among
    every draw. Without this, a score that is exactly -1 on most networks leaves a handful
    of survivors (or none) to clone from, and the run's first factor is a coin toss."""
    N = s.shape[1]
    level = float(torch.kthvalue(s[r], N - n_above).values)
    alive = s[r] > level
    if level >= 0 or int(alive.sum()) >= n_above:
        return
    kept_z, kept_s, n_drawn = [z[r][alive]], [s[r][alive]], N
    for batch in range(MAX_FIRST_DRAWS):
        if sum(len(v) for v in kept_s) >= N:
            break
        z_new, s_new = draw(batch)
        kept_z.append(z_new[s_new > level])
        kept_s.append(s_new[s_new > level])
        n_drawn += N
    z_above, s_above = torch.cat(kept_z), torch.cat(kept_s)
    if not len(s_above):
        return  # nothing above the atom: the main loop reports the zero-hit bound
    log_p[r] = special.digamma(len(s_above) + 1) - special.digamma(n_drawn + 1)
    levels[r].append(level)
    trace[r].append(log_p[r])
    # The first N above the level, in draw order, are exact independent restricted samples;
    # only when the draws ran out are some of them repeated (the next refill moves them).
    order = torch.arange(N) % len(s_above)
    z[r], s[r] = z_above[order], s_above[order]


def _move(z, s, thresholds, beta, rows, kind, n_moves, moves, gen, evaluate, blocks):
    """n_moves restricted-prior MCMC steps for every chain (see the module docstring for
    `moves`); adapts each run's step sizes from its own acceptance only, so runs stay
    independent. beta[:, 0] is the global step, then one step per coordinate, then one per
    unit block (`blocks`: [n_blocks, width] parameter indices, padded with P)."""
    R, N, P = z.shape
    cycle = MOVES[moves]
    accepted = 0.0
    z = z.contiguous()  # moved in place (z is the caller's own copy: a gather of its population)
    flat = z.view(R * N, P)
    for t in range(n_moves):
        step_kind = cycle[t % len(cycle)]
        if step_kind == "global":
            proposal = _propose(flat, beta[rows, 0].repeat_interleave(N), kind, gen)
        elif step_kind == "coordinate":
            # one random coordinate per chain; noise is drawn for every coordinate, which keeps
            # the random stream (and so the documented measurements) bit for bit
            first, width = 1, P
            picked = torch.randint(P, (R, N), generator=gen)
            chosen = torch.zeros(R * N, P, dtype=torch.bool).scatter_(1, picked.reshape(R * N, 1), True)
            step = beta[rows, 1 : 1 + P].unsqueeze(1).expand(R, N, P).reshape(R * N, P)
            proposal = torch.where(chosen, _propose(flat, step, kind, gen), flat)
        else:  # one random unit block per chain, noise drawn for its coordinates only
            first, width = 1 + P, blocks.shape[0]
            picked = torch.randint(width, (R, N), generator=gen)
            step = beta[rows, first : first + width].gather(1, picked).reshape(R * N)
            proposal = _propose_at(flat, blocks[picked.reshape(R * N)], step, kind, gen)
        s_new = evaluate(proposal).view(R, N)
        ok = s_new > thresholds
        accepted_rows = ok.reshape(-1)
        flat[accepted_rows] = proposal[accepted_rows]  # in place: only accepted chains are copied
        s = torch.where(ok, s_new, s)
        rate = ok.to(torch.float64).mean(1)
        if step_kind == "global":
            beta[rows, 0] = (beta[rows, 0] * torch.exp(rate - TARGET_ACCEPT)).clamp(1e-4, 1.0)
        else:  # each coordinate's (block's) step adapts to the acceptance of the chains that moved it
            n_tried = torch.zeros(R, width, dtype=torch.float64).scatter_add_(1, picked, torch.ones(R, N).double())
            n_ok = torch.zeros(R, width, dtype=torch.float64).scatter_add_(1, picked, ok.double())
            factor = torch.where(n_tried > 0, torch.exp(n_ok / n_tried.clamp(min=1) - TARGET_ACCEPT),
                                 torch.ones_like(n_ok))
            beta[rows, first : first + width] = (beta[rows, first : first + width] * factor).clamp(1e-4, 1.0)
        accepted += float(rate.mean()) / n_moves
    return z, s, accepted


def _diagnostics(log_p: np.ndarray, reached: np.ndarray, ideal_var: float, acceptance: list[float],
                 distinct_ancestors: list[int]) -> dict:
    """What can catch trapped runs, and the verdict. Runs that each fill a different piece
    of a split level set disagree far more than independent-sample runs would, so the
    run-to-run sd against the ideal sd is the main check (with 8 runs the sample sd
    itself scatters by about +-40%, hence a threshold of 3, not 1)."""
    spread = float(log_p.std(ddof=1) / math.sqrt(ideal_var)) if len(log_p) > 1 and ideal_var > 0 else 0.0
    trapped = []  # reasons the runs may not have mixed: they also void an upper bound
    if spread > MAX_SPREAD:
        trapped.append(f"runs disagree {spread:.1f}x more than independent samples would (limit {MAX_SPREAD})")
    if acceptance and min(acceptance) < STUCK:
        trapped.append(f"MCMC acceptance fell to {min(acceptance):.3f} at some level (chains stuck)")
    reasons = trapped + ([f"{int((~reached).sum())} of {len(reached)} runs never reached the class"]
                         if not reached.all() else [])
    # log mean exp of the runs: unbiased for P (not log P) in expectation; reported beside the log-mean
    log_mean_p = float(special.logsumexp(log_p) - math.log(len(log_p)))
    return {"spread_vs_ideal": spread, "ideal_sd": math.sqrt(ideal_var), "distinct_ancestors": distinct_ancestors,
            "min_acceptance": min(acceptance) if acceptance else None, "log_mean_p": log_mean_p,
            "reliable": not reasons, "trapped": bool(trapped), "reasons": reasons}


def _estimate(log_p: np.ndarray, reached: np.ndarray, levels, N: int, R: int, keep: float, n_moves: int, moves: str,
              n_evals: int, acceptance: list[float], distinct_ancestors: list[int]) -> tuple[Estimate, dict]:
    method = f"rare_event(subset simulation, {R} runs x {N} chains, keep={keep}, {n_moves} {moves} moves)"
    n_keep = round(keep * N)
    ideal_var = float(np.mean([_ideal_var(len(v), n_keep, N) for v in levels]))
    diagnostics = _diagnostics(log_p, reached, ideal_var, acceptance, distinct_ancestors)
    if reached.all():
        mean, ci = t_interval(log_p, ideal_var)
        return Estimate(mean, ci, n_evals, method, reliable=diagnostics["reliable"]), diagnostics
    # Some run never got inside. Its last level l < 0 bounds the class: P(score > 0) <=
    # P(score > l). Bound: the largest run's log P(score > l) (zero-hit bound included when
    # its last level kept no chain) plus 1.96 of its ideal (independent-sample) deviations.
    # That is only a valid bound if the runs mixed; trapped runs can sit below the truth,
    # so the bound is marked unreliable whenever the spread check fails as well.
    bounds = [log_p[r] + 1.96 * math.sqrt(_ideal_var(len(levels[r]), n_keep, N)) for r in range(R)]
    upper = min(0.0, float(max(bounds)))
    return (Estimate(upper, (-math.inf, upper), n_evals, method + ", class not reached", bound="upper",
                     reliable=not diagnostics["trapped"]), diagnostics)


def rare_event(score: Score, arch: Architecture, prior: Prior, *, seed: int = 0, **kwargs) -> Estimate:
    """log P(score(theta) > 0) for theta from the prior, with a 95% interval over independent
    runs. The one entry point later experiments call; keyword arguments as `splitting`."""
    return splitting(score, arch, prior, seed=seed, **kwargs).estimate


def monte_carlo_score(score: Score, arch: Architecture, prior: Prior, n_samples: int, seed: int,
                      stream: int = 0, batch: int = 16384, progress: bool = True) -> Estimate:
    """Plain sampling of the same event (exact Clopper-Pearson interval): the cross-check
    where both reach, and an explicit upper bound when nothing is hit."""
    hits = 0
    for start in tqdm(range(0, n_samples, batch), desc="monte carlo", disable=not progress):
        n = min(batch, n_samples - start)
        hits += int((score(prior.sample(arch, n, seed, offset=start, stream=stream)) > 0).sum())
    return monte_carlo_estimate(hits, n_samples)
