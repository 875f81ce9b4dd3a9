"""The counting experiments (llamaizer, depth): scores on hand-built circuits, exact class
sizes, the symmetry behind them, the sums' arithmetic, and tiny end-to-end runs with resume."""
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_cfg

from circuits import boolean
from circuits import depth as cdepth
from circuits.llama import llama_task
from circuits.reference import llama_network, parity_chain, parity_single, parity_tree
from volume import plots, results
from volume.__main__ import run
from volume.errors import ConfigError
from volume.estimators.rare_event import SplittingResult
from volume.estimators import sums
from volume.experiments import build, depth, llamaizer
from volume.nets import MLP
from volume.priors import Prior

COLUMNS = ["class", "log_p", "ci_low", "ci_high", "log_p_joint", "n_evals", "method"]
LLAMA = ["experiment=llamaizer", "task.n=4", "task.target=and", "task.target_vars=[1,2]", "model.hidden=[6,6]",
         "estimator.n_particles=30", "estimator.n_runs=3", "estimator.n_moves=2", "estimator.moves=global",
         "estimator.max_levels=40", "experiment.n_classes_sampled=1"]
DEPTH = ["experiment=depth", "model.n_blocks=3", "estimator.n_particles=20", "estimator.n_runs=2",
         "estimator.n_moves=2", "estimator.moves=global", "estimator.max_levels=15",
         "experiment.classes=[serial,parallel]"]
# Parity within reach at this size: with sigma_w = 2, sigma_b = 0.3, log P(parity) ~ -33 (defaults: ~ -50).
DEPTH_REACHED = ["experiment=depth", "model.n_blocks=3", "prior.sigma_w=2", "prior.sigma_b=0.3",
                 "estimator.n_particles=40", "estimator.n_runs=2", "estimator.n_moves=3", "estimator.max_levels=150",
                 "experiment.classes=[serial,parallel,single]", "seed=19"]


def orbit(key: int, m: int) -> set[int]:
    """Brute force: every image of h under permutation/negation of its m variables."""
    out = set()
    for perm in itertools.permutations(range(m)):
        for neg in range(1 << m):
            image = 0
            for d in range(1 << m):
                if (key >> d) & 1:
                    e = d ^ neg
                    image |= 1 << sum(((e >> t) & 1) << perm[t] for t in range(m))
            out.add(image)
    return out


@pytest.mark.parametrize("m", [2, 3, 4])
def test_class_sizes_are_orbits_and_add_up(m):
    for kind, total in (("deep", boolean.non_threshold_count(m)), ("shallow", boolean.THRESHOLD_COUNTS[m] - 2)):
        reps, weights, draws = llamaizer.choose_classes(kind, m, 10**6, seed=0)
        assert draws is None and weights.sum() == total == len(llamaizer.members(kind, m))
        for rep, w in list(zip(reps, weights))[:12]:
            assert len(orbit(int(rep), m)) == w
            assert bool(boolean.is_threshold(np.array([rep], np.uint64), m)[0]) == (kind == "shallow")
    reps, weights, draws = llamaizer.choose_classes("shallow", m, 2, seed=3)  # sampled: |H| x share of draws
    assert draws is not None and math.isclose(weights.sum(), boolean.THRESHOLD_COUNTS[m] - 2)
    assert set(reps) <= set(llamaizer.choose_classes("shallow", m, 10**6, seed=0)[0])


def test_llama_score_on_hand_built_networks():
    m, task = 3, llama_task(3)
    split = list(range(4, 4 + m))
    for kind in ("deep_used", "deep_inert", "shallow_used"):
        arch, theta, info = llama_network(kind, m)
        h = info["h"]
        other = next(k for k in sorted(orbit(h, m)) if k != h)
        assert llamaizer.unit_class_score(arch, task, split, [h])(theta.double()).item() > 0
        assert llamaizer.unit_class_score(arch, task, split, [other])(theta.double()).item() < 0
    arch, theta, _ = llama_network("direct", m)
    assert llamaizer.unit_class_score(arch, task, split, [0b01101001])(theta.double()).item() < 0
    # the direct net computes x1 and x2 in a hidden unit: the control class holds there
    assert llamaizer.unit_class_score(arch, task, [0, 1], [llamaizer.AND])(theta.double()).item() > 0


