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
from volume import results
from volume.__main__ import run
from volume.errors import ConfigError
from volume.experiments import _classes, depth, llamaizer
from volume.nets import MLP
from volume.priors import Prior
from volume.setup import build

COLUMNS = ["class", "log_p", "ci_low", "ci_high", "log_p_joint", "n_evals", "method"]
LLAMA = ["experiment=llamaizer", "task.n=4", "task.target=and", "task.target_vars=[1,2]", "model.hidden=[6,6]",
         "estimator.n_particles=30", "estimator.n_runs=3", "estimator.n_moves=2", "estimator.max_levels=40",
         "experiment.n_classes_sampled=1"]
DEPTH = ["experiment=depth", "model.n_blocks=3", "estimator.n_particles=20", "estimator.n_runs=2",
         "estimator.n_moves=2", "estimator.max_levels=15", "experiment.classes=[serial,parallel]"]


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
    out = _classes.log_sum(terms, given, seed=0)
    exact = math.log(3 * math.exp(-10.0 + 2.0) + 5 * math.exp(-12.0 + 2.0))
    assert math.isclose(out["log_p"], exact, rel_tol=1e-12) and out["bound"] is None
    assert out["ci"][0] < exact < out["ci"][1] and out["n_evals"] == 30
    bounded = _classes.log_sum([terms[0], (rec([-5.0, -5.0, -5.0], "upper"), 1.0)], given, seed=0)
    assert bounded["bound"] == "upper" and bounded["ci"][0] is None
    assert _classes.log_sum(terms, rec([-1.0, -1.0], "upper"), seed=0)["bound"] == "target_not_reached"


def _check_frame(frame: pd.DataFrame, target: dict) -> pd.DataFrame:
    assert list(frame.columns[:5]) == COLUMNS[:5] and set(COLUMNS) <= set(frame.columns)
    assert (frame["n_evals"] > 0).all()
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
                                   "target_and", "target_xor", "mixed_and", "mixed_xor"}
    assert frame.loc[frame["class"] == "deep_6", "class_weight"].item() == 2  # |H_2| = {xor, xnor}
    assert summary["deep"]["n_functions"] == 2 and summary["shallow"]["n_functions"] == 12
    assert (tmp_path / "a" / "bits_per_h.png").exists() and not (tmp_path / "a" / results.CHECKPOINT).exists()
    # Resume: a checkpoint holding two finished estimates (one altered) is continued, not redone.
    records = stored["estimates"]
    kept = {k: records[k] for k in ("target", "deep_6")}
    kept["deep_6"] = {**kept["deep_6"], "log_p": kept["deep_6"]["log_p"] - 1.0}
    (tmp_path / "b").mkdir()
    results.write_checkpoint(tmp_path / "b", build(cfg).config, {"records": np.array(json.dumps(kept))})
    run(make_cfg(*LLAMA, "resume=true"), tmp_path / "b")
    again = json.loads((tmp_path / "b" / "results.json").read_text())["estimates"]
    assert again["deep_6"]["log_p"] == records["deep_6"]["log_p"] - 1.0  # skipped: the altered value stays
    assert {k: v["log_p"] for k, v in again.items() if k != "deep_6"} == \
        {k: v["log_p"] for k, v in records.items() if k != "deep_6"}  # the rest: identical to one run


def test_depth_scores_on_hand_built_circuits():
    task = cdepth.parity_task(4)
    T = cdepth.target_set(task)
    nets = {"serial": parity_chain(5, 4, (0, 2, 4)), "parallel": parity_tree(5, 4, (0, 1, 3)),
            "single": parity_single(5, 4, 2)}
    for truth, (arch, theta) in nets.items():
        for name in ("serial", "parallel", "single", "mixed", "other"):
            value = depth.class_score(arch, task, T, cdepth.DEFAULT_TAU, name)(theta.double()).item()
            assert (value > 0) == (name == truth), (truth, name, value)


def test_depth_end_to_end(tmp_path):
    run(make_cfg(*DEPTH), tmp_path)
    stored = json.loads((tmp_path / "results.json").read_text())
    frame = pd.read_csv(tmp_path / "classes.csv")
    assert list(frame["class"]) == ["serial", "parallel"]
    assert frame["placements_one"].tolist() == [cdepth.chain_placement_formula(3, 4), cdepth.tree_placement_formula(3, 4)]
    assert frame["placements_all"].tolist() == [cdepth.all_chains_formula(3, 4), cdepth.all_trees_formula(3, 4)]
    target = stored["estimates"]["target"]
    if target["bound"] is None:
        _check_frame(frame, target)
    else:  # parity not reached at this budget: no conditional is claimed
        assert frame["log_p"].isna().all() and (frame["bound"] == "target_not_reached").all()
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
