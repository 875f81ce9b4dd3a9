"""`python -m volume.merge DIR... --out DIR`: sum the counts of the shards of one experiment.

The result is exactly the table one run of all n_samples gives (same functions.csv, same
estimates, recomputed from the total): shards own disjoint, fixed chunk ranges of the
sample indices, so their counts add up without overlap or gaps.
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from volume import results
from volume.errors import ConfigError
from volume.functions import FunctionTable

SHARD_KEYS = ("shard", "num_shards")


def load_shard(run_dir: Path) -> tuple[dict, FunctionTable, dict]:
    path = run_dir / results.RESULTS
    if not path.exists():
        raise ConfigError(f"{run_dir}: no {results.RESULTS} (is the shard finished?)")
    table_path = run_dir / "functions.npz"
    if not table_path.exists():
        raise ConfigError(f"{run_dir}: no functions.npz; only counting experiments can be merged")
    try:
        stored = json.loads(path.read_text())
        with np.load(table_path, allow_pickle=False) as data:
            table = FunctionTable.from_state(data)
        return stored["config"], table, stored["summary"]
    except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{run_dir}: unreadable shard ({type(err).__name__}: {err})") from err


def merge(dirs: list[Path], out: Path) -> dict:
    """Check that dirs are all the shards of one config, sum them, write the merged results."""
    from volume.experiments import get

    shards = [load_shard(Path(d)) for d in dirs]
    base = {k: v for k, v in results.identity(shards[0][0]).items() if k not in SHARD_KEYS}
    for d, (config, _, _) in zip(dirs, shards):
        mine = {k: v for k, v in results.identity(config).items() if k not in SHARD_KEYS}
        if mine != base:
            changed = sorted(k for k in set(mine) | set(base) if mine.get(k) != base.get(k))
            raise ConfigError(f"{d}: not a shard of the same experiment as {dirs[0]} (differs in: {changed})")
    num_shards = {c["num_shards"] for c, _, _ in shards}
    seen = sorted(c["shard"] for c, _, _ in shards)
    if len(num_shards) != 1 or seen != list(range(num_shards.pop())):
        raise ConfigError(f"shards: need each of 0..num_shards-1 exactly once, got shards {seen} "
                          f"of num_shards {sorted({c['num_shards'] for c, _, _ in shards})}")
    table = shards[0][1]
    for _, other, _ in shards[1:]:
        table = table.merge(other)
    config = {**shards[0][0], "shard": 0, "num_shards": 1}
    if table.total != config["n_samples"]:
        raise ConfigError(f"merged counts sum to {table.total:,}, expected n_samples = {config['n_samples']:,}")
    results.check_writable(out)
    results.check_run_dir(out, config, resume=False)
    out.mkdir(parents=True, exist_ok=True)
    experiment = get(config["experiment"]["name"])
    seconds = sum(s["seconds"] for _, _, s in shards)
    title = f"merged from {len(shards)} shards, {table.total:,} samples"
    return experiment.finish(table, config, out, table.total, config["task"]["name"] == "boolean", title, {
        "seconds": seconds, "networks_per_second": table.total / max(seconds, 1e-9), "merged_from": [str(d) for d in dirs],
        "shard": 0, "num_shards": 1})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories of the shards")
    parser.add_argument("--out", type=Path, required=True, help="directory for the merged results")
    args = parser.parse_args(argv)
    try:
        summary = merge(args.dirs, args.out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, read-only: the shards are only read, so nothing is lost
        print(f"error: writing to {args.out} failed ({err}); the shards are untouched", file=sys.stderr)
        return 1
    print(f"merged {len(args.dirs)} shards: {summary['n_samples']:,} samples, "
          f"{summary['n_distinct_functions']:,} distinct functions -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
