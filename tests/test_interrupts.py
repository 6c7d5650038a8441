"""Ctrl-C stops every long call within a fraction of a second (not at the end of the pass).

A responsiveness bound, not a speed claim: the calls stop 6-17 ms after the signal on a 2-core
machine, the tests allow 0.5 s (the calls themselves take 1-5 s, so a missed signal fails them)."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import ledkde

R = np.random.default_rng(11)
DATA = R.normal(size=(100_000, 128)).astype(np.float32)
Y = DATA[:8192] + 0.3 * R.normal(size=(8192, 128)).astype(np.float32)

CALLS = {
    "score": lambda: ledkde.score(Y, DATA, 0.5, threads=2),
    "partial_state": lambda: ledkde.partial_state(Y, DATA, 0.5, threads=2),
    "smoothed_score": lambda: ledkde.smoothed_score(Y[:512], DATA, 0.5, bandwidth=0.1, n_kernel=64, threads=2),
    "nearest_neighbors": lambda: ledkde.nearest_neighbors(Y, DATA, 3, threads=2),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_ctrl_c_stops_a_long_call(name):
    fired = []

    def interrupt():
        fired.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.2, interrupt)
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        CALLS[name]()
        # Finished before the signal: the call was too short to test anything.
        pytest.fail(f"{name} ended after {time.perf_counter() - t0:.2f} s, before Ctrl-C at 0.2 s")
    timer.join()
    late = time.perf_counter() - fired[0]
    assert late < 0.5, f"{name} stopped {late:.2f} s after Ctrl-C"


def test_a_call_after_an_interrupt_gives_the_right_answer():
    with pytest.raises(KeyboardInterrupt):
        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        ledkde.score(Y, DATA, 0.5, threads=2)
    small = Y[:8].astype(np.float64)
    np.testing.assert_allclose(ledkde.score(small, DATA[:500].astype(np.float64), 0.5),
                               ledkde.reference.score(small, DATA[:500].astype(np.float64), 0.5), rtol=1e-10,
                               atol=1e-12)


def test_ctrl_c_is_seen_with_many_threads():
    """Only the calling thread can see a signal: with more workers than cores it must still ask."""
    fired = []

    def interrupt():
        fired.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.2, interrupt)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        ledkde.score(Y, DATA, 0.5, threads=32)
    timer.join()
    assert time.perf_counter() - fired[0] < 0.5