def _layer_control_signs(arch, theta, task) -> dict[str, bool]:
    """name -> whether its LAYER_CONTROLS score is positive on the one network theta."""
    return {name: llamaizer.unit_class_score(arch, task, [4, 5], [key], layers)(theta.double()).item() > 0
            for name, key, layers in llamaizer.LAYER_CONTROLS}


def _cut(arch, theta, layer: int, src: int, dst: int) -> torch.Tensor:
    """theta with the weight from unit src to unit dst of the next layer set to 0."""
    out = theta.clone()
    w = arch.slice(f"W{layer}")
    out[0, w.start + src * w.shape[1] + dst] = 0.0
    return out


def test_layer_controls_on_hand_built_networks():
    """Each control's score is positive exactly on the nets in its class: h = d1 and d2 is on
    a first-layer unit and copied to the last (shallow nets; cutting the copy leaves it in the
    first only), h = d1 xor d2 on a last-layer unit (deep nets); used iff the output uses it."""
    m, task = 3, llama_task(3)
    classes = {  # kind -> the controls that hold
        "shallow_inert": {"llama_and_first", "llama_and_last"},
        "shallow_used": {"llama_and_first", "llama_and_last", "llama_and_used"},
        "deep_inert": {"llama_xor_last"},
        "deep_used": {"llama_xor_last", "llama_xor_used"},
        "direct": set(),
    }
    for kind, expected in classes.items():
        arch, theta, _ = llama_network(kind, m)
        signs = _layer_control_signs(arch, theta, task)
        assert {name for name, positive in signs.items() if positive} == expected, kind
    arch, theta, info = llama_network("shallow_inert", m)
    (_, p), (_, u) = info["llama_units"]
    first_only = _cut(arch, theta, 1, p, u)  # the last-layer copy of h goes dead
    assert {name for name, positive in _layer_control_signs(arch, first_only, task).items() if positive} \
        == {"llama_and_first"}
    arch, theta, _ = llama_network("deep_used", m)
    wrong = theta.clone()
    wrong[0, arch.slice("W2").start : arch.slice("b2").stop] *= -1  # the output computes not-target
    assert not any(_layer_control_signs(arch, wrong, task).values())


def test_used_score_is_scale_free():
    arch, theta, _ = llama_network("deep_used", 3)
    task = llama_task(3)
    score = llamaizer.unit_class_score(arch, task, [4, 5], [llamaizer.XOR], "last_used")
    scaled = theta.clone()
    scaled[0, arch.slice("W2").start : arch.slice("b2").stop] *= 7.0
    assert score(scaled.double()).item() == pytest.approx(score(theta.double()).item(), rel=1e-5)
    with pytest.raises(ValueError, match="layers"):
        llamaizer.unit_class_score(arch, task, [4, 5], [llamaizer.XOR], "middle")


def test_used_margins_match_ablation_on_random_networks():
    """used_margins > 0 iff zeroing the unit's output weight changes the network's own function
    (the signs passed are the network's own outputs' signs), on random nets, unit by unit."""
    arch, task = MLP([5, 6, 6, 1]), llama_task(1)
    theta = Prior("gaussian", 1.0, 1.0, True).sample(arch, 30, seed=4)
    x, w2 = task.x.to(torch.float32), arch.slice("W2")
    seen = set()
    for b in range(theta.shape[0]):
        net = theta[b : b + 1]
        pre = arch.preactivations(net, x)
        signs = torch.where(pre[-1][0, :, 0] > 0, 1.0, -1.0)
        margins = llamaizer.used_margins(arch, net, pre, signs)[0]
        for j in range(6):
            ablated = net.clone()
            ablated[0, w2.start + j] = 0.0
            changed = bool(((arch.forward(ablated, x) > 0) != (pre[-1] > 0)).any())
            assert (margins[j].item() > 0) == changed, (b, j)
            seen.add(changed)
    assert seen == {True, False}  # both cases occur


