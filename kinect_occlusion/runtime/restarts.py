"""A worker restart as seen on the bus (pure): a Status from a worker under a pid not seen before.

Under ``runtime.every_frame`` a frame in flight to a worker that died never comes out of it, and
capture used to wait ``runtime.frame_timeout_s`` for it. The successor's Status says when it started
(``ts_us`` − ``info.uptime_s``); a frame published before then could never reach it (a worker
subscribes only after its runtime exists: worker_main creates it, then the worker's ``run``
subscribes, then says ``ready``). So:

- capture (capture/worker.py) gives up at once the frames in flight published before a restarted
  ``deeplab`` or ``fuser`` started (counted as lost, as after a timeout), and sends no new frame until
  the restarted worker is ready (a frame sent to a worker not yet subscribed would be lost too);
- the fuser (fuser/worker.py) releases at once, coarse-only, a coarse mask whose frame was published
  before a restarted partition worker started and whose partition is not there (it died with the
  old process).

A frame that had already passed the dead worker still finishes after being given up: capture then
ignores its mask (the CSV says ``fused``), and for that moment more than ``runtime.in_flight`` frames
may be in the pipeline (at most twice as many). A forged Status (the bus is untrusted) can make
frames be given up early (counted, said in the CSV), and one under a new pid that never says ready
holds capture ``hold_s`` (``runtime.frame_timeout_s``) at most — as a lost frame would, again for
each new forged pid; it never hangs or crashes a worker, and what it keeps is bounded (``MAX_PIDS``
pids per watched worker). A start is clamped to the moment its Status arrived.
"""

from __future__ import annotations

import math
from collections import deque

from .. import messages as m

# Heartbeats queued on a watcher's own Status socket between two looks (capture: every 100 ms at
# most while waiting; the fuser: every loop pass), so a burst never crowds its data out
STATUS_RCVHWM = 256
MAX_PIDS = 16  # pids remembered per worker (a reordered heartbeat of an old pid is no restart)
NOT_READY = ("starting", "waiting for inference server")  # states of a worker not yet subscribed


def started_us(status: m.Status, now_us: int | None = None) -> int:
    """When the worker that sent ``status`` started (wall-clock µs): ``ts_us`` − ``info.uptime_s``;
    ``ts_us`` itself when uptime is not a finite number ≥ 0 (``info`` is untrusted).

    Never later than ``now_us`` (default: now), when the Status is here (a start claimed in the
    future would orphan every later frame), nor before 0 (an uptime of 1e303 s is finite).
    """
    start = status.ts_us
    up = status.info.get("uptime_s")
    if isinstance(up, int | float) and not isinstance(up, bool) and math.isfinite(up) and up >= 0:
        start -= int(min(up * 1e6, start))
    return max(0, min(start, m.now_us() if now_us is None else now_us))


class RestartWatch:
    """Which of ``workers`` restarted, from their Status (pure).

    Args:
        workers: the worker names to watch (``Status.worker``).
        hold_s: how long a restarted worker may stay unready before :meth:`ready` stops waiting
            for it (one that is given up never says ready: then a frame costs a timeout, as before).
    """

    def __init__(self, workers: tuple[str, ...], hold_s: float = float("inf")) -> None:
        self.workers, self.hold_s = frozenset(workers), hold_s
        self.pids: dict[str, deque[int]] = {}
        self.unready: dict[str, float] = {}  # restarted, not yet ready: since when (monotonic s)

    def seen(self, status: m.Status, now: float = 0.0) -> int | None:
        """The start (wall µs) of a process of a watched worker when ``status`` is the first under
        its pid (the first process seen counts too: nothing was sent before it started); else None.
        A restarted worker (a pid after another) is unready from ``now`` until it says a state past
        start-up."""
        if status.worker not in self.workers:
            return None
        pids = self.pids.setdefault(status.worker, deque(maxlen=MAX_PIDS))
        start = None
        if status.pid not in pids:
            if pids:
                self.unready[status.worker] = now
            pids.append(status.pid)
            start = started_us(status)
        if status.pid == pids[-1] and status.state not in NOT_READY:  # the newest process only
            self.unready.pop(status.worker, None)
        return start

    def ready(self, now: float = 0.0) -> bool:
        """Whether no watched worker is between a restart (less than ``hold_s`` ago) and its ``ready``."""
        return all(now - since >= self.hold_s for since in self.unready.values())
