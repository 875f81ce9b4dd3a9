"""Whole runs: exact probabilities, bit-identical tables across batch sizes / shards / threads,
merge == one run, resume after a kill, bad input changing nothing, the CLI end to end
(every config key: test_config_keys.py)."""
import json
import math
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_cfg, run_cli
from volume.__main__ import run
from volume.errors import ConfigError
from volume.experiments import build
from volume.merge import merge
from volume.population import batch_keys, n_chunks
from volume.functions import FunctionTable

SMALL = ["n_samples=20000", "model.hidden=[8]", "task.n=5"]


def table_of(*overrides):
    setup = build(make_cfg(*overrides))
    n = setup.cfg.n_samples
    table = FunctionTable(setup.task.n_inputs)
    table.add(batch_keys(setup.arch, setup.prior, setup.task, setup.cfg.seed, range(n_chunks(n)), n))
    return table


def frequencies(table: FunctionTable) -> dict[str, float]:
    from volume.functions import keys_to_hex

    return dict(zip(keys_to_hex(table.keys, table.n_inputs), table.counts / table.total))


def assert_close_to(p_hat: float, p: float, n: int):
    assert abs(p_hat - p) < 5 * math.sqrt(p * (1 - p) / n), (p_hat, p)


@pytest.mark.parametrize("sigma_b", [0.5, 2.0])
def test_perceptron_one_input_gaussian_closed_form(sigma_b):
    # Outputs b (input 0) and w + b (input 1): a bivariate normal orthant probability,
    # P(both > 0) = 1/4 + asin(rho) / (2 pi), rho = sigma_b / sqrt(sigma_w^2 + sigma_b^2).
    n = 200_000
    freq = frequencies(table_of(f"n_samples={n}", "model.hidden=[]", "task.n=1", f"prior.sigma_b={sigma_b}"))
    rho = sigma_b / math.sqrt(1 + sigma_b**2)
    same = 0.25 + math.asin(rho) / (2 * math.pi)
    for key, p in {"3": same, "0": same, "1": 0.5 - same, "2": 0.5 - same}.items():
        assert_close_to(freq[key], p, n)


def test_perceptron_one_input_uniform_closed_form():
    # b, w ~ U(-a, a): P(b > 0, w + b > 0) is 3/8 of the square, P(b > 0, w + b < 0) is 1/8.
    n = 200_000
    freq = frequencies(table_of(f"n_samples={n}", "model.hidden=[]", "task.n=1", "prior=uniform"))
    for key, p in {"3": 3 / 8, "0": 3 / 8, "1": 1 / 8, "2": 1 / 8}.items():
        assert_close_to(freq[key], p, n)


def test_perceptron_two_inputs_no_bias():
    # sign(w1 x1 + w2 x2) on {-1,1}^2 is the dictator of the larger |w_i|, with the sign of w_i:
    # four functions, 1/4 each by symmetry; nothing else occurs.
    n = 100_000
    freq = frequencies(table_of(f"n_samples={n}", "model.hidden=[]", "model.bias=false", "task.n=2",
                                "task.encoding=pm1"))
    assert set(freq) == {"a", "5", "c", "3"}
    for p_hat in freq.values():
        assert_close_to(p_hat, 0.25, n)


def test_tables_identical_across_batch_sizes_and_threads():
    reference = table_of(*SMALL, "batch_size=16384")
    assert table_of(*SMALL, "batch_size=512") == reference
    assert table_of(*SMALL, "batch_size=3000") == reference
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    try:
        torch.set_num_threads(1)
        numba.set_num_threads(1)
        one_thread = table_of(*SMALL)
    finally:
        torch.set_num_threads(torch_threads)
        numba.set_num_threads(numba_threads)
    assert one_thread == reference
    # 7-40-40-1 too: its matmuls are the ones whose rounding could depend on threads.
    big = ["n_samples=4096"]
    ref_big = table_of(*big)
    try:
        torch.set_num_threads(1)
        numba.set_num_threads(1)
        assert table_of(*big, "batch_size=1024") == ref_big
    finally:
        torch.set_num_threads(torch_threads)
        numba.set_num_threads(numba_threads)


