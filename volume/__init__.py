"""volume: parameter-space volumes of small neural networks."""
import os

import numba

# numba's OpenMP threading layer leaves its workers spinning after every parallel kernel; on a
# shared machine they starve the calling thread's torch work between kernels (measured: small
# torch ops 25x slower, the rare-event CLI 28.6 s -> 10.0 s). The workqueue layer's idle
# threads sleep. NUMBA_THREADING_LAYER still overrides this.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
