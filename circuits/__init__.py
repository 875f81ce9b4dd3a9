"""Mechanistic analysis of small networks: batched unit truth tables and Walsh spectra
(units), Boolean-function counting and symmetry classes (boolean), interventions
(ablation, patching, path-length decomposition), hand-built reference networks
(reference), classifier 1: direct vs inner llamaizer (llama), classifier 2: serial vs
parallel parity circuits (depth), and on-demand graphs and drawings (graph, draw)."""
