"""Thread limits for torch and numba, in one place: a job's share of the cores, and one
thread around work whose ops are too small for a second thread to pay off."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import torch


def set_threads(threads: int) -> None:
    """torch and numba both use `threads` (numba at most its pool size)."""
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


@contextmanager
def threads_limited(threads: int = 1) -> Iterator[None]:
    """torch and numba use `threads` inside; the previous counts come back after. Why one
    thread pays for small work: on a busy machine a second thread's synchronisation costs
    more than it saves (measured: a small counter-based draw took 7.8 ms with 2 numba threads
    on 2 loaded cores, 11 us with 1; 2 torch threads made pool-64 training steps and small
    splitting populations up to 10x slower). Scale out with processes instead."""
    before = torch.get_num_threads(), numba.get_num_threads()
    set_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
