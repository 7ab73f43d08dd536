"""Children started inside ``sigint_ignored_by_children`` are born ignoring SIGINT; the starter's
own handler is back afterwards."""

from __future__ import annotations

import multiprocessing as mp
import signal

from kinect_occlusion.runtime.child import sigint_ignored_by_children


def _report_sigint(queue) -> None:
    queue.put(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def test_children_ignore_sigint_and_the_parent_handler_is_restored():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    handler = signal.getsignal(signal.SIGINT)
    with sigint_ignored_by_children():
        child = ctx.Process(target=_report_sigint, args=(queue,))
        child.start()
    assert signal.getsignal(signal.SIGINT) is handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert queue.get(timeout=30) is True
    child.join(10)
    plain = ctx.Process(target=_report_sigint, args=(queue,))  # outside the block: the default
    plain.start()
    assert queue.get(timeout=30) is False
    plain.join(10)
