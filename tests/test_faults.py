"""Faults: a corrupt or truncated checkpoint, an unwritable or full output directory, a killed
merge. Each gives one clear error and loses no finished result."""
import os
import resource
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, interrupt_on_call, make_cfg, run_cli, run_in_process, tree
from volume import results
from volume.errors import ConfigError
from volume.experiments import simplicity_bias, validate
from volume.merge import main as merge_main
from volume.merge import merge

TINY = ("n_samples=4000", "model.hidden=[8]", "task.n=4", "checkpoint_seconds=0", "batch_size=512")


def killed_run(run_dir, monkeypatch):
    """A run of TINY killed in its fourth batch: a checkpoint and no results."""
    real = interrupt_on_call(monkeypatch, simplicity_bias, "batch_keys", 4)
    with pytest.raises(KeyboardInterrupt):
        run_in_process(run_dir, *TINY)
    monkeypatch.setattr(simplicity_bias, "batch_keys", real)
    assert (run_dir / results.CHECKPOINT).exists() and not (run_dir / results.RESULTS).exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_checkpoint_is_refused_with_a_clear_error(tmp_path, monkeypatch, damage):
    run_dir = tmp_path / "run"
    killed_run(run_dir, monkeypatch)
    path = run_dir / results.CHECKPOINT
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a zip" * 10, "empty": b""}[damage])
    before = tree(run_dir)
    with pytest.raises(ConfigError, match=r"^resume: .*checkpoint.npz is unreadable"):
        run_in_process(run_dir, *TINY, "resume=true")
    assert tree(run_dir) == before


def test_corrupt_checkpoint_cli_exit_2_and_restart_without_resume(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    killed_run(run_dir, monkeypatch)
    (run_dir / results.CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
    before = tree(run_dir)
    proc = run_cli(*TINY, "resume=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2 and proc.stderr.startswith("error: resume:") and "Traceback" not in proc.stderr
    assert tree(run_dir) == before
    # As the message says: resume=false starts over and finishes (the bad checkpoint is replaced).
    run_in_process(run_dir, *TINY)
    assert (run_dir / results.RESULTS).exists() and not (run_dir / results.CHECKPOINT).exists()


def test_unreadable_results_json_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_in_process(run_dir, *TINY)
    (run_dir / results.RESULTS).write_text('{"config": ')
    with pytest.raises(ConfigError, match=r"^hydra.run.dir: .* unreadable results.json"):
        validate(make_cfg(*TINY), run_dir)


def test_unwritable_output_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^hydra.run.dir: .*file is not a directory"):
        validate(make_cfg(*TINY), tmp_path / "file" / "run")
    # A read-only directory (tests may run as root, whom permissions do not stop: ask os.access).
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(read_only) else real_access(p, mode))
    with pytest.raises(ConfigError, match=r"^hydra.run.dir: .*ro is not writable"):
        validate(make_cfg(*TINY), read_only / "new" / "run")
    assert list(read_only.iterdir()) == []


def limit_file_size(max_bytes: int):
    """For a child process: writes past max_bytes fail with EFBIG (as on a full disk) instead of
    killing the process with SIGXFSZ."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


def test_full_disk_keeps_the_finished_run_and_says_so(tmp_path):
    """A finished run recomputed (same config) where the disk is 'full': one clear error line,
    exit 1, no temporary file left, every finished file byte for byte as before."""
    run_dir = tmp_path / "run"
    run_in_process(run_dir, *TINY)
    before = tree(run_dir)
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "volume", "progress=false", *TINY, f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit_file_size(4096))
    assert proc.returncode == 1, proc.stderr
    assert "File too large" in proc.stderr and "intact" in proc.stderr and "Traceback" not in proc.stderr
    after = tree(run_dir)
    # Files under the limit may have been rewritten, with the same bytes (same config, same
    # results); new are only the CLI's .hydra/ record and the checkpoint written before the
    # failure, no temporary file.
    new = {name for name in set(after) - set(before) if not name.startswith(".hydra")}
    assert new <= {results.CHECKPOINT, results.CHECKPOINT + ".json"}
    assert all(after[k] == v for k, v in before.items())
    run_in_process(run_dir, *TINY, "resume=true")  # what the message says to do once there is space
    assert tree(run_dir)["functions.csv"] == before["functions.csv"] and results.CHECKPOINT not in tree(run_dir)


def shards(tmp_path, n: int = 3):
    dirs = [tmp_path / f"shard{i}" for i in range(n)]
    for i, d in enumerate(dirs):
        run_in_process(d, *TINY, f"shard={i}", f"num_shards={n}")
    return dirs


def test_killed_merge_loses_nothing_and_reruns(tmp_path, monkeypatch):
    dirs = shards(tmp_path)
    before = {d.name: tree(d) for d in dirs}
    whole = tmp_path / "whole"
    merge(dirs, whole)
    out = tmp_path / "merged"
    real = interrupt_on_call(monkeypatch, results, "write_json", 1)  # killed before its results.json
    with pytest.raises(KeyboardInterrupt):
        merge(dirs, out)
    assert not (out / results.RESULTS).exists()
    assert {d.name: tree(d) for d in dirs} == before  # the shards are only read
    monkeypatch.setattr(results, "write_json", real)
    merge(dirs, out)  # an unfinished merge is no result: the same merge simply runs again
    assert (out / "functions.csv").read_bytes() == (whole / "functions.csv").read_bytes()


def test_merge_refuses_repeated_and_missing_shards_with_exit_2(tmp_path, capsys):
    dirs = shards(tmp_path)
    for bad in ([dirs[0], dirs[0], dirs[1]], dirs[:2], [dirs[0], dirs[1], dirs[2], dirs[2]]):
        with pytest.raises(ConfigError, match="^shards: need each of 0..num_shards-1 exactly once"):
            merge(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert merge_main([str(dirs[0]), str(dirs[0]), str(dirs[1]), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: shards:")
    proc = subprocess.run([sys.executable, "-m", "volume.merge", str(dirs[0]), str(tmp_path / "nowhere"),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no results.json" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    (dirs[2] / "functions.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError, match="shard2: unreadable shard"):
        merge(dirs, tmp_path / "out")
    assert not (tmp_path / "out").exists()
