"""Jobs in threads that never keep the process from ending: the caller waits, interruptibly."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ._cmd import Cancel, Cancelled

K = TypeVar("K")
V = TypeVar("V")
#: How long a failed or interrupted fetch waits for downloads still running to notice and stop.
GRACE_SECONDS = 3.0


def in_threads(work: Sequence[tuple[K, Callable[[], V]]], workers: int) -> dict[K, V]:
    """Each job's result, ``workers`` at a time, in daemon threads; the first failure is raised.

    The calling thread only waits, a fraction of a second at a time, so Ctrl-C interrupts it at once,
    even while a download is blocked on an index that never answers (for up to pip's timeout). The
    threads are daemons and are given ``GRACE_SECONDS`` to stop: one blocked in a read cannot keep the
    process from ending, and what it would still write lands in the scratch folder being removed or,
    whole or not at all, in the cache.
    """
    if not work:
        return {}
    jobs: queue.SimpleQueue[tuple[K, Callable[[], V]]] = queue.SimpleQueue()
    for job in work:
        jobs.put(job)
    results: dict[K, V] = {}
    failures: list[BaseException] = []
    done = threading.Event()
    lock = threading.Lock()

    @Cancel.carried  # the jobs' commands (a pip download) are cancelled with the calling thread's work
    def worker() -> None:
        while not done.is_set():
            try:
                key, job = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                value = job()
            except BaseException as err:  # noqa: BLE001 - handed to the calling thread, raised there
                with lock:
                    failures.append(err)
                done.set()
                return
            with lock:
                results[key] = value
                if len(results) == len(work):
                    done.set()

    threads = [
        threading.Thread(target=worker, name=f"wheelbarrow-job-{n}", daemon=True)
        for n in range(max(1, min(workers, len(work))))
    ]
    for thread in threads:
        thread.start()
    cancel = Cancel.current()  # the calling thread's work (a stage beside others) may be cancelled
    try:
        while not done.wait(0.2) and any(t.is_alive() for t in threads):
            if cancel is not None and cancel.event.is_set():
                msg = "cancelled while jobs were running"
                raise Cancelled(msg)
    finally:
        done.set()  # the threads take no new job
        deadline = time.monotonic() + GRACE_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    if failures:
        raise failures[0]
    return {key: results[key] for key, _ in work}