def read_csv(path):
    return pd.read_csv(path, dtype={"function": str})


def test_shards_merge_to_exactly_one_run(tmp_path):
    single = tmp_path / "single"
    run(make_cfg(*SMALL), single)
    shard_dirs = []
    for shard in range(3):
        shard_dirs.append(tmp_path / f"shard{shard}")
        run(make_cfg(*SMALL, f"shard={shard}", "num_shards=3", "batch_size=1024"), shard_dirs[-1])
    parts = [read_csv(d / "functions.csv")["count"].sum() for d in shard_dirs]
    assert sum(parts) == 20000 and min(parts) > 0
    merge(shard_dirs, tmp_path / "merged")
    pd.testing.assert_frame_equal(read_csv(tmp_path / "merged" / "functions.csv"), read_csv(single / "functions.csv"))
    with pytest.raises(ConfigError, match="shards"):
        merge(shard_dirs[:2], tmp_path / "partial")
    other = tmp_path / "other"
    run(make_cfg(*SMALL, "seed=1", "shard=2", "num_shards=3"), other)
    with pytest.raises(ConfigError, match="seed"):
        merge(shard_dirs[:2] + [other], tmp_path / "mixed")


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("n_samples=5000", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    assert "distinct functions" in proc.stdout
    frame = read_csv(out / "functions.csv")
    assert list(frame.columns) == ["function", "count", "log_p", "ci_low", "ci_high", "lz", "ones", "sensitivity"]
    assert frame["count"].sum() == 5000 and frame["count"].is_monotonic_decreasing
    assert (frame["function"].str.len() == 32).all()
    assert np.allclose(frame["log_p"], np.log(frame["count"] / 5000))
    assert ((frame["ci_low"] <= frame["log_p"]) & (frame["log_p"] <= frame["ci_high"])).all()
    summary = json.loads((out / "results.json").read_text())
    assert summary["summary"]["n_distinct_functions"] == len(frame)
    assert summary["summary"]["networks_per_second"] > 0
    assert summary["config"]["model"]["hidden"] == [40, 40]
    for figure in ("rank.png", "logp_vs_lz.png"):
        assert (out / figure).stat().st_size > 1000
    # Same config again without resume: allowed (recomputes); another config: refused.
    proc = run_cli("n_samples=5000", "seed=3", f"hydra.run.dir={out}")
    assert proc.returncode == 2 and "seed" in proc.stderr and "resume" in proc.stderr
    assert read_csv(out / "functions.csv").equals(frame)


def test_resume_after_kill_continues_from_the_checkpoint(tmp_path, monkeypatch):
    """Killed (os._exit, as kill -9: no clean-up) right after its second checkpoint, then resumed:
    the resumed run computes exactly the samples the checkpoint had not counted, keeps an
    altered checkpoint value, and ends with the table of an uninterrupted run."""
    from conftest import run_in_process
    from volume import results
    from volume.experiments import simplicity_bias
    from volume.population import CHUNK

    args = ["n_samples=20000", "model.hidden=[8]", "task.n=5", "checkpoint_seconds=0", "batch_size=2048"]
    out = tmp_path / "killed"
    killed = run_cli(*args, f"hydra.run.dir={out}", env={results.EXIT_AFTER_CHECKPOINT: "2"})
    assert killed.returncode == results.KILLED, killed.stderr
    assert (out / "checkpoint.npz").exists() and not (out / "results.json").exists()
    state = results.read_checkpoint(out / "checkpoint.npz")
    done = int(state["count__next_chunk"]) * CHUNK  # stage "count" of results.Stages
    assert done == 2 * 2048  # two batches of 2048, a checkpoint after each
    results.write_npz(out / "checkpoint.npz", {**state, "count__elapsed": np.array(1e6)})
    computed, real = [], simplicity_bias.batch_keys

    def counted(*a, **k):
        keys = real(*a, **k)
        computed.append(len(keys))
        return keys

    monkeypatch.setattr(simplicity_bias, "batch_keys", counted)
    summary = run_in_process(out, *args, "resume=true")
    assert sum(computed) == 20000 - done  # continued: nothing counted before the kill is counted again
    assert summary["seconds"] >= 1e6  # the (altered) checkpoint's elapsed time carried over
    fresh = tmp_path / "fresh"
    run(make_cfg(*args), fresh)
    pd.testing.assert_frame_equal(read_csv(out / "functions.csv"), read_csv(fresh / "functions.csv"))
    assert not (out / "checkpoint.npz").exists()


def test_rejected_cli_call_changes_nothing(tmp_path):
    """A finished run's whole tree (.hydra/ and the log included) survives rejected calls byte
    for byte; a rejected call into a fresh directory creates nothing."""
    from conftest import tree

    out = tmp_path / "run"
    assert run_cli("n_samples=2000", "model.hidden=[8]", f"hydra.run.dir={out}").returncode == 0
    before = tree(out)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "__main__.log", "results.json"} <= set(before)
    # (another config in the same directory: test_cli_end_to_end)
    for bad, names in ((("task.n=20",), ("task.n", "1..16")), (("prior=cauchy",), ("prior", "gaussian"))):
        proc = run_cli("n_samples=2000", "model.hidden=[8]", *bad, f"hydra.run.dir={out}")
        assert proc.returncode == 2 and all(n in proc.stderr for n in names), (bad, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert tree(out) == before, bad
    proc = run_cli("checkpoint_seconds=-1", f"hydra.run.dir={tmp_path / 'fresh' / 'run'}")
    assert proc.returncode == 2 and proc.stderr.startswith("error: checkpoint_seconds:")
    assert not (tmp_path / "fresh").exists()


def test_wandb_disabled_run(tmp_path):
    proc = run_cli("n_samples=2000", "logger=wandb", f"hydra.run.dir={tmp_path / 'w'}")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "w" / "functions.csv").exists()


