"""A local action for which no thread can be started is said to have failed once, not twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from submitter.local import ProcessRegistry, start_local


def test_a_local_action_without_a_thread_ends_once_even_if_a_pool_thread_takes_it_later(tmp_path, monkeypatch):
    pool = ThreadPoolExecutor(max_workers=4)
    gate = threading.Event()
    pool.submit(gate.wait)   # the pool's one thread, busy for now
    registry = ProcessRegistry()
    ended: list = []
    real_start = threading.Thread.start

    def no_thread(self):   # as under `ulimit -u`: RuntimeError("can't start new thread")
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    start_local(pool, "k", f"touch {tmp_path / 'ran'}", str(tmp_path), str(tmp_path), registry, ended.append)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    gate.set()               # the busy thread is free: it takes the queued work item
    pool.shutdown(wait=True)
    registry.watchdog.close()
    assert [o.status for o in ended] == ["error"]
    assert not (tmp_path / "ran").exists()   # said to have failed: it must not run after all


def test_a_second_signal_of_a_burst_is_not_raised_before_the_first_is_acted_on():
    """A closed terminal sends SIGHUP twice (the kernel's, then the shell's), well under a
    millisecond apart: the second must not land in the handler of the first."""
    import os
    import signal
    import pytest
    from submitter.interrupts import Interrupted, acting_on_interrupt, held, on_signal

    old = signal.signal(signal.SIGHUP, on_signal)
    try:
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGHUP)
            signal.pause()   # not reached: the handler raises first
        os.kill(os.getpid(), signal.SIGHUP)   # the second, before acting_on_interrupt() ran
        acting_on_interrupt()
    finally:
        signal.signal(signal.SIGHUP, old)
        held.handled = None
