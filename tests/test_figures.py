"""`python sweeps/reproduce_all.py --quick --only NAME` regenerates each figure end to end
(one test per figure script, so `-k depth` runs one); the counting figures also publish
their PNG + CSV; `make figures` runs exactly the publishing scripts."""
import argparse
import os
import subprocess
import sys
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(ROOT / "sweeps"))
import common  # noqa: E402

SCRIPTS = sorted(p.stem.removeprefix("fig_") for p in (ROOT / "sweeps").glob("fig_*.py"))
# Lines each script must print besides its timing line (the numbers behind a panel).
PRINTS = {"depth": ["tau = 0.3, L = 4", "tau = 0.5, L = 4", "tau = 0.4:   serial"],
          "depth_budget": ["L = 3, tau = 0.4, large: 30 x 3 x 2 unit_only:",
                           "L = 4, tau = 0.5, large: 30 x 3 x 2 unit_only:",
                           "L = 4, tau = 0.5, published: 250 x 12 x 100 unit: ratio_parallel_serial"],
          "llamaizer": ["P(some deep llama | target) in [max_h", "cross-check sum_h P(h) E[1/N | h]",
                        "width: deep -log2 sum_h P(h | target)"]}


PUBLISHED = ("llamaizer", "depth", "depth_budget")  # what `make figures` publishes to docs/figures, in order


