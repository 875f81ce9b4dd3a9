"""Classifier 1 (direct vs inner llamaizer) on hand-built networks and against brute force."""
import numpy as np
import pytest
import torch

from circuits import boolean
from circuits.llama import LABELS, classify_llamas, llama_margins, llama_score, llama_task, target_margin
from circuits.reference import LLAMA_KINDS, llama_network
from volume.nets import MLP
from volume.priors import Prior


@pytest.mark.parametrize("m", [2, 3, 4])
def test_reference_networks_every_kind_placement_and_noise(m):
    task = llama_task(m)
    widths = (20, 6) if m == 4 else (12, 6)
    for kind in LLAMA_KINDS:
        for placement in range(4):
            arch, theta, info = llama_network(kind, m, widths=widths, placement=placement)
            noisy = torch.cat([theta, theta + 1e-3 * torch.randn(30, theta.shape[1], generator=torch.Generator().manual_seed(placement))])
            r = classify_llamas(arch, noisy, task)
            assert r.solves.all() and (r.label == kind).all(), (kind, placement, set(r.label))
            found = r.llamas[r.llamas["network"] == 0]
            assert sorted(zip(found["layer"], found["unit"])) == sorted(info["llama_units"])
            if kind != "direct":  # the evidence names the planted h in layer 2
                top = found[found["layer"] == 1]
                assert list(top["h"]) == [info["h"]] and (top["margin"] > 0).all()


def test_every_llama_class_is_recognised():
    """One representative of every class of h (m = 3) as a shallow or deep llama."""
    m, task = 3, llama_task(3)
    table = boolean.class_table(m)
    for rep in np.unique(table[1:-1]):
        depth = "shallow" if boolean.is_threshold(np.array([rep]), m)[0] else "deep"
        for use in ("inert", "used"):
            arch, theta, info = llama_network(f"{depth}_{use}", m, h=int(rep))
            r = classify_llamas(arch, theta, task)
            assert r.label[0] == f"{depth}_{use}"
            assert int(rep) in set(r.llamas["h_class"].astype(np.int64))


def test_controls_and_not_forced():
    task = llama_task(3)
    arch, theta, _ = llama_network("direct")
    r = classify_llamas(arch, theta, task)
    assert r.n_target_only[0] == 3 and r.n_mixed[0] == 0 and r.label[0] == "direct"
    arch, theta, _ = llama_network("deep_used")
    r = classify_llamas(arch, theta, task)
    assert r.n_mixed[0] == 1 and r.n_target_only[0] == 2  # (f or h) is mixed; A, B target-only
    # a unit reading a distractor AND a target bit is a mixed control, not a llama
    theta2 = theta.clone()
    w0 = arch.slice("W0")
    theta2[0, w0.start + 0 * arch.widths[1] + 2] = 0.5  # x1 -> first minterm unit (slot 2 at placement 0)
    r2 = classify_llamas(arch, theta2, task)
    assert r2.n_mixed[0] == 2


def brute_labels(arch, theta, task, n):
    """Per network, per unit: flip every variable by hand (no packing, no batching)."""
    pre = arch.preactivations(theta, task.x)
    z = torch.cat(pre[:-1], 2).numpy() > 0
    idx = np.arange(1 << n)
    out = []
    for b in range(theta.shape[0]):
        found = []
        for u in range(z.shape[2]):
            t = z[b, :, u]
            deps = [j for j in range(n) if (t != t[idx ^ (1 << j)]).any()]
            if deps and min(deps) >= 4:
                found.append(u)
        out.append(found)
    return out


def test_random_population_matches_brute_force_and_scores():
    task = llama_task(3)
    arch = MLP([7, 12, 12, 1])
    theta = Prior().sample(arch, 600, seed=3)
    r = classify_llamas(arch, theta, task, chunk=256)
    brute = brute_labels(arch, theta, task, 7)
    assert list(r.n_shallow + r.n_deep) == [len(f) for f in brute]
    flat = r.llamas["layer"].to_numpy() * 12 + r.llamas["unit"].to_numpy()
    for b in np.flatnonzero([len(f) for f in brute]):
        assert sorted(flat[r.llamas["network"].to_numpy() == b]) == brute[b]
    assert set(r.label) <= set(LABELS) and (r.label == "direct").mean() > 0.5
    # continuous scores: > 0 exactly when some unit carries that h / the target is computed
    keys = np.unique(r.llamas["h"].to_numpy(np.uint64))[:5]
    score = llama_score(arch, theta, task, keys, per_key=True).numpy()
    for g, key in enumerate(keys):
        has = np.zeros(len(theta), bool)
        has[r.llamas.loc[r.llamas["h"].to_numpy(np.uint64) == key, "network"].to_numpy(np.int64)] = True
        assert np.array_equal(score[:, g] > 0, has)
    assert np.array_equal(target_margin(arch, theta, task).numpy() > 0, r.solves)


def test_used_matches_manual_ablation():
    """'used' agrees with ablation done by editing the weights (outgoing weights set to 0)."""
    task = llama_task(3)
    arch = MLP([7, 10, 10, 1])
    theta = Prior().sample(arch, 3000, seed=5)
    r = classify_llamas(arch, theta, task)
    rows = r.llamas.head(40)
    assert len(rows) > 10 and 0 < rows["used"].sum() < len(rows)
    for row in rows.itertuples():
        edited = theta[row.network].clone()
        w = arch.slice(f"W{row.layer + 1}")
        width_next = arch.widths[row.layer + 2]
        edited[w.start + row.unit * width_next : w.start + (row.unit + 1) * width_next] = 0
        before = arch.forward(theta[row.network][None], task.x)[0, :, 0] > 0
        after = arch.forward(edited[None], task.x)[0, :, 0] > 0
        assert bool((before != after).any()) == bool(row.used)


def test_margins_variables_and_errors():
    task = llama_task(3)
    arch, theta, _ = llama_network("direct")
    # unit A = [x1 and x2] as a function of the 4 target bits: pattern key with bits 0,1 set
    key = sum(1 << d for d in range(16) if d & 3 == 3)
    assert llama_margins(arch, theta, task, [key], "target")[0, 0, 0] > 0
    with pytest.raises(ValueError, match="variables"):
        llama_margins(arch, theta, task, [key], "bogus")
    with pytest.raises(ValueError, match="ablation"):
        classify_llamas(arch, theta, task, ablation="resample")
    with pytest.raises(ValueError, match="h = "):
        llama_network("deep_inert", 3, h=0b1000_0000)  # AND of three bits is separable
