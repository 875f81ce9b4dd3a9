"""Classifier 2 (serial vs parallel) on planted circuits at every L and placement; placement counts."""
import itertools

import numpy as np
import pytest
import torch

from circuits import depth
from circuits.depth import classify_depth, class_scores, block_fractions, parity_task
from circuits.reference import StreamBuilder, parity_chain, parity_single, parity_tree
from volume.priors import Prior

TASK = parity_task(4)
ORDERS = [(0, 1, 2, 3), (3, 1, 0, 2)]


def planted(n_blocks, width):
    nets = []
    for order in ORDERS:
        for blocks in itertools.combinations(range(n_blocks), 3):
            nets.append(("serial", parity_chain(n_blocks, width, blocks, order)))
    for pairs in [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((3, 0), (2, 1))]:
        for k in range(n_blocks):
            for i, j in itertools.product(range(k), repeat=2):
                if i != j or width >= 4:
                    nets.append(("parallel", parity_tree(n_blocks, width, (i, j, k), pairs)))
    if width >= 4:
        nets += [("single", parity_single(n_blocks, width, k)) for k in range(n_blocks)]
    return nets


@pytest.mark.parametrize("n_blocks", range(2, 9))
def test_planted_circuits_every_placement_with_noise(n_blocks):
    for width in (2, 4):
        nets = planted(n_blocks, width)
        if not nets:  # L = 2, w = 2: no chain, no tree, no single block fits
            continue
        arch = nets[0][1][0]
        theta = torch.cat([t for _, (_, t) in nets])
        want = np.array([k for k, _ in nets])
        gen = torch.Generator().manual_seed(n_blocks)
        for noise in (0.0, 1e-3):
            r = classify_depth(arch, theta + noise * torch.randn(theta.shape, generator=gen), TASK)
            assert r.solves.all()
            assert (r.walsh_label == want).all() and (r.label == want).all()
            # Walsh vs ablation: planted circuits give no disagreement at all (docs/circuits.md)
            assert r.disagreements.sum() == 0


def test_all_twelve_chains_and_evidence():
    nets = [parity_chain(5, 2, (0, 2, 4), order) for order in itertools.permutations(range(4))]
    arch, theta = nets[0][0], torch.cat([t for _, t in nets])
    r = classify_depth(arch, theta, TASK)
    assert (r.label == "serial").all()
    ev = r.evidence[r.evidence["network"] == 0].sort_values("block")
    assert list(ev["block"]) == [0, 2, 4] and list(ev["set"]) == [0b0011, 0b0111, 0b1111]


def test_mixed_and_not_forced():
    sb = StreamBuilder(4, 4, 4, 7)  # chain and tree side by side -> mixed
    sb.xor(0, 0, 1, 4)
    sb.xor(1, 2, 3, 5)
    sb.xor(1, 4, 2, 6)
    sb.xor(3, 4, 5, 4, gain=3.0)
    sb.xor(3, 6, 3, 4, gain=3.0)
    mixed = sb.read(4, 4)
    sb = StreamBuilder(4, 4, 4, 6)  # a pair only: no full parity anywhere
    sb.xor(1, 0, 1, 4)
    pair_only = sb.read(4, 4)
    sb = StreamBuilder(4, 4, 4, 6)  # pair in block 0, full parity in block 2 from scratch
    sb.xor(0, 0, 1, 5)
    sb.parity(2, [0, 1, 2, 3], 4)
    intermediate_then_single = sb.read(4, 4)
    sb = StreamBuilder(4, 3, 4, 6)  # inert chain: computed, but the readout looks at x1 only
    sb.xor(0, 0, 1, 4)
    sb.xor(1, 4, 2, 5)
    sb.xor(2, 5, 3, 4, gain=3.0)
    arch_i, theta_i = sb.read(4, 4)
    theta_i[0, arch_i.slice("W_read").start:arch_i.slice("W_read").stop] = 0
    theta_i[0, arch_i.slice("W_read").start] = 1.0
    labels = []
    for arch, theta in (mixed, pair_only, intermediate_then_single):
        labels.append(classify_depth(arch, theta, TASK).label[0])
    assert labels == ["mixed", "other", "other"]
    r = classify_depth(arch_i, theta_i, TASK)
    assert r.walsh_label[0] == "serial" and r.label[0] == "other" and r.disagreements[0] == 3


def test_scores_match_labels_and_tau():
    arch, theta_tree = parity_tree(4, 4, (1, 1, 3))  # both pairs in one block: 1/2 of its power each
    frac = block_fractions(arch, theta_tree, TASK.x)
    assert classify_depth(arch, theta_tree, TASK, tau=0.4).label[0] == "parallel"
    # at tau = 0.6 neither pair counts as computed, so the full parity has no visible intermediate
    assert classify_depth(arch, theta_tree, TASK, tau=0.6).label[0] == "single"
    assert class_scores(frac, 0b1111, 0.6)["single"][0] > 0
    population = Prior().sample(arch, 3000, seed=2)
    nets = planted(4, 4)
    theta = torch.cat([population, *[t for _, (_, t) in nets]])
    r = classify_depth(arch, theta, TASK)
    scores = class_scores(block_fractions(arch, theta, TASK.x), 0b1111)
    for name in depth.LABELS:
        assert np.array_equal(scores[name].numpy() > 0, r.walsh_label == name), name
    assert set(r.label) <= set(depth.LABELS)


@pytest.mark.parametrize("n_blocks", range(1, 9))
def test_placement_counts_enumeration_vs_formula(n_blocks):
    for width in range(1, 7):
        costs, parents = depth.chain_graph()
        chain = depth.count_placements(costs, parents, n_blocks, width)
        assert chain == depth.chain_placement_formula(n_blocks, width)
        costs, parents = depth.tree_graph()
        tree = depth.count_placements(costs, parents, n_blocks, width)
        assert tree == depth.tree_placement_formula(n_blocks, width)
        assert len(depth.chains(0b1111)) * chain == depth.all_chains_formula(n_blocks, width)
        assert len(depth.splits(0b1111)) * tree == depth.all_trees_formula(n_blocks, width)
    assert len(depth.serial_placements(0b1111, n_blocks).sets) == depth.all_chains_formula(n_blocks, 4)
    assert len(depth.parallel_placements(0b1111, n_blocks).sets) == depth.all_trees_formula(n_blocks, 4)
    assert len(depth.chains(0b111111)) == 360 and len(depth.splits(0b111111)) == 25
