"""in_threads: results by key, the first failure raised, and a caller that Ctrl-C reaches at once."""

from __future__ import annotations

import _thread
import functools
import threading
import time

import pytest

from wheelbarrow import _parallel
from wheelbarrow._parallel import in_threads


def test_every_result_by_its_key_whatever_order_they_finish_in() -> None:
    def job(n: int) -> int:
        time.sleep(0.01 * (5 - n))
        return n * n

    assert in_threads([(n, functools.partial(job, n)) for n in range(5)], 3) == {n: n * n for n in range(5)}
    assert in_threads([], 4) == {}


def test_the_first_failure_is_raised_and_no_new_job_starts() -> None:
    started: list[int] = []

    def job(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ValueError("the index said no")
        time.sleep(0.05)
        return n

    with pytest.raises(ValueError, match="the index said no"):
        in_threads([(n, functools.partial(job, n)) for n in range(50)], 1)
    assert started == [0]


def test_ctrl_c_reaches_the_caller_while_a_job_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job blocked for good (a read from an index that never answers) holds neither the caller nor,
    past the grace, the process: the threads are daemons."""
    monkeypatch.setattr(_parallel, "GRACE_SECONDS", 0.2)
    release = threading.Event()
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            in_threads([("blocked", release.wait)], 2)
        assert time.monotonic() - start < 2
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("wheelbarrow-fetch"))
    finally:
        release.set()
        timer.cancel()