def test_symmetry_of_distractors_is_exact():
    """Permuting/negating distractor inputs (rows of W0) maps 'carries h' to 'carries g.h'
    with the same score, keeps the target margin and the prior's per-parameter std."""
    m, task = 3, llama_task(3)
    arch = MLP([7, 8, 8, 1])
    prior = Prior("gaussian", 1.0, 1.0, True)
    theta = prior.sample(arch, 64, seed=1, dtype=torch.float64)
    perm, neg = (2, 0, 1), 0b101
    w0 = arch.slice("W0")
    moved = theta.clone()
    rows = w0.view(theta).clone()  # [B, 7, 8]
    new = rows.clone()
    for t in range(m):
        new[:, 4 + perm[t]] = rows[:, 4 + t] * (-1.0 if (neg >> t) & 1 else 1.0)
    moved[:, w0.start : w0.stop] = new.reshape(64, -1)
    assert np.array_equal(prior.std(arch)[w0.start : w0.stop].reshape(7, 8)[4:],
                          prior.std(arch)[w0.start : w0.stop].reshape(7, 8)[4:][list(perm)])
    h = 0b00010110  # a deep llama of 3 variables
    image = 0
    for d in range(8):
        if (h >> d) & 1:
            e = d ^ neg
            image |= 1 << sum(((e >> t) & 1) << perm[t] for t in range(m))
    split = [4, 5, 6]
    a = llamaizer.unit_class_score(arch, task, split, [h])(theta)
    b = llamaizer.unit_class_score(arch, task, split, [image])(moved)
    assert torch.allclose(a, b, atol=1e-5)


def test_log_sum_closed_form():
    rec = lambda runs, bound=None: {"run_log_p": runs, "log_p": float(np.mean(runs)), "bound": bound,  # noqa: E731
                                    "n_evals": 10, "ci": [None, float(np.max(runs))]}
    given = rec([-2.0, -2.2, -1.8])
    terms = [(rec([-10.0, -10.5, -9.5]), 3.0), (rec([-12.0, -11.0, -13.0]), 5.0)]
    out = sums.log_sum(terms, given, seed=0)
    exact = math.log(3 * math.exp(-10.0 + 2.0) + 5 * math.exp(-12.0 + 2.0))
    assert math.isclose(out["log_p"], exact, rel_tol=1e-12) and out["bound"] is None
    assert out["ci"][0] < exact < out["ci"][1] and out["n_evals"] == 30
    bounded = sums.log_sum([terms[0], (rec([-5.0, -5.0, -5.0], "upper"), 1.0)], given, seed=0)
    assert bounded["bound"] == "upper" and bounded["ci"][0] is None
    assert sums.log_sum(terms, rec([-1.0, -1.0], "upper"), seed=0)["bound"] == "target_not_reached"


def _check_frame(frame: pd.DataFrame, target: dict) -> pd.DataFrame:
    assert list(frame.columns[:5]) == COLUMNS[:5] and set(COLUMNS) <= set(frame.columns)
    assert (frame["n_evals"] > 0).all()
    frame = frame[frame["bound"] != "interval"]  # llamaizer's union rows: checked on their own
    est = frame[frame["bound"].fillna("") == ""]
    # conditional = joint - target, capped at 0 (a probability), inside its own interval
    assert np.allclose(est["log_p"], np.minimum(est["log_p_joint"] - target["log_p"], 0.0))
    assert (est["log_p"] <= 0).all() and (est["ci_low"] <= est["log_p"]).all() and (est["log_p"] <= est["ci_high"]).all()
    bounds = frame[frame["bound"] == "upper"]
    assert (bounds["ci_low"] == -np.inf).all() and (bounds["log_p"] <= 0).all()
    return est


