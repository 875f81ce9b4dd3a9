"""`python -m volume.index DIR [--out FILE]`: one row per run under DIR (every results.json),
with its config overrides and summary numbers; printed, and written as CSV (DIR/index.csv
by default) for pandas: `pd.read_csv("DIR/index.csv")`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from volume import results


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (int, float, str, bool)) or value is None:
        out[prefix] = value


def run_row(results_path: Path, root: Path) -> dict:
    run_dir = results_path.parent
    stored = json.loads(results_path.read_text())
    row = {"run": str(run_dir.relative_to(root)) if run_dir != root else ".",
           "experiment": stored["config"].get("experiment", {}).get("name")}
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
    row["overrides"] = " ".join(overrides or [])
    for item in overrides or []:
        key, _, value = item.partition("=")
        row[f"override.{key.lstrip('+~')}"] = value
    _flatten("", stored.get("summary", {}), row)
    if "estimate" in stored:
        _flatten("estimate", stored["estimate"], row)
    return row


def build_index(root: Path) -> pd.DataFrame:
    rows = [run_row(p, root) for p in sorted(root.rglob(results.RESULTS)) if ".hydra" not in p.parts]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="a run, sweep or outputs directory")
    parser.add_argument("--out", type=Path, default=None, help="CSV path (default ROOT/index.csv)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root} is not a directory", file=sys.stderr)
        return 2
    frame = build_index(args.root)
    if frame.empty:
        print(f"error: no {results.RESULTS} under {args.root}", file=sys.stderr)
        return 2
    out = args.out or args.root / "index.csv"
    results.write_csv(out, frame)
    with pd.option_context("display.max_columns", 12, "display.width", 160):
        print(frame.drop(columns=[c for c in frame.columns if c.startswith("override.")]).to_string(index=False,
                                                                                                   max_colwidth=40))
    print(f"\n{len(frame)} runs -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
