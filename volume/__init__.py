"""volume: parameter-space volumes of small neural networks (see README.md and docs/).

numba caches compiled kernels on disk; by default it writes next to the source, i.e. into
the installed package, shared by every run and user of that install. Here the cache goes to
a per-user directory instead ($XDG_CACHE_HOME/volume/numba/<fingerprint>, else under
~/.cache), unless NUMBA_CACHE_DIR is already set. It must be set before numba reads its config.

The fingerprint hashes every source file of this package. numba checks only the file of the
function it loads, not the functions compiled into it: a kernel in fused.py that inlines
rng.fill_row would keep running the old fill_row after rng.py changed (seen: the sampler
sped up in rng.py, the cached key kernel did not). A new fingerprint per source state
cannot serve a stale kernel.
"""
import hashlib
import os
import sys
from pathlib import Path


def source_fingerprint(package: Path = Path(__file__).parent) -> str:
    """16 hex digits hashing the path and contents of every .py file under `package`."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def numba_cache_dir() -> str:
    """The per-user directory for numba's compiled-kernel cache of this source state."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "volume" / "numba" / source_fingerprint())


if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = numba_cache_dir()
    if "numba" in sys.modules:  # imported first (e.g. by a caller): make it re-read the environment
        sys.modules["numba"].core.config.reload_config()

import numba  # noqa: E402  (after NUMBA_CACHE_DIR is set)

# numba's OpenMP threading layer leaves its workers spinning after every parallel kernel; on a
# shared machine they starve the calling thread's torch work between kernels (measured: small
# torch ops 25x slower, the rare-event CLI 28.6 s -> 10.0 s). The workqueue layer's idle
# threads sleep. NUMBA_THREADING_LAYER still overrides this.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