def test_llamaizer_end_to_end_and_resume(tmp_path):
    cfg = make_cfg(*LLAMA)
    summary = run(cfg, tmp_path / "a")
    frame = pd.read_csv(tmp_path / "a" / "classes.csv", dtype={"h": str})
    stored = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(stored) >= {"config", "summary", "estimates"} and summary["m"] == 2
    assert len(_check_frame(frame, stored["estimates"]["target"])) >= 2  # estimates, not only bounds
    assert set(frame["class"]) == {"deep_6", *[c for c in frame["class"] if c.startswith("shallow_")],
                                   "target_and", "target_xor", "mixed_and", "mixed_xor",
                                   *(name for name, _, _ in llamaizer.LAYER_CONTROLS),
                                   "all_deep", "all_shallow", "all_llamas"}
    # the union rows bracket P(union | target): [best class, min(1, sum over h)] in the summary's numbers
    union = frame[frame["kind"] == "union"].set_index("class")
    assert (union["bound"] == "interval").all() and union["log_p"].isna().all()
    for kind in ("deep", "shallow"):
        u, row = summary[kind]["union"], union.loc[f"all_{kind}"]
        assert math.isclose(row["union_high"], min(summary[kind]["sum_over_h"]["log_p"], 0.0)) or u["high"]["bound"]
        assert row["union_high"] <= 0 and row["ci_high"] <= 0
        if u["low"] is not None:
            measured = frame.loc[(frame["kind"] == kind) & (frame["bound"].fillna("") == ""), "log_p"]
            assert np.allclose([u["low"]["log_p"], row["union_low"]], measured.max())  # the best estimate, not a bound
            assert row["union_low"] <= row["union_high"] + 1e-12
    assert frame.loc[frame["class"] == "deep_6", "class_weight"].item() == 2  # |H_2| = {xor, xnor}
    assert summary["deep"]["n_functions"] == 2 and summary["shallow"]["n_functions"] == 12
    assert (tmp_path / "a" / "bits_per_h.png").exists() and not (tmp_path / "a" / results.CHECKPOINT).exists()
    # Resume: a checkpoint holding two finished estimates (one altered) is continued, not redone.
    records = stored["estimates"]
    kept = {k: records[k] for k in ("target", "deep_6")}
    kept["deep_6"] = {**kept["deep_6"], "log_p": kept["deep_6"]["log_p"] - 1.0}
    (tmp_path / "b").mkdir()
    stages = results.Stages(tmp_path / "b", build(cfg).config, None, 0)
    for name, record in kept.items():  # a finished job's stage holds its record as JSON
        stages.put(name, {"record": np.array(json.dumps(record))}, complete=True)
    run(make_cfg(*LLAMA, "resume=true"), tmp_path / "b")
    again = json.loads((tmp_path / "b" / "results.json").read_text())["estimates"]
    assert again["deep_6"]["log_p"] == records["deep_6"]["log_p"] - 1.0  # skipped: the altered value stays
    assert {k: v["log_p"] for k, v in again.items() if k != "deep_6"} == \
        {k: v["log_p"] for k, v in records.items() if k != "deep_6"}  # the rest: identical to one run
    # experiment.only: the target and the named class, each the same to the last bit as in the full run
    summary = run(make_cfg(*LLAMA, "experiment.only=[deep_6]"), tmp_path / "c")
    alone = json.loads((tmp_path / "c" / "results.json").read_text())["estimates"]
    assert {k: v["log_p"] for k, v in alone.items()} == {k: records[k]["log_p"] for k in ("target", "deep_6")}
    assert list(plots.read_classes(tmp_path / "c")["class"]) == ["deep_6"] and "deep" not in summary
    for bad in ("[deep_9]", "deep_6", "[]"):  # a name not measured at m = 2, a bare string, an empty list
        with pytest.raises(ConfigError, match=r"experiment.only.*allowed.*deep_6"):
            run(make_cfg(*LLAMA, f"experiment.only={bad}"), tmp_path / "d")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_depth_scores_on_hand_built_circuits():
    task = cdepth.parity_task(4)
    nets = {"serial": parity_chain(5, 4, (0, 2, 4)), "parallel": parity_tree(5, 4, (0, 1, 3)),
            "single": parity_single(5, 4, 2)}
    for truth, (arch, theta) in nets.items():
        for name in ("serial", "parallel", "single", "mixed", "other"):
            value = cdepth.class_score(arch, task, cdepth.DEFAULT_TAU, name)(theta.double()).item()
            assert (value > 0) == (name == truth), (truth, name, value)


