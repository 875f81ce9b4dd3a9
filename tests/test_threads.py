"""volume.threads: the one place torch and numba thread counts are set."""
import numba
import torch

from volume.estimators.rare_event import SMALL_SCORE_FLOPS, splitting
from volume.nets import MLP
from volume.priors import Prior
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


def test_splitting_keeps_every_thread_for_a_costly_score():
    """Small populations run on one thread, unless the score says one network costs enough
    (flops_per_network) that scoring the population is big work for every core."""
    class Recording:
        def __init__(self, flops: int):
            self.flops_per_network, self.threads = flops, set()

        def __call__(self, theta: torch.Tensor) -> torch.Tensor:
            self.threads.add((torch.get_num_threads(), numba.get_num_threads()))
            return theta[:, 0] - 0.5  # P(first weight > 0.5), reached in a few levels

    before = torch.get_num_threads(), numba.get_num_threads()
    try:
        set_threads(2)
        runs = 2 * 20  # n_runs x n_particles
        cheap, costly = Recording(0), Recording(SMALL_SCORE_FLOPS // runs + 1)
        for score in (cheap, costly):
            splitting(score, MLP([2, 1]), Prior(), n_particles=20, n_runs=2, n_moves=2, progress=False)
        assert cheap.threads == {(1, 1)}
        assert costly.threads == {(2, min(2, numba.config.NUMBA_NUM_THREADS))}
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
