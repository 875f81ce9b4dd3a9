"""PNG drawing of one network's graph, with the units that carry a classifier's evidence
highlighted (llama units, or the blocks of a serial / parallel / single-block placement)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from volume.results import save_figure  # noqa: E402


def evidence_nodes(result, network: int) -> set:
    """Graph nodes behind a LlamaResult's or DepthResult's label of one network."""
    if hasattr(result, "llamas"):
        rows = result.llamas[result.llamas["network"] == network]
        return {("h", int(r.layer), int(r.unit)) for r in rows.itertuples()}
    rows = result.evidence[result.evidence["network"] == network]
    return {("write", int(b)) for b in rows["block"]}


def _label(g: nx.DiGraph, node) -> str:
    data = g.nodes[node]
    if data["kind"] == "write":
        top = data.get("top_set", 0)
        bits = "".join(str(j + 1) for j in range(top.bit_length()) if (top >> j) & 1) or "-"
        return f"B{node[1]}:{bits}\n{data.get('top_share', 0):.2f}"
    if data["kind"] == "input":
        return f"x{node[1] + 1}"
    deps = data.get("depends")
    return "" if deps is None else ",".join(map(str, deps)) or "c"


def draw_graph(g: nx.DiGraph, path: Path, highlight: set = frozenset(), title: str = "",
               min_weight: float = 0.05) -> None:
    """Layered drawing (x = layer, y = position in layer); edges with |weight| below
    min_weight x the largest are left out; highlighted nodes in red."""
    pos = {}
    for node, data in g.nodes(data=True):
        pos[node] = (data["layer"], -data["index"])
    weights = np.array([abs(w) for *_, w in g.edges(data="weight")] or [0.0])
    top = max(weights.max(), 1e-12)
    edges = [(a, b) for a, b, w in g.edges(data="weight") if abs(w) >= min_weight * top]
    fig, ax = plt.subplots(figsize=(2 + 1.2 * max(d["layer"] for _, d in g.nodes(data=True)), 6))
    nx.draw_networkx_edges(g, pos, edgelist=edges, ax=ax, alpha=0.4, arrows=False,
                           width=[0.3 + 2.5 * abs(g.edges[e]["weight"]) / top for e in edges])
    colors = ["tab:red" if n in highlight else "lightgrey" for n in g.nodes]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=260, edgecolors="black", linewidths=0.5)
    nx.draw_networkx_labels(g, pos, labels={n: _label(g, n) for n in g.nodes}, ax=ax, font_size=6)
    ax.set_title(title or g.graph.get("arch", ""), fontsize=9)
    ax.axis("off")
    save_figure(Path(path), fig)
    plt.close(fig)