def test_depth_end_to_end(tmp_path):
    """A budget that reaches parity (prior and seed chosen so that the 2 runs get there in a few
    seconds), so the conditionals are computed: one class is an estimate, not only bounds."""
    run(make_cfg(*DEPTH_REACHED), tmp_path)
    stored = json.loads((tmp_path / "results.json").read_text())
    frame = pd.read_csv(tmp_path / "classes.csv")
    assert list(frame["class"]) == ["serial", "parallel", "single"]
    assert frame["placements_one"].tolist()[:2] == [cdepth.chain_placement_formula(3, 4),
                                                     cdepth.tree_placement_formula(3, 4)]
    assert frame["placements_all"].tolist()[:2] == [cdepth.all_chains_formula(3, 4), cdepth.all_trees_formula(3, 4)]
    target = stored["estimates"]["target"]
    assert target["bound"] is None  # parity reached: the branch this test is for
    assert len(_check_frame(frame, target)) >= 1  # a conditional estimate, inside (-inf, 0)
    s = stored["summary"]
    assert math.isclose(s["predicted_log_ratio_one"],
                        math.log(cdepth.tree_placement_formula(3, 4) / cdepth.chain_placement_formula(3, 4)))


def test_ratio_and_bad_config(tmp_path):
    rec = lambda runs, bound=None: {"run_log_p": runs, "log_p": float(np.mean(runs)), "bound": bound,  # noqa: E731
                                    "ci": [None if bound else min(runs), max(runs)]}
    r = depth.ratio({"parallel": rec([-10.0, -11.0, -9.0]), "serial": rec([-14.0, -13.0, -15.0])})
    assert math.isclose(r["log_p"], 4.0) and r["ci"][0] < 4.0 < r["ci"][1] and r["bound"] is None
    assert depth.ratio({"parallel": rec([-10.0, -11.0]), "serial": rec([-20.0], "upper")})["bound"] == "lower"
    with pytest.raises(ConfigError, match="experiment.tau"):
        run(make_cfg(*DEPTH, "experiment.tau=1.5"), tmp_path / "a")
    with pytest.raises(ConfigError, match="estimator"):
        run(make_cfg("experiment=llamaizer", "estimator=monte_carlo"), tmp_path / "b")
    with pytest.raises(ConfigError, match="task.n"):
        run(make_cfg(*LLAMA, "task.n=2"), tmp_path / "c")


def test_llamaizer_one_distractor_has_no_deep_llamas(tmp_path):
    """m = 1: no deep llama exists, so that sum is exactly 0 and P(some llama | target) is
    bracketed by the shallow llamas alone (both of them: x and not x, one class of size 2)."""
    summary = run(make_cfg(*LLAMA, "task.n=3", "experiment.controls=false"), tmp_path)
    frame = pd.read_csv(tmp_path / "classes.csv", dtype={"h": str})
    assert summary["deep"]["n_functions"] == 0 and summary["deep"]["n_classes_measured"] == 0
    assert summary["shallow"]["n_functions"] == 2 and set(frame["class"]) >= {"shallow_1", "all_shallow", "all_llamas"}
    assert "all_deep" not in set(frame["class"])
    shallow, both = summary["shallow"], summary["any_llama"]
    assert both["high"] == sums.capped(shallow["sum_over_h"]) and both["low"] == shallow["union_lower"]
    assert both["cross_check"]["log_p"] == shallow["union"]["cross_check"]["log_p"]
    assert "no deep llamas of 1 bit(s) exist." in llamaizer.describe(summary)