def test_digits_run(tmp_path):
    run(make_cfg("n_samples=1024", "task=digits", "model.hidden=[16]"), tmp_path / "d")
    frame = read_csv(tmp_path / "d" / "functions.csv")
    assert (frame["function"].str.len() == 450).all() and frame["sensitivity"].isna().all()


def test_numba_cache_outside_the_package(tmp_path):
    """Compiled kernels are cached per user, never in the package; NUMBA_CACHE_DIR wins when set."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    show = "import volume, numba; print(numba.config.CACHE_DIR)"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    default = subprocess.run([sys.executable, "-c", show], env={**env, "XDG_CACHE_HOME": str(tmp_path)},
                             capture_output=True, text=True, check=True).stdout.strip()
    assert Path(default).parent == tmp_path / "volume" / "numba" and not default.startswith(str(ROOT))
    chosen = subprocess.run([sys.executable, "-c", show], env={**env, "NUMBA_CACHE_DIR": str(tmp_path / "mine")},
                            capture_output=True, text=True, check=True).stdout.strip()
    assert chosen == str(tmp_path / "mine")
    assert numba.config.CACHE_DIR and not numba.config.CACHE_DIR.startswith(str(ROOT / "volume"))


def test_numba_cache_follows_the_source(tmp_path):
    """numba revalidates only the file of the kernel it loads, not the kernels inlined into it, so
    the cache directory is keyed by every source file: any edit anywhere gives a new directory."""
    from volume import source_fingerprint

    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    first = source_fingerprint(package)
    assert source_fingerprint(package) == first
    (package / "sub" / "b.py").write_text("y = 3\n")
    second = source_fingerprint(package)
    (package / "sub" / "b.py").rename(package / "sub" / "c.py")
    assert len({first, second, source_fingerprint(package)}) == 3
