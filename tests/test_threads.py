"""volume.threads: the one place torch and numba thread counts are set."""
import numba
import torch

from volume.threads import set_threads, threads_limited


def test_threads_limited_sets_both_and_restores_them():
    before = torch.get_num_threads(), numba.get_num_threads()
    set_threads(2)
    with threads_limited(1):
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
    assert (torch.get_num_threads(), numba.get_num_threads()) == (2, min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        with threads_limited(1):
            raise RuntimeError
    except RuntimeError:
        pass
    assert torch.get_num_threads() == 2  # restored on error too
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])