def test_llamaizer_target_not_reached_claims_nothing(tmp_path):
    """A budget too small to reach the target leaves every conditional undefined (NaN), says
    why, and still writes the joints' bounds."""
    summary = run(make_cfg("experiment=llamaizer", "task.n=7", "model.hidden=[6,6]", "estimator.n_particles=10",
                           "estimator.n_runs=2", "estimator.n_moves=1", "estimator.max_levels=3",
                           "experiment.n_classes_sampled=1"), tmp_path)
    frame = pd.read_csv(tmp_path / "classes.csv")
    assert summary["log_p_target"]["bound"] == "upper"
    assert frame["log_p"].isna().all() and (frame["bound"] == "target_not_reached").all()
    assert (frame["log_p_joint"] <= 0).all() and summary["deep"]["sum_over_h"]["log_p"] is None


def test_log_sum_with_factors_closed_form():
    """sum_c w_c f_c P(C_c | target): the cross-check's E[1/N | class] factors scale each term."""
    rec = lambda runs: {"run_log_p": runs, "log_p": float(np.mean(runs)), "bound": None,  # noqa: E731
                        "n_evals": 10, "ci": [min(runs), max(runs)]}
    given = rec([-2.0, -2.2, -1.8])
    terms = [(rec([-10.0, -10.5, -9.5]), 3.0), (rec([-12.0, -11.0, -13.0]), 5.0)]
    out = sums.log_sum(terms, given, seed=0, factors=np.array([0.5, 0.25]))
    exact = math.log(3 * 0.5 * math.exp(-8.0) + 5 * 0.25 * math.exp(-10.0))
    assert math.isclose(out["log_p"], exact, rel_tol=1e-12) and out["ci"][0] < exact < out["ci"][1]
    plain = sums.log_sum(terms, given, seed=0)
    assert out["ci"][1] < plain["ci"][1]  # the same bootstrap draws, every term scaled down


def test_union_identity_and_bracket():
    """On an exact toy population: sum_h P(h) E[1/N | h] = P(N >= 1) (the cross-check is exact
    when the samples inside each class follow the conditioned prior), max_h P(h) <= P(N >= 1)
    <= sum_h P(h); and the bracket caps the sum at 1 and reads a bounded sum at its upper end."""
    rng = np.random.default_rng(0)
    carries = rng.random((500, 6)) < [0.02, 0.05, 0.1, 0.1, 0.3, 0.01]  # 500 equally likely networks x 6 classes
    n = carries.sum(1)
    p_h = carries.mean(0)
    inv = np.array([(1 / n[carries[:, h]]).mean() for h in range(6)])
    union = (n >= 1).mean()
    assert math.isclose((p_h * inv).sum(), union, rel_tol=1e-12)
    assert p_h.max() <= union <= p_h.sum() and union < p_h.sum()  # overlaps exist here
    est = lambda v, bound=None: {"log_p": v, "ci": [v - 1, v + 1], "n_evals": 5, "bound": bound}  # noqa: E731
    b = sums.bracket(est(-3.0), est(0.5), est(0.2))
    assert b["high"]["log_p"] == 0.0 and b["high"]["ci"] == [-0.5, 0.0] and b["cross_check"]["log_p"] == 0.0
    bounded = sums.bracket(None, {"log_p": -4.0, "ci": [None, -2.0], "n_evals": 5, "bound": "upper"}, est(-5.0))
    assert bounded["high"]["log_p"] == -2.0  # an upper-bounded sum is read at its upper end
    row = sums.union_rows({"all_x": bounded}, m=2)[0]
    assert row["ci_low"] == -math.inf and row["union_high_bound"] == "upper" and math.isnan(row["log_p"])
    added = sums.log_add([est(-3.0), est(-4.0)], shared_evals=2)
    assert math.isclose(added["log_p"], math.log(math.exp(-3) + math.exp(-4))) and added["n_evals"] == 8


