"""Rare-event, conditional and basin estimators against exact values (volume.estimators.ground_truth),
plus the checks of the exact values themselves by independent means. Fast by default; the
>= 50-case coverage run and the 7-40-40-1 cross-check are @pytest.mark.slow."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from tests.conftest import make_cfg
from volume.errors import ConfigError
from volume.estimators.basin import basin
from volume.estimators.conditional import DISCONNECTED_WARNING, conditional
from volume.estimators.ground_truth import (XOR, XOR_FACTOR_LOG_P, XOR_FACTOR_SE, hadamard, hadamard_case,
                                            hadamard_union_case, measure_xor_factor, uniform_constant_case,
                                            xor_copies_case, xor_first_copies_score)
from volume.estimators.rare_event import MOVES, _move, block_index, monte_carlo_score, rare_event, splitting
from volume.estimators.scores import min_score, target_margin_score
from volume.nets import MLP, Composite, ResidualMLP
from volume.priors import Prior
from volume.tasks import boolean_task

FAST = dict(n_particles=250, n_runs=8, n_moves=20, progress=False)
HALF = np.array([True] * 8 + [False] * 8)


XOR_X_FLOAT = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])


def score_of(case):
    return target_margin_score(case.arch, case.x, case.target, margin=case.margin)


def covers(estimate, exact):
    return estimate.ci[0] <= exact <= estimate.ci[1]


# --- the exact values, checked by independent means -------------------------------------------

def test_hadamard_rows_orthogonal():
    h = hadamard(16)
    assert np.array_equal(h @ h.T, 16 * np.eye(16))


def test_hadamard_quadrature_matches_adaptive_quadrature():
    for margin, target in [(0.0, HALF), (0.5, HALF), (0.3, np.ones(16, bool))]:
        case = hadamard_case(16, target, sigma_b=0.7, margin=margin)
        n_pos = int(target.sum())
        tau = 1.0
        f = lambda b: (stats.norm.pdf(b, scale=0.7) * stats.norm.sf((margin - b) / tau) ** n_pos
                       * stats.norm.sf((margin + b) / tau) ** (16 - n_pos))
        value, _ = integrate.quad(f, -12, 12, epsabs=0, epsrel=1e-12, points=[0.0], limit=200)
        assert case.log_p == pytest.approx(math.log(value), abs=1e-8)


def test_exact_values_match_sampling_where_sampling_reaches():
    for case in [hadamard_case(4, np.array([1, 0, 1, 1], bool)), uniform_constant_case(3, sigma_b=0.8)]:
        est = monte_carlo_score(score_of(case), case.arch, case.prior, 200_000, seed=5, progress=False)
        assert covers(est, case.log_p), (case.name, case.log_p, est)


def test_ground_truth_spans_1e_minus_1_to_below_1e_minus_15():
    values = [hadamard_case(4, np.ones(4, bool), sigma_b=2.0).log_p, hadamard_case(16, HALF, margin=1.5).log_p,
              uniform_constant_case(4, sigma_b=0.01).log_p]
    assert max(values) > math.log(0.1) and min(values) < math.log(1e-15)
    assert all(np.isfinite(values))


# --- rare event -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", [hadamard_case(16, HALF), hadamard_case(16, HALF, margin=1.0),
                                  uniform_constant_case(4, sigma_b=0.05)], ids=lambda c: c.name)
def test_rare_event_interval_covers_exact(case):
    est = rare_event(score_of(case), case.arch, case.prior, seed=3, **FAST)
    assert est.bound is None and covers(est, case.log_p), (case.name, case.log_p, est)
    assert abs(est.log_p - case.log_p) < 0.5 and est.ci[1] - est.ci[0] < 1.2
    assert est.n_evals > 0


def test_rare_event_agrees_with_monte_carlo_on_an_mlp():
    task = boolean_task(4, "pm1", "and")
    arch, prior = MLP([4, 8, 1]), Prior()
    score = target_margin_score(arch, task.x, task.target)
    mc = monte_carlo_score(score, arch, prior, 100_000, seed=0, progress=False)
    re = rare_event(score, arch, prior, seed=1, **FAST)
    assert -8 < mc.log_p < -4  # the regime where both reach
    gap = abs(re.log_p - mc.log_p)
    assert gap < 1.96 * math.hypot((re.ci[1] - re.ci[0]) / 3.92, (mc.ci[1] - mc.ci[0]) / 3.92) + 0.05


def test_rare_event_is_reproducible_and_seeded():
    case = hadamard_case(8, np.array([1, 0, 0, 1, 1, 0, 1, 0], bool), margin=0.3)
    a = splitting(score_of(case), case.arch, case.prior, seed=7, **FAST)
    b = splitting(score_of(case), case.arch, case.prior, seed=7, **FAST)
    c = splitting(score_of(case), case.arch, case.prior, seed=8, **FAST)
    assert a.estimate == b.estimate and np.array_equal(a.run_log_p, b.run_log_p)
    assert c.estimate.log_p != a.estimate.log_p


def test_uniform_prior_moves_stay_in_the_box_and_in_the_class():
    case = uniform_constant_case(3, sigma_b=0.3)
    res = splitting(score_of(case), case.arch, case.prior, seed=0, final_population=True, **FAST)
    half = torch.from_numpy(case.prior.std(case.arch) * math.sqrt(3))
    assert bool((res.theta.abs() <= half).all())
    assert bool((score_of(case)(res.theta) > 0).all())
    assert res.theta.shape == (8 * 250, case.arch.n_params) and res.run_ids.shape == res.ancestors.shape == (2000,)


def test_score_never_positive_gives_explicit_upper_bound():
    arch, prior = MLP([2, 1]), Prior()
    est = rare_event(lambda theta: -1.0 - theta[:, 0].abs().to(torch.float64), arch, prior, seed=0,
                     max_levels=30, **FAST)
    assert est.bound == "upper" and math.isfinite(est.log_p) and est.ci[0] == -math.inf
    plateau = rare_event(lambda theta: torch.full((theta.shape[0],), -1.0, dtype=torch.float64), arch, prior,
                         seed=0, **FAST)
    assert plateau.bound == "upper" and math.isfinite(plateau.log_p) and plateau.log_p < 0


def test_bad_input_is_rejected_clearly():
    arch = MLP([2, 1])
    x = boolean_task(2, "pm1").x
    with pytest.raises(ValueError, match="one label per input, 4"):
        target_margin_score(arch, x, np.ones(3, bool))
    with pytest.raises(ValueError, match="needs a target"):
        target_margin_score(arch, x, None)
    with pytest.raises(ValueError, match="n_runs"):
        rare_event(lambda t: t[:, 0], arch, Prior(), n_runs=1)
    with pytest.raises(ValueError, match="NaN"):
        rare_event(lambda t: torch.full((t.shape[0],), math.nan, dtype=torch.float64), arch, Prior(), **FAST)


def test_min_score_is_the_intersection():
    theta = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    s = min_score(lambda t: t[:, 0], lambda t: t[:, 1])(theta)
    assert torch.equal(s > 0, (theta[:, 0] > 0) & (theta[:, 1] > 0))


# --- conditional ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["continued", "independent"])
def test_conditional_covers_exact_ratio_and_returns_population(method):
    target = np.array([1, 0, 1, 1, 0, 0, 1, 0], bool)
    d_case, c_case = hadamard_case(8, target), hadamard_case(8, target, margin=0.6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = conditional(score_of(c_case), score_of(d_case), d_case.arch, d_case.prior, seed=2, method=method,
                          **FAST)
    exact = c_case.log_p - d_case.log_p
    assert covers(res.estimate, exact), (exact, res.estimate)
    assert covers(res.joint, c_case.log_p), (c_case.log_p, res.joint)
    if method == "independent":
        assert res.estimate.n_evals == res.joint.n_evals + res.given.n_evals
    else:  # the continuation's count includes the run on D it started from
        assert res.estimate.n_evals == res.joint.n_evals > res.given.n_evals
    assert any(DISCONNECTED_WARNING in str(w.message) for w in caught)
    pop = res.population
    assert bool((score_of(d_case)(pop.theta) > 0).all())
    assert len(np.unique(pop.run_ids)) == 8 and pop.ancestors.max() < 250
    assert 0 < res.fraction_in_class < 0.2


def test_conditional_continued_inside_a_product_of_multimodal_pieces():
    # P(both copies XOR | first copy XOR) = p: the continuation starts inside D and never leaves it.
    case = xor_copies_case(2)
    first = target_margin_score(case.arch, XOR_X_FLOAT, XOR, output=0)
    given = splitting(first, case.arch, case.prior, seed=5, n_particles=200, n_runs=8, n_moves=40,
                      final_population=True, progress=False)
    calls = []

    def watched(theta):  # C is scored only on networks inside D; the rest are rejected unscored
        assert bool((first(theta) > 0).all())
        calls.append(theta)
        return case.score(theta)

    proposed = []

    def first_watched(theta):  # D is scored on every network proposed
        proposed.append(theta)
        return first(theta)

    inside = splitting(watched, case.arch, case.prior, seed=5, stream=3, n_particles=200, n_runs=8, n_moves=40,
                       start=given, within=first_watched, final_population=True, progress=False)
    est = inside.estimate
    assert est.bound is None and covers(est, XOR_FACTOR_LOG_P), (XOR_FACTOR_LOG_P, est, inside.diagnostics)
    assert abs(est.log_p - XOR_FACTOR_LOG_P) < 0.5
    assert bool((first(inside.theta) > 0).all()) and bool((case.score(inside.theta) > 0).all())
    assert est.n_evals == given.estimate.n_evals + sum(len(t) for t in proposed)
    assert 0 < sum(len(t) for t in calls) < sum(len(t) for t in proposed)
    res = conditional(case.score, first, case.arch, case.prior, seed=5, n_particles=200, n_runs=8, n_moves=40,
                      progress=False, population=False)
    assert covers(res.estimate, XOR_FACTOR_LOG_P) and covers(res.joint, case.log_p), (res.estimate, res.joint)


def test_continuation_that_never_reaches_c_is_an_upper_bound():
    case = hadamard_case(8, np.ones(8, bool))
    never = lambda theta: torch.full((theta.shape[0],), -1.0, dtype=torch.float64)  # noqa: E731
    res = conditional(never, score_of(case), case.arch, case.prior, seed=0, population=False, **FAST)
    assert res.estimate.bound == res.joint.bound == "upper" and res.estimate.log_p < 0
    # P(C and D) <= (bound on P(C | D)) x (upper end of P(D))
    assert res.joint.log_p == pytest.approx(res.estimate.log_p + res.given.ci[1])


def test_continuation_needs_a_finished_run_on_d():
    case = hadamard_case(8, np.ones(8, bool))
    score = score_of(case)
    no_population = splitting(score, case.arch, case.prior, seed=0, **FAST)
    with pytest.raises(ValueError, match="start and within"):
        splitting(score, case.arch, case.prior, start=no_population, **FAST)
    with pytest.raises(ValueError, match="final_population"):
        splitting(score, case.arch, case.prior, start=no_population, within=score, **FAST)
    given = splitting(score, case.arch, case.prior, seed=0, final_population=True, **FAST)
    with pytest.raises(ValueError, match="same n_runs and n_particles"):
        splitting(score, case.arch, case.prior, start=given, within=score, **{**FAST, "n_particles": 100})
    with pytest.raises(ValueError, match="method"):
        conditional(score, score, case.arch, case.prior, method="ratio", **FAST)


# --- basin ----------------------------------------------------------------------------------

def test_basin_of_a_convex_class_approaches_its_exact_volume():
    case = hadamard_case(4, np.array([1, 0, 1, 1], bool))
    score = score_of(case)
    theta = case.prior.sample(case.arch, 1000, 3)
    star = theta[(score(theta) > 0).nonzero()[0, 0]]
    res = basin(lambda t: -score(t), star, case.arch, case.prior, 0.0, n_directions=3000, progress=False)
    assert res.estimate.bound == "lower"
    assert abs(res.estimate.log_p - case.log_p) < 0.15, (case.log_p, res.estimate)


def test_basin_measures_only_the_connected_piece():
    arch, prior = MLP([3, 1]), Prior()
    s0 = prior.std(arch)[0]
    # Region {|z_1| > 1}: two half-spaces. From z_1 = 2 only {z_1 > 1} is reachable.
    loss = lambda t: 1.0 - t[:, 0].to(torch.float64).abs() / s0
    res = basin(loss, torch.tensor([2 * s0, 0.0, 0.0, 0.0]), arch, prior, 0.0, n_directions=2000,
                progress=False)
    assert res.estimate.log_p == pytest.approx(math.log(stats.norm.sf(1.0)), abs=0.05)
    with pytest.raises(ValueError, match="inside its basin"):
        basin(loss, torch.zeros(4), arch, prior, 0.0, progress=False)


# --- the experiment -------------------------------------------------------------------------

def test_experiment_writes_estimate_and_figure(tmp_path):
    from volume.__main__ import run

    cfg = make_cfg("experiment=rare_event", "task.target=and", "estimator.n_particles=100",
                   "estimator.n_moves=5", "estimator.n_runs=4")
    run(cfg, tmp_path)
    stored = json.loads((tmp_path / "results.json").read_text())
    est = stored["estimate"]
    assert stored["summary"]["estimate"] == est
    assert est["ci"][0] < est["log_p"] < est["ci"][1] < 0 and est["n_evals"] > 0 and "subset" in est["method"]
    assert (tmp_path / "levels.png").stat().st_size > 0


@pytest.mark.parametrize("override, key", [("estimator=basin", "estimator"), ("task.target=null", "task.target"),
                                           ("estimator.keep=1.5", "estimator.keep"),
                                           ("estimator.moves=gibbs", "estimator.moves"),
                                           ("task.target=abc", "task.target")])
def test_experiment_bad_config_is_a_config_error(tmp_path, override, key):
    from volume.__main__ import run

    with pytest.raises(ConfigError, match=key):
        run(make_cfg("experiment=rare_event", override), tmp_path)
    assert not (tmp_path / "results.json").exists()


# --- non-convex: products of multimodal pieces ----------------------------------------------

def test_composite_is_its_parts_side_by_side():
    parts = [MLP([2, 3, 1]), MLP([2, 2, 2])]
    arch = Composite(parts)
    theta = torch.randn(5, arch.n_params)
    out = arch.forward(theta, XOR_X_FLOAT)
    assert out.shape == (5, 4, 3) and arch.slice("W0_1").start == parts[0].n_params
    assert torch.equal(out[..., :1], parts[0].forward(theta[:, :parts[0].n_params].contiguous(), XOR_X_FLOAT))
    assert torch.equal(out[..., 1:], parts[1].forward(theta[:, parts[0].n_params:].contiguous(), XOR_X_FLOAT))


def test_product_class_is_the_product_of_its_factors():
    # What the exact value rests on: the class score is the min of the copies' own scores on
    # their own (independent under the prior) coordinates, and one copy's p is the stored one.
    case, one = xor_copies_case(2), xor_copies_case(1)
    x = case.prior.sample(case.arch, 400_000, seed=11)
    n = one.arch.n_params
    first, second = one.score(x[:, :n].contiguous()), one.score(x[:, n:].contiguous())
    assert torch.equal(case.score(x), torch.minimum(first, second))
    assert float((first > 0).double().mean()) == pytest.approx(math.exp(XOR_FACTOR_LOG_P), rel=0.15)
    assert case.log_p == 2 * XOR_FACTOR_LOG_P


def test_rare_event_on_a_product_of_multimodal_pieces():
    case = xor_copies_case(2)
    result = splitting(case.score, case.arch, case.prior, seed=21, n_particles=200, n_runs=8, n_moves=40,
                       progress=False)
    est = result.estimate
    assert est.bound is None and est.reliable and covers(est, case.log_p), (case.log_p, est, result.diagnostics)
    assert abs(est.log_p - case.log_p) < 0.6
    assert set(result.diagnostics) >= {"spread_vs_ideal", "distinct_ancestors", "log_mean_p", "reasons"}


def test_an_atom_at_the_first_level_draws_more_prior_samples():
    # score = theta_1 where theta_0 > z, else exactly -1: an atom of mass 1 - Phibar(z) at the
    # first level. Exact: P = Phibar(z) / 2.
    z = 2.5
    arch = MLP([1, 1])
    score = lambda theta: torch.where(theta[:, 0] > z, theta[:, 1], torch.tensor(-1.0, dtype=theta.dtype))
    exact = math.log(stats.norm.sf(z) / 2)
    result = splitting(score, arch, Prior(sigma_b=1.0), seed=4, n_particles=100, n_runs=8, n_moves=10,
                       progress=False)
    assert result.reached.all() and covers(result.estimate, exact), (exact, result.estimate)
    assert result.estimate.n_evals > 8 * 100 / stats.norm.sf(z) / 2  # the extra exact samples were drawn


def test_union_of_unequal_disjoint_pieces():
    # Three separate cones of unequal mass (exact); sampling checks the union's exact value
    # where it reaches, splitting must find the whole union where it does not.
    rng = np.random.default_rng(3)
    small = hadamard_union_case(4, [np.array([1, 0, 0, 1], bool), np.array([1, 1, 1, 0], bool)])
    mc = monte_carlo_score(small.score, small.arch, small.prior, 200_000, seed=6, progress=False)
    assert covers(mc, small.log_p), (small.log_p, mc)
    targets = [rng.random(16) < share for share in (0.5, 0.7, 0.9)]
    case = hadamard_union_case(16, targets, margin=0.5)
    pieces = [hadamard_case(16, t, margin=0.5).log_p for t in targets]
    assert max(pieces) - min(pieces) > 5 and case.log_p > max(pieces)
    est = rare_event(case.score, case.arch, case.prior, seed=8, **FAST)
    assert est.bound is None and est.reliable and covers(est, case.log_p), (case.log_p, est)
    with pytest.raises(ValueError, match="distinct"):
        hadamard_union_case(4, [np.ones(4, bool), np.ones(4, bool)])


def test_unit_blocks_are_a_units_in_and_out_weights():
    # 2-2-1: W0 [2, 2] at 0..3 (row-major [fan_in, width]), b0 at 4, 5, W1 [2, 1] at 6, 7, b1 at 8.
    blocks = [sorted(b.tolist()) for b in MLP([2, 2, 1]).unit_blocks()]
    assert blocks == [[0, 2, 4, 6], [1, 3, 5, 7], [6, 7, 8]]
    composite = Composite([MLP([2, 2, 1]), MLP([2, 3, 1])])
    assert [sorted(b.tolist()) for b in composite.unit_blocks()[3:4]] == [[9, 12, 15, 18]]  # part 2, unit 0
    assert all(max(b) < 9 or min(b) >= 9 for b in composite.unit_blocks())  # never across parts
    for arch in (MLP([3, 4, 5, 2]), MLP([3, 4, 1], bias=False), ResidualMLP(4, 2, 8, 6), composite):
        covered = np.zeros(arch.n_params, bool)
        for b in arch.unit_blocks():
            covered[b] = True
        assert covered.all(), arch.describe()


@pytest.mark.parametrize("moves,kind", [(m, "gaussian") for m in MOVES] + [("unit", "uniform")])
def test_moves_keep_the_prior_restricted_to_the_class(moves, kind):
    # Chains started from exact restricted samples (rejection) must stay exactly so
    # distributed after many moves: each coordinate and the score against fresh exact
    # samples (two-sample KS, Bonferroni over 14 tests). A kernel that forgets pCN's
    # shrink, or folds wrongly, drifts outwards and fails here.
    task = boolean_task(2, "pm1", "and")
    arch, prior = MLP([2, 3, 1]), Prior(kind=kind)
    score = target_margin_score(arch, task.x, task.target)
    draws = prior.sample(arch, 300_000, seed=1, dtype=torch.float64)
    inside = draws[score(draws) > 0]
    start, fresh = inside[:2000], inside[2000:4000]
    assert len(fresh) == 2000
    std = torch.from_numpy(prior.std(arch))
    z, s = (start / std).view(2, 1000, -1), score(start).view(2, 1000)
    blocks = block_index(arch)
    beta = torch.full((2, 1 + arch.n_params + len(blocks)), 0.5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    z, _, _ = _move(z, s, torch.zeros(2, 1, dtype=torch.float64), beta, np.arange(2), kind, 60, moves, gen,
                    lambda rows: score(rows * std), blocks)
    moved = z.reshape(-1, arch.n_params) * std
    assert bool((score(moved) > 0).all())
    assert float((moved != start).any(1).double().mean()) > 0.95
    columns = [(moved[:, i], fresh[:, i]) for i in range(arch.n_params)] + [(score(moved), score(fresh))]
    p_values = [stats.ks_2samp(a.numpy(), b.numpy()).pvalue for a, b in columns]
    assert min(p_values) > 0.001 / len(columns), p_values


@pytest.mark.parametrize("moves", ["unit", "unit_only"])
def test_unit_moves_on_a_product_of_multimodal_pieces(moves):
    case = xor_copies_case(3)
    result = splitting(case.score, case.arch, case.prior, seed=22, n_particles=200, n_runs=8, n_moves=40,
                       moves=moves, progress=False)
    est = result.estimate
    assert est.bound is None and covers(est, case.log_p), (case.log_p, est, result.diagnostics)
    assert abs(est.log_p - case.log_p) < 0.8


def test_trapped_runs_are_marked_unreliable():
    # Global moves only, two per level, on four copies: runs fill different pieces and disagree.
    case = xor_copies_case(4)
    est = rare_event(case.score, case.arch, case.prior, seed=2, n_particles=100, n_runs=8, n_moves=2,
                     moves="global", progress=False)
    assert not est.reliable, est


# --- slow -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_coverage_over_fifty_exact_cases():
    rng = np.random.default_rng(2025)
    hits, misses = 0, []
    for i in range(60):
        if i % 3 == 2:
            sigma_b = float(rng.uniform(0.02, 1))  # margins below the bias box's half-width sqrt(3) sigma_b
            case = uniform_constant_case(int(rng.integers(2, 5)), sigma_b=sigma_b,
                                         margin=float(rng.uniform(0, 0.5)) * sigma_b)
        else:
            m = int(rng.choice([4, 8, 16]))
            case = hadamard_case(m, rng.random(m) < 0.5, sigma_b=float(rng.uniform(0.3, 2)),
                                 margin=float(rng.uniform(0, 1.2)))
        est = rare_event(score_of(case), case.arch, case.prior, seed=1000 + i, progress=False)  # defaults
        if covers(est, case.log_p):
            hits += 1
        else:
            misses.append(f"{case.name}: exact {case.log_p:.3f}, estimate {est.log_p:.3f} {est.ci}")
    print(f"coverage {hits}/60")
    assert hits / 60 >= 0.9, "\n".join(misses)


@pytest.mark.slow
@pytest.mark.parametrize("k,j,seed", [(5, 2, 104), (6, 3, 105)])
def test_conditional_continued_on_xor_copies(k, j, seed):
    # P(all k copies XOR | the first j do) = p^(k - j): the same bar as the joint's, with the
    # moves that met it on every fresh seed (sweeps/xor_seeds.py; mixed missed one joint of 12)
    case = xor_copies_case(k)
    first = xor_first_copies_score(case.arch, j)
    res = conditional(case.score, first, case.arch, case.prior, seed=seed, n_particles=250, n_runs=8, n_moves=160,
                      moves="unit_only", population=False, progress=False)
    est, exact = res.estimate, (k - j) * XOR_FACTOR_LOG_P
    assert est.bound is None and est.reliable and covers(est, exact), (exact, est)
    assert abs(est.log_p - exact) < 0.5 and est.n_evals <= 2 * 10**7


def _non_convex_case(i: int, rng: np.random.Generator):
    """Case i of the non-convex coverage run: XOR copies (k = 1..3) or a union of 2-3
    Hadamard cones of unequal mass in dimension 65..257, log P kept in [-60, -10]."""
    if i % 3 == 0:
        return xor_copies_case(1 + i % 9 // 3)
    while True:
        m = int(rng.choice([64, 128, 256]))
        targets = [rng.random(m) < rng.uniform(0.9, 0.98) for _ in range(int(rng.integers(2, 4)))]
        case = hadamard_union_case(m, targets, sigma_b=float(rng.uniform(1, 3)))
        if -60 <= case.log_p <= -10:
            return case


@pytest.mark.slow
def test_coverage_on_non_convex_cases():
    # Seeds 3000+ were not used while choosing the moves; the truth of an XOR case carries
    # the stored factor's error, added to the interval's half-width.
    rng = np.random.default_rng(2026)
    hits, misses, errors = 0, [], {"log-space mean": [], "P-space mean": []}
    for i in range(30):
        case = _non_convex_case(i, rng)
        result = splitting(case.score, case.arch, case.prior, seed=3000 + i, progress=False)  # defaults
        est = result.estimate
        assert not (est.bound == "upper" and est.log_p < case.log_p), (case.name, case.log_p, est)
        slack = 1.96 * case.log_p_se
        if est.bound is None and est.ci[0] - slack <= case.log_p <= est.ci[1] + slack:
            hits += 1
        else:
            misses.append(f"{case.name}: exact {case.log_p:.3f}, estimate {est.log_p:.3f} {est.ci} {est.bound}")
        print(f"{case.name}: exact {case.log_p:.2f}, estimate {est}", flush=True)
        errors["log-space mean"].append(est.log_p - case.log_p)
        errors["P-space mean"].append(result.diagnostics["log_mean_p"] - case.log_p)
    for name, values in errors.items():
        print(f"{name}: mean error {np.mean(values):+.3f}, rms {np.sqrt(np.mean(np.square(values))):.3f} nats")
    print(f"non-convex coverage {hits}/30")
    assert hits / 30 >= 0.9, "\n".join(misses)


@pytest.mark.slow
def test_rare_event_agrees_with_monte_carlo_on_7_40_40_1():
    task = boolean_task(7, "01", "or")
    arch, prior = MLP([7, 40, 40, 1]), Prior()
    score = target_margin_score(arch, task.x, task.target)
    mc = monte_carlo_score(score, arch, prior, 400_000, seed=0, progress=False)
    re = rare_event(score, arch, prior, seed=1, n_particles=250, n_runs=8, n_moves=20, progress=False)
    assert mc.bound is None and re.bound is None
    gap = abs(re.log_p - mc.log_p)
    assert gap < 1.96 * math.hypot((re.ci[1] - re.ci[0]) / 3.92, (mc.ci[1] - mc.ci[0]) / 3.92) + 0.05, (re, mc)


@pytest.mark.slow
def test_stored_xor_factor_agrees_with_fresh_sampling():
    est = measure_xor_factor(10**7, seed=777)
    assert abs(est.log_p - XOR_FACTOR_LOG_P) < 1.96 * math.hypot((est.ci[1] - est.ci[0]) / 3.92, XOR_FACTOR_SE)


@pytest.mark.slow
@pytest.mark.parametrize("k,seed", [(5, 101), (5, 102), (6, 103)])
def test_rare_event_on_five_and_six_xor_copies(k, seed):
    case = xor_copies_case(k)
    # issue 13's bar: an estimate within 0.5 nats, covering, from <= 2e7 evaluations (unit_only
    # moves: see the conditional test above)
    result = splitting(case.score, case.arch, case.prior, seed=seed, n_particles=250, n_runs=8, n_moves=160,
                       moves="unit_only", progress=False)
    est = result.estimate
    assert est.bound is None and est.reliable and covers(est, case.log_p), (case.log_p, est, result.diagnostics)
    assert abs(est.log_p - case.log_p) < 0.5 and est.n_evals <= 2 * 10**7
