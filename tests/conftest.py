"""Shared test helpers: compose the real hydra config in-process, or run the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest
import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_MODE", "disabled")


def make_cfg(*overrides: str):
    """The config `python -m volume OVERRIDES` would run with."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["progress=false", *overrides])


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run([sys.executable, "-m", "volume", "progress=false", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cfg_factory():
    return make_cfg


def run_in_process(run_dir: Path, *overrides: str) -> dict:
    """The run `python -m volume OVERRIDES hydra.run.dir=run_dir` does, in this process."""
    from volume.__main__ import run

    run_dir.mkdir(parents=True, exist_ok=True)
    return run(make_cfg(*overrides), run_dir)


def interrupt_on_call(monkeypatch, module, name: str, call: int):
    """Replace module.name by a wrapper that raises KeyboardInterrupt (a kill mid-run) on
    its `call`-th call; returns the real function, to put back before resuming."""
    real, calls = getattr(module, name), []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, dies)
    return real


def count_calls(monkeypatch, module, name: str) -> list:
    """Replace module.name by a wrapper that records each call; returns the record."""
    real, calls = getattr(module, name), []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def check_kill_and_resume(tmp_path: Path, monkeypatch, args: tuple[str, ...], module, call: int,
                          files: tuple[str, ...], name: str = "train") -> None:
    """Run `args` whole; run it again killed at the call-th call of module.name; resume that
    run: it must return the whole run's summary, write byte-identical files, and redo none of
    the call - 1 calls finished (and checkpointed, checkpoint_seconds=0) before the kill."""
    real = getattr(module, name)
    whole_calls = count_calls(monkeypatch, module, name)
    whole = run_in_process(tmp_path / "whole", *args)
    monkeypatch.setattr(module, name, real)
    interrupt_on_call(monkeypatch, module, name, call)
    with pytest.raises(KeyboardInterrupt):
        run_in_process(tmp_path / "cut", *args)
    assert (tmp_path / "cut" / "checkpoint.npz").exists()
    monkeypatch.setattr(module, name, real)
    resumed_calls = count_calls(monkeypatch, module, name)
    assert run_in_process(tmp_path / "cut", *args, "resume=true") == whole
    assert len(resumed_calls) == len(whole_calls) - (call - 1), (len(resumed_calls), len(whole_calls))
    for file in files:
        assert (tmp_path / "cut" / file).read_bytes() == (tmp_path / "whole" / file).read_bytes(), file


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under root, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def assert_network_only(score, theta):
    """A score must depend on each network's parameters only: bit-identical whatever the
    batch (one network at a time, every order) and the numba thread count; an empty batch works."""
    full = score(theta)
    assert torch.equal(full, torch.cat([score(theta[i : i + 1]) for i in range(len(theta))]))
    perm = torch.randperm(len(theta), generator=torch.Generator().manual_seed(0))
    assert torch.equal(full[perm], score(theta[perm]))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert torch.equal(full, score(theta))
    finally:
        numba.set_num_threads(threads)
    assert score(theta[:0]).shape == (0,)