@pytest.mark.parametrize("kind, h, expect", [
    ("deep", 0x66, {"mean_distinct_llamas": 1, "share_other_llama": 0, "mean_inv_distinct": 1,
                    "mean_inv_distinct_all": 1 / 5, "mean_llama_units": 5}),  # 1 deep + 4 minterm units
    ("shallow", 0x88, {"mean_distinct_llamas": 1, "share_other_llama": 0, "mean_inv_distinct": 1,
                       "mean_llama_units": 2}),  # two units, one distinct llama
])
def test_inspect_counts_distinct_llamas_on_hand_built_nets(kind, h, expect):
    arch, theta, info = llama_network(f"{kind}_used", 3)
    assert info["h"] == h
    result = SplittingResult(None, np.zeros(1), np.ones(1, bool), theta=theta.repeat(3, 1))
    out = llamaizer._inspect_llama(arch, llama_task(3), h, kind)(result)
    assert out["frac_h_missed"] == 0
    for key, value in expect.items():
        assert math.isclose(out[key], value), (key, out[key], value)
    # a llama the net does not carry still counts once (the class score said so); the deep net's 4 minterm
    # units are 4 distinct shallow llamas, so in the class of a fifth shallow llama N = 5
    arch, theta, _ = llama_network("deep_used", 3)
    inside = SplittingResult(None, np.zeros(1), np.ones(1, bool), theta=theta)
    other = llamaizer._inspect_llama(arch, llama_task(3), 0x01, "shallow")(inside)
    assert other["frac_h_missed"] == 1 and other["mean_distinct_llamas"] == 5 and other["share_other_llama"] == 1


def test_plot_estimates_draws_bounds_apart():
    """Estimates: one line through them only, with error bars; bounds: open markers, never on
    that line, each with an arrow pointing the way the value may lie."""
    fig, ax = results.new_figure()
    x, y = [1, 2, 3, 4, 5], [-1.0, -2.0, -3.0, -4.0, math.nan]
    plots.plot_estimates(ax, x, y, [-2, -3, -4, -5, 0], [0, -1, -2, -3, 0], ["", "upper", "", "lower", ""],
                            label="a")
    joined = [line for line in ax.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata()) > 1
              and line.get_marker() == "o"]
    assert len(joined) == 1 and list(joined[0].get_xdata()) == [1, 3]  # NaN skipped, bounds not joined
    open_marks = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    assert sorted(float(v) for line in open_marks for v in line.get_xdata()) == [2, 4]
    arrows = sorted((a.xy[0], a.xyann[1]) for a in ax.texts)
    assert arrows == [(2, -18), (4, 18)]  # upper bound: arrow down; lower bound: arrow up
    assert not [line for line in ax.get_lines() if line.get_markeredgecolor() == "red"]
    # failed diagnostics: a red ring on those points (an estimate and a bound), labelled once
    plots.plot_estimates(ax, x, y, [-2, -3, -4, -5, 0], [0, -1, -2, -3, 0], ["", "upper", "", "lower", ""],
                            [False, False, True, True, False], label="b")
    plots.plot_estimates(ax, [6], [-6.0], [-7], [-5], [""], [False])
    rings = [line for line in ax.get_lines() if line.get_markeredgecolor() == "red"]
    assert [list(line.get_xdata()) for line in rings] == [[1, 2], [6]]
    assert ax.get_legend_handles_labels()[1].count(plots.UNRELIABLE_LABEL) == 1
    import matplotlib.pyplot as plt
    plt.close(fig)
    # bounds are drawn at their conservative end; an upper bound on P is a lower bound on the bits
    y, low, high, bound, reliable = plots.estimate_columns(
        [{"log_p": -3.0, "ci": [None, -2.0], "bound": "upper", "reliable": False},
         {"log_p": -1.0, "ci": [-1.5, -0.5], "bound": None}, None])
    assert y[0] == -2.0 and y[1] == -1.0 and math.isnan(y[2]) and bound == ["upper", "", ""]
    assert reliable == [False, True, True]
    bits, b_low, b_high, b_bound = plots.as_bits(y, low, high, bound)
    assert np.allclose(bits[:2], [2 / math.log(2), 1 / math.log(2)]) and b_bound == ["lower", "", ""]
    assert math.isclose(b_low[1], 0.5 / math.log(2)) and math.isclose(b_high[1], 1.5 / math.log(2))
