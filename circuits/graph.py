"""One network as a networkx DiGraph, built on demand for inspection and plots (the
classifiers never build graphs). Nodes carry their activations on every input and, on the
Boolean cube, their thresholded truth table (hex key as in volume.functions), the variables
it depends on (1-based) and its Walsh spectrum; edges carry weights.

MLP nodes: ("x", j) inputs, ("h", layer, unit) hidden units, ("y", k) outputs.
ResidualMLP nodes: ("x", j) inputs, ("u", block, unit) hidden units of a block, ("write",
block) the block's write to the stream (attributes: Walsh power shares, top set), ("y", k).
An edge from a write to a unit carries the RMS over inputs of the write's contribution to
that unit's pre-activation; from a unit to its write, the norm of its W_out row.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import torch

from circuits.units import cube_dim, dependence_masks, power_fractions, walsh
from volume.functions import keys_to_hex, pack_bits
from volume.nets import MLP, Architecture, ResidualMLP
from volume.tasks import Task


def _table_attrs(values: torch.Tensor, cube: bool) -> dict:
    """Attributes of one node from its values [N] (pre-activation for units)."""
    attrs = {"values": values.numpy().copy()}
    if cube:
        n = cube_dim(len(values))
        table = values > 0
        attrs["key"] = keys_to_hex(pack_bits(table.numpy()[None]), len(values))[0]
        mask = int(dependence_masks(table[None], n)[0])
        attrs["depends"] = [j + 1 for j in range(n) if (mask >> j) & 1]
        attrs["walsh"] = walsh(values.to(torch.float64)).numpy()
    return attrs


def _is_cube(task: Task) -> bool:
    n_inputs = task.n_inputs
    return n_inputs & (n_inputs - 1) == 0 and task.info.get("encoding") in ("01", "pm1")


def network_graph(arch: Architecture, theta: torch.Tensor, task: Task) -> nx.DiGraph:
    """The DiGraph of network theta (one row, [P] or [1, P]) on the task's inputs."""
    theta = theta.reshape(1, -1)
    if isinstance(arch, MLP):
        return _mlp_graph(arch, theta, task)
    if isinstance(arch, ResidualMLP):
        return _residual_graph(arch, theta, task)
    raise ValueError(f"no graph for {type(arch).__name__}")


def _mlp_graph(arch: MLP, theta: torch.Tensor, task: Task) -> nx.DiGraph:
    g, cube = nx.DiGraph(arch=arch.describe()), _is_cube(task)
    with torch.no_grad():
        pre = [p[0] for p in arch.preactivations(theta, task.x)]
    prev = [("x", j) for j in range(arch.n_in)]
    for j, node in enumerate(prev):
        g.add_node(node, kind="input", layer=0, index=j, **_table_attrs(task.x[:, j], cube))
    for layer, z in enumerate(pre):
        last = layer == len(pre) - 1
        nodes = [("y", u) if last else ("h", layer, u) for u in range(z.shape[1])]
        weights = arch.slice(f"W{layer}").view(theta)[0].numpy()
        for u, node in enumerate(nodes):
            g.add_node(node, kind="output" if last else "hidden", layer=layer + 1, index=u,
                       **_table_attrs(z[:, u], cube))
            for i, src in enumerate(prev):
                g.add_edge(src, node, weight=float(weights[i, u]))
        prev = nodes
    return g


def _residual_graph(arch: ResidualMLP, theta: torch.Tensor, task: Task) -> nx.DiGraph:
    g, cube = nx.DiGraph(arch=arch.describe()), _is_cube(task)
    x = task.x
    with torch.no_grad():
        writes = [w[0] for w in arch.block_writes(theta, x)[0]]
        stream = arch.embed(x, theta.dtype)
        for j in range(arch.n_in):
            g.add_node(("x", j), kind="input", layer=0, index=j, **_table_attrs(x[:, j], cube))
        for k in range(arch.n_blocks):
            w_in = arch.slice(f"W_in{k}").view(theta)[0]
            w_out = arch.slice(f"W_out{k}").view(theta)[0]
            z = stream @ w_in + (arch.slice(f"b_in{k}").view(theta)[0] if arch.bias else 0)
            for u in range(arch.block_width):
                node = ("u", k, u)
                g.add_node(node, kind="hidden", layer=2 * k + 1, index=u, **_table_attrs(z[:, u], cube))
                for j in range(arch.n_in):
                    g.add_edge(("x", j), node, weight=float(w_in[j, u]))
                for prev in range(k):
                    contrib = writes[prev] @ w_in[:, u]
                    g.add_edge(("write", prev), node, weight=float(contrib.pow(2).mean().sqrt()))
                g.add_edge(node, ("write", k), weight=float(w_out[u].norm()))
            shares = power_fractions(walsh(writes[k], dim=0).unsqueeze(0))[0].numpy() if cube else None
            attrs = {"values": writes[k].numpy().copy()}
            if cube:
                attrs.update(walsh_shares=shares, top_set=int(np.argmax(shares)), top_share=float(shares.max()))
            g.add_node(("write", k), kind="write", layer=2 * k + 2, index=0, **attrs)
            stream = stream + writes[k]
        w_read = arch.slice("W_read").view(theta)[0]
        out = arch.readout(theta, stream.unsqueeze(0))[0]
        for o in range(arch.n_out):
            node = ("y", o)
            g.add_node(node, kind="output", layer=2 * arch.n_blocks + 1, index=o, **_table_attrs(out[:, o], cube))
            for j in range(arch.n_in):
                g.add_edge(("x", j), node, weight=float(w_read[j, o]))
            for k in range(arch.n_blocks):
                g.add_edge(("write", k), node, weight=float((writes[k] @ w_read[:, o]).pow(2).mean().sqrt()))
    return g


def algorithm_graph(kind: str) -> nx.DiGraph:
    """Reference algorithms as graphs: 'chain' and 'tree' (4-bit parity), 'llama' (f on
    x1..x4 next to a side computation h on distractor bits d1, d2). Nodes are named by what
    they compute; edges say what feeds what."""
    g = nx.DiGraph(kind=kind)
    if kind == "chain":
        g.add_edges_from([("x1", "x1x2"), ("x2", "x1x2"), ("x1x2", "x1x2x3"), ("x3", "x1x2x3"),
                          ("x1x2x3", "x1x2x3x4"), ("x4", "x1x2x3x4")])
    elif kind == "tree":
        g.add_edges_from([("x1", "x1x2"), ("x2", "x1x2"), ("x3", "x3x4"), ("x4", "x3x4"),
                          ("x1x2", "x1x2x3x4"), ("x3x4", "x1x2x3x4")])
    elif kind == "llama":
        g.add_edges_from([("x1", "x1&x2"), ("x2", "x1&x2"), ("x3", "x3&x4"), ("x4", "x3&x4"),
                          ("x1&x2", "f"), ("x3&x4", "f"), ("d1", "d1&~d2"), ("d2", "d1&~d2"),
                          ("d1", "~d1&d2"), ("d2", "~d1&d2"), ("d1&~d2", "h=d1^d2"), ("~d1&d2", "h=d1^d2")])
    else:
        raise ValueError(f"kind: unknown {kind!r}; allowed: ['chain', 'tree', 'llama']")
    return g