@pytest.mark.parametrize("name", SCRIPTS)
def test_reproduce_quick(tmp_path, name):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    published = tmp_path.parent / f"{tmp_path.name}_published"
    proc = subprocess.run([sys.executable, "sweeps/reproduce_all.py", "--quick", "--only", name, "--out", str(tmp_path),
                           "--publish", str(published)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The figure sits in its own folder; its runs (and their per-run figures) below runs*/.
    figures = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")
               if not any(part.startswith("runs") for part in p.relative_to(tmp_path).parts)]
    assert figures == [f"{name}/{name}.png"]
    if name in PUBLISHED:  # the PNG and the CSV of the numbers plotted, nothing else
        assert sorted(p.name for p in published.iterdir()) == [f"{name}.csv", f"{name}.png"]
        assert (published / f"{name}.png").stat().st_size <= common.MAX_PNG_BYTES
        table = pd.read_csv(published / f"{name}.csv")
        assert list(table.columns[:6]) == list(common.ESTIMATE_COLUMNS) and "series" in table.columns
        assert "target" in set(table["series"]) and table["n_evals"].max() > 0
    assert f"{name}:" in proc.stdout  # its timing line
    for line in PRINTS.get(name, []):
        assert line in proc.stdout, line


def test_llamaizer_slope_bound_from_an_estimate_to_later_upper_bounds():
    sys.path.insert(0, str(ROOT / "sweeps"))
    from fig_llamaizer import slope_bound

    estimate = {"log_p": -34.0, "ci": [-43.0, -25.0], "bound": None}
    loose, tight = {"log_p": -60.0, "ci": [None, -60.0], "bound": "upper"}, \
        {"log_p": -200.0, "ci": [None, -200.0], "bound": "upper"}
    assert slope_bound([(2.0, estimate), (5.0, loose), (11.0, tight)]) == ((-200.0 + 43.0) / 9.0, 2.0, 11.0)
    assert slope_bound([(5.0, loose), (11.0, tight)]) is None  # no estimate to start from
    assert slope_bound([(2.0, estimate), (1.0, loose)]) is None  # a bound only counts beyond the estimate


def test_publish_writes_png_and_csv_with_estimate_columns(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    rows = [{**common.estimate_fields({"log_p": -3.0, "ci": [-4.0, -2.0], "n_evals": 10, "bound": None,
                                       "reliable": False}), "series": "a", "m": 2},
            {**common.estimate_fields({"log_p": -9.0, "ci": [None, -9.0], "n_evals": 5, "bound": "upper"}),
             "series": "b"},
            {**common.estimate_fields(None), "series": "c"}]
    png, csv = common.publish(fig, rows, tmp_path / "pub", "toy")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(csv, keep_default_na=False)
    assert list(table.columns) == [*common.ESTIMATE_COLUMNS, "series", "m"]
    assert table["bound"].tolist() == ["", "upper", ""] and table["reliable"].astype(str).tolist()[:2] == ["False",
                                                                                                         "True"]
    assert table.loc[1, "ci_low"] == "" and float(table.loc[0, "ci_high"]) == -2.0


def test_publish_refuses_a_png_over_the_size_limit(tmp_path):
    fig, ax = plt.subplots(figsize=(12, 12))
    ax.imshow(np.random.default_rng(0).random((600, 600, 3)))  # noise: compresses badly
    with pytest.raises(RuntimeError, match="<= 300,000"):
        common.publish(fig, [], tmp_path, "big", dpi=100)


def test_make_figures_runs_exactly_the_publishing_scripts():
    recipe = subprocess.run(["make", "-n", "figures", "BUDGET=quick"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    line = next(line for line in recipe.replace("\\\n", " ").splitlines() if "reproduce_all.py" in line)
    args = line.split()
    assert args[args.index("--only") + 1 : args.index("--only") + 1 + len(PUBLISHED)] == list(PUBLISHED)
    assert args[args.index("--budget") + 1] == "quick" and args[args.index("--publish") + 1] == "docs/figures"
    assert all(name in SCRIPTS for name in PUBLISHED)
    assert "/figures/" in (ROOT / ".gitignore").read_text().split()  # raw runs out of git, docs/figures in


def test_results_tables_cells_and_extrapolation():
    import results_tables as rt

    row = {"log_p": -3.0, "ci_low": -4.5, "ci_high": -1.0, "bound": np.nan, "reliable": False}
    assert rt.cell(pd.Series(row)) == "-3.00 [-4.50, -1.00]*"
    assert rt.cell(pd.Series({**row, "bound": "upper", "log_p": -9.0, "ci_low": np.nan, "ci_high": -8.0})) \
        == "upper bound -8.00*"  # at its conservative end
    assert rt.cell(pd.Series({**row, "reliable": True})) == "-3.00 [-4.50, -1.00]"
    # width 20 -> 4 needs (20/4)^2 = 25x the runs and evaluations; a width already met needs no more
    assert rt.needs(20.0, 4.0, 4, 1e6) == (100, 25e6)
    assert rt.needs(2.0, 4.0, 4, 1e6) == (4, 1e6)
    # depth_budget: one line per (L, tau, budget), published first as in the CSV, each series in its column
    rows = [{**row, "L": L, "tau": 0.4, "budget": b, "series": s, "log_p": float(-L - k)}
            for L in (4, 3) for b in ("published: a", "large: b")
            for k, s in enumerate(("target", "serial_joint", "parallel_joint", "ratio_parallel_serial"))]
    lines = rt.depth_budget_tables(pd.DataFrame(rows)).splitlines()[2:]
    tau_rows = pd.DataFrame([{**r, "tau": tau} for r in rows if r["L"] == 4 for tau in (0.5, 0.3)])
    assert [line.split(" | ")[1:3] for line in rt.depth_budget_tables(tau_rows).splitlines()[2:]] == [
        ["0.3", "published: a"], ["0.3", "large: b"], ["0.5", "published: a"], ["0.5", "large: b"]]  # by tau
    assert [line.split(" | ")[:4] for line in lines] == [["| 3", "0.4", "published: a", "-3.00 [-4.50, -1.00]*"],
                                                        ["| 3", "0.4", "large: b", "-3.00 [-4.50, -1.00]*"],
                                                        ["| 4", "0.4", "published: a", "-4.00 [-4.50, -1.00]*"],
                                                        ["| 4", "0.4", "large: b", "-4.00 [-4.50, -1.00]*"]]
    assert lines[0].split(" | ")[-1] == "-6.00 [-4.50, -1.00]* |"  # the ratio column
    # its targets: only its own runs (the published rows are depth's), one line per L, named by budget
    runs = pd.DataFrame([{**r, "ci_low": r["log_p"] - 1.0, "ci_high": r["log_p"] + 4.0, "bound": "", "n_runs": 12,
                          "n_evals": 1e6, "run_n_evals": 2e6, "run_seconds": 10.0} for r in rows])
    targets = rt.target_rows("depth_budget", rt.own_rows(runs))
    assert [t[0] for t in targets] == [f"depth ratio, L = {L}, tau = 0.4, large: b" for L in (4, 3)]
    assert targets[0][2:7] == ["5.0", "4.0", "12", "19", "1.56e+06"]  # 12 runs x (5/4)^2 = 18.75


def test_budgets_set_the_sweeps():
    """Each budget's splitting options reach every sweep of both counting scripts; night adds
    m = 4 (task.n = 8); --quick overrides --budget; raw runs go to figures/NAME/BUDGET."""
    import fig_depth
    import fig_llamaizer

    for name in ("default", "night"):
        llama, _, _ = fig_llamaizer.settings(name)
        assert all(set(fig_llamaizer.BUDGET[name]) <= set(sweep) for sweep in llama)
        assert all(set(fig_depth.BUDGET[name]) <= set(sweep) for sweep in fig_depth.settings(name))
        assert ("task.n=8,7,6,5" in llama[0]) == (name == "night")
    assert fig_depth.settings("quick")[0][-1] == "model.n_blocks=3,4"
    args = common.parser("x").parse_args(["--quick", "--budget", "night"])
    assert common.budget(args) == "quick" and common.out_dir(args, "depth") == ROOT / "figures" / "depth" / "quick"


class FakeSweep:
    """Stands in for subprocess.Popen of `python -m volume -m ...`: logs start and wait, writes
    one finished job into its sweep dir, exits with 1 if its overrides contain 'fail'; waiting
    on one whose overrides contain 'interrupt' raises KeyboardInterrupt (Ctrl-C in the script)."""

    log: list = []

    def __init__(self, cmd, **kwargs):
        self.name = next(a.split("=", 1)[1] for a in cmd if a.startswith("hydra.sweep.dir="))
        self.returncode = 1 if "fail" in cmd else 0
        FakeSweep.log.append(("start", self.name))

    def wait(self):
        if "interrupt" in self.name and ("terminate", self.name) not in FakeSweep.log:
            raise KeyboardInterrupt
        if ("wait", self.name) not in FakeSweep.log:
            FakeSweep.log.append(("wait", self.name))
            job = os.path.join(self.name, "0")
            os.makedirs(job, exist_ok=True)
            open(os.path.join(job, "results.json"), "w").write("{}")
        return self.returncode

    def terminate(self):
        FakeSweep.log.append(("terminate", self.name))


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sweeps_run_side_by_side_only_with_a_parallel_launcher(tmp_path, monkeypatch, launcher):
    """basic: one sweep after another, and a failure stops the rest; joblib: every sweep starts
    before any is waited for, and a failure is raised only after all have finished."""
    monkeypatch.setattr(common.subprocess, "Popen", FakeSweep)
    a, b = tmp_path / "a", tmp_path / "b"
    FakeSweep.log = []
    assert common.run_sweeps([(a, ["x=1"]), (b, ["x=2"])], launcher) == [[a / "0"], [b / "0"]]
    order = [("start", str(a)), ("wait", str(a)), ("start", str(b)), ("wait", str(b))]
    if launcher != "basic":
        order = [order[0], order[2], order[1], order[3]]
    assert FakeSweep.log == order
    for failing in (0, 1):
        FakeSweep.log = []
        sweeps = [(a, ["x=1"]), (b, ["x=2"])]
        sweeps[failing] = (sweeps[failing][0], ["fail"])
        with pytest.raises(subprocess.CalledProcessError) as error:
            common.run_sweeps(sweeps, launcher)
        assert f"hydra.sweep.dir={sweeps[failing][0]}" in error.value.cmd
        started = [name for event, name in FakeSweep.log if event == "start"]
        assert started == ([str(a)] if launcher == "basic" and failing == 0 else [str(a), str(b)])
        assert all(("wait", name) in FakeSweep.log for name in started)
    # Stopping the figure script stops every sweep it started.
    FakeSweep.log = []
    with pytest.raises(KeyboardInterrupt):
        common.run_sweeps([(tmp_path / "interrupt", ["x=1"]), (b, ["x=2"])], launcher)
    started = [name for event, name in FakeSweep.log if event == "start"]
    assert started == ([str(tmp_path / "interrupt")] if launcher == "basic" else [str(tmp_path / "interrupt"), str(b)])
    assert all(("terminate", name) in FakeSweep.log for name in started)


def test_xor_seeds_measures_against_the_truth_and_resumes(tmp_path, monkeypatch):
    import xor_seeds
    from volume.estimators.ground_truth import XOR_FACTOR_LOG_P

    row = xor_seeds.measure(5, 2, seed=7, moves="unit_only", n_moves=5)  # a real conditional run, small budget
    assert row["exact"] == 3 * XOR_FACTOR_LOG_P and row["error"] == row["log_p"] - row["exact"]
    assert row["covered"] == (row["bound"] == "" and row["ci_low"] <= row["exact"] <= row["ci_high"])
    calls = []

    def fake(k, j, seed, moves, n_moves):  # a made-up estimate; what matters here is which cases run
        calls.append((seed, k, j))
        return {**row, "seed": seed, "k": k, "j": j, "moves": moves, "n_moves": n_moves}

    monkeypatch.setattr(xor_seeds, "measure", fake)
    for seeds in (["1"], ["1", "2"]):  # the second call resumes: only seed 2's cases run
        monkeypatch.setattr(sys, "argv", ["xor_seeds.py", "--seeds", *seeds, "--out", str(tmp_path)])
        xor_seeds.main()
    assert calls == [(s, k, j) for s in (1, 2) for k, j in xor_seeds.CASES]
    assert len(pd.read_csv(tmp_path / "xor_seeds.csv")) == 8 and (tmp_path / "xor_seeds.png").exists()


def test_depth_budget_labels_and_published_rows():
    import fig_depth
    import fig_depth_budget as fb

    assert fb.label(fig_depth.BUDGET["default"]) == "250 x 12 x 100 unit"  # moves from conf/experiment/depth.yaml
    assert fb.label(fb.LARGE["large"]) == "1000 x 12 x 100 unit_only"
    assert fb.block_counts("3,4,5,6") == [3, 4, 5, 6]
    for bad in ("3,x", "0,3", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated integers >= 1"):
            fb.block_counts(bad)
    # which (L, tau) are drawn: the L sweep at tau = 0.4, the tau panel at L = 4 (not L = 5 at 0.5, not 0.3 unasked)
    drawn = [(L, tau) for L in (3, 4, 5) for tau in (0.3, 0.4, 0.5) if fb.in_figure(L, tau, [3, 5], (0.5,))]
    assert drawn == [(3, 0.4), (4, 0.5), (5, 0.4)]
    rows = fb.published_rows(ROOT / "docs" / "figures" / "depth.csv", [3, 5], (0.5,))
    # tau = 0.4 at the L asked for; at L = 4 (the tau panel) the taus asked for: not L = 4 at 0.4 nor tau = 0.3
    assert sorted((r["L"], r["tau"], r["series"]) for r in rows) == sorted(
        (L, tau, s) for L, tau in ((3, 0.4), (5, 0.4), (4, 0.5)) for s in (*fb.SERIES, fb.RATIO))
    assert {r["budget"] for r in rows} == {"published: 250 x 12 x 100 unit"}
    ratio = {(r["L"], r["tau"]): r for r in rows if r["series"] == fb.RATIO}
    joint = {(r["L"], r["tau"], r["series"]): r["log_p"] for r in rows}
    for L, tau in ratio:  # the ratio is the difference of the joints (P(target) cancels); the CSV keeps 10 digits
        assert ratio[L, tau]["log_p"] == pytest.approx(
            joint[L, tau, "parallel_joint"] - joint[L, tau, "serial_joint"], abs=1e-6)


def test_finish_figure_legend_only_for_labelled_artists(tmp_path):
    """A panel with nothing labelled (e.g. a llamaizer run whose target was never reached) gets
    no legend and no matplotlib warning; a labelled one gets its legend."""
    from volume.results import finish_figure

    for labelled in (False, True):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], label="drawn" if labelled else None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert finish_figure(fig, tmp_path / f"{labelled}.png", ax, legend_size=6) == f"{labelled}.png"
        assert (ax.get_legend() is not None) == labelled
        assert (tmp_path / f"{labelled}.png").stat().st_size > 0
