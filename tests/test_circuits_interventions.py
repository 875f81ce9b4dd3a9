"""Interventions against weight edits that must give the same network, the path
decomposition against brute-force path sums, and the graph/drawing round trip."""
import itertools

import numpy as np
import torch

from circuits.draw import draw_graph, evidence_nodes
from circuits.graph import algorithm_graph, network_graph
from circuits.interventions import (ablate_blocks, ablate_one_unit, ablate_units, patch_block, patch_units,
                                    path_decomposition, path_length_profile)
from circuits.llama import classify_llamas, llama_task
from circuits.reference import llama_network
from volume.functions import keys_to_hex, output_keys
from volume.nets import MLP, ResidualMLP
from volume.priors import Prior

X = llama_task(3).x


def test_mlp_unit_ablation_equals_weight_edit():
    arch = MLP([7, 6, 5, 1])
    theta = Prior().sample(arch, 8, seed=0, dtype=torch.float64)
    layer, unit = 0, 3
    mask = torch.zeros(8, 6, dtype=torch.bool)
    mask[:, unit] = True
    w = arch.slice("W1").view(theta)
    edited = theta.clone()
    arch.slice("W1").view(edited)[:, unit, :] = 0  # zero: unit's outgoing weights removed
    assert torch.allclose(ablate_units(arch, theta, X, layer, mask, "zero"), arch.forward(edited, X))
    mean = torch.relu(arch.preactivations(theta, X)[0][:, :, unit]).mean(1)
    arch.slice("b1").view(edited)[:] += mean[:, None] * w[:, unit, :]  # mean: constant moved into the bias
    assert torch.allclose(ablate_units(arch, theta, X, layer, mask, "mean"), arch.forward(edited, X))
    pre = arch.preactivations(theta, X)
    clean, ablated = ablate_one_unit(arch, theta, pre, layer, torch.full((8,), unit), "mean")
    assert torch.equal(clean, pre[-1]) or torch.allclose(clean, pre[-1])
    assert torch.allclose(ablated, arch.forward(edited, X))


def test_mlp_patching():
    arch = MLP([7, 6, 5, 1])
    theta = Prior().sample(arch, 4, seed=1)
    everything = torch.ones(4, 5, dtype=torch.bool)
    source = X.flip(0)
    assert torch.allclose(patch_units(arch, theta, X, source, 1, everything), arch.forward(theta, source), atol=1e-6)
    assert torch.allclose(patch_units(arch, theta, X, X, 0, everything[:, :1].expand(4, 6)), arch.forward(theta, X))


def test_block_ablation_equals_weight_edit_and_patching():
    arch = ResidualMLP(4, 3, 3, 6)
    x = X[:16, :4]
    theta = Prior().sample(arch, 5, seed=2, dtype=torch.float64)
    mask = torch.zeros(5, 3, dtype=torch.bool)
    mask[:, 1] = True
    edited = theta.clone()
    arch.slice("W_out1").view(edited)[:] = 0
    arch.slice("b_out1").view(edited)[:] = 0
    assert torch.allclose(ablate_blocks(arch, theta, x, mask, "zero"), arch.forward(edited, x))
    arch.slice("b_out1").view(edited)[:] = arch.block_writes(theta, x)[0][1].mean(1)
    assert torch.allclose(ablate_blocks(arch, theta, x, mask, "mean"), arch.forward(edited, x))
    assert torch.allclose(patch_block(arch, theta, x, x, 2), arch.forward(theta, x))
    # patching the last block from another input moves exactly its write
    writes, _ = arch.block_writes(theta, x)
    src = x.flip(0)
    delta = arch.block_writes(theta, src)[0][2] - writes[2]
    expect = arch.forward(theta, x) + delta @ arch.slice("W_read").view(theta)
    assert torch.allclose(patch_block(arch, theta, x, src, 2), expect)


def test_path_decomposition():
    x = X[:16, :4]
    for activation in ("identity", "relu"):
        arch = ResidualMLP(4, 3, 3, 6, activation=activation)
        theta = Prior().sample(arch, 4, seed=3, dtype=torch.float64)
        parts = path_decomposition(arch, theta, x)
        assert torch.allclose(parts.sum(2), arch.forward(theta, x))  # exact sum, both cases
        profile = path_length_profile(parts)
        assert torch.allclose(profile.sum(1), torch.ones(4, dtype=torch.float64))
    # identity blocks: brute force over subsets of blocks, term by term
    a = [arch.slice(f"W_in{k}").view(theta) @ arch.slice(f"W_out{k}").view(theta) for k in range(3)]
    c = [arch.slice(f"b_in{k}").view(theta).unsqueeze(1) @ arch.slice(f"W_out{k}").view(theta)
         + arch.slice(f"b_out{k}").view(theta).unsqueeze(1) for k in range(3)]
    arch = ResidualMLP(4, 3, 3, 6, activation="identity")
    r0 = arch.embed(x, theta.dtype).expand(4, -1, -1)
    w_read = arch.slice("W_read").view(theta)
    brute = torch.zeros(4, 16, 4, 1, dtype=torch.float64)
    for subset in itertools.chain.from_iterable(itertools.combinations(range(3), s) for s in range(4)):
        term = r0
        for k in subset:
            term = term @ a[k]
        brute[:, :, len(subset)] += term @ w_read
        for first in range(3):  # paths from a block's bias through later blocks of the subset
            if first in subset:
                continue
            later = [k for k in subset if k > first]
            if len(later) != len(subset):
                continue
            term = c[first].expand(4, 16, -1)
            for k in later:
                term = term @ a[k]
            brute[:, :, 1 + len(later)] += term @ w_read
    brute[:, :, 0] += arch.slice("b_read").view(theta).unsqueeze(1)
    assert torch.allclose(path_decomposition(arch, theta, x), brute)


def test_graph_and_drawing(tmp_path):
    task = llama_task(3)
    arch, theta, info = llama_network("deep_used")
    g = network_graph(arch, theta, task)
    assert g.number_of_nodes() == 7 + 12 + 6 + 1 and g.number_of_edges() == 7 * 12 + 12 * 6 + 6
    assert g.nodes[("y", 0)]["key"] == keys_to_hex(output_keys(arch.forward(theta, task.x)), 128)[0]
    assert g.nodes[("h", 1, 1)]["depends"] == [5, 6]
    assert g.edges[("h", 1, 0), ("y", 0)]["weight"] == 1.0
    r = classify_llamas(arch, theta, task)
    nodes = evidence_nodes(r, 0)
    assert {("h", layer, unit) for layer, unit in info["llama_units"]} == nodes
    draw_graph(g, tmp_path / "net.png", nodes)
    assert (tmp_path / "net.png").read_bytes()[:4] == b"\x89PNG"
    assert set(algorithm_graph("chain").predecessors("x1x2x3x4")) == {"x1x2x3", "x4"}
    arch = ResidualMLP(4, 2, 2, 6)
    g = network_graph(arch, Prior().sample(arch, 1, seed=0), llama_task(3).__class__(
        "p", X[:16, :4], np.zeros(16, bool), {"encoding": "pm1"}))
    assert abs(sum(g.nodes[("write", 0)]["walsh_shares"]) - 1) < 1e-5
