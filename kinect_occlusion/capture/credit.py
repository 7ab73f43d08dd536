"""Credit for ``runtime.every_frame`` (pure): at most ``limit`` frames captured but not yet finished.

Capture takes a credit per published frame and gets it back when the frame's occlusion mask (fused
or fallback) comes back on the bus. A frame whose mask never comes (a worker died with it) gives its
credit back after ``timeout_s``, so a lost frame delays the replay, never stops it; one in flight
to a worker that restarted is given up as soon as the restart is seen (``give_up_sent_before``,
runtime/restarts.py).
"""

from __future__ import annotations

from collections import OrderedDict

Identity = tuple[int, int]  # (epoch, frame_id)


class Credits:
    """Frames in flight, by identity, oldest first.

    Args:
        limit: most frames in flight at once (≥ 1).
        timeout_s: a frame in flight this long is given up (its credit returns).
    """

    def __init__(self, limit: int, timeout_s: float) -> None:
        self.limit, self.timeout_s = limit, timeout_s
        self.in_flight: OrderedDict[Identity, float] = OrderedDict()
        self.sent_us: dict[Identity, int] = {}  # wall clock when each frame in flight was sent
        self.finished = 0
        self.lost: list[Identity] = []

    def take(self, identity: Identity, now: float, sent_us: int | None = None) -> None:
        """Count ``identity`` as in flight from ``now`` (monotonic s; ``sent_us``: wall-clock µs
        just before it was published, for :meth:`give_up_sent_before`)."""
        self.in_flight[identity] = now
        if sent_us is not None:
            self.sent_us[identity] = sent_us

    def give_back(self, identity: Identity) -> bool:
        """The mask of ``identity`` arrived; False when it was not in flight (ignored)."""
        if self.in_flight.pop(identity, None) is None:
            return False
        self.sent_us.pop(identity, None)
        self.finished += 1
        return True

    def expire(self, now: float) -> list[Identity]:
        """Give up the frames in flight for longer than ``timeout_s`` (returned, also kept in ``lost``)."""
        return self._give_up([k for k, t in self.in_flight.items() if now - t >= self.timeout_s])

    def give_up_sent_before(self, cutoff_us: int) -> list[Identity]:
        """Give up the frames in flight sent before ``cutoff_us`` (wall µs: a restarted worker's
        start) — returned, also kept in ``lost``. A frame taken without ``sent_us`` stays."""
        return self._give_up([k for k in self.in_flight if self.sent_us.get(k, cutoff_us) < cutoff_us])

    def _give_up(self, identities: list[Identity]) -> list[Identity]:
        for k in identities:
            del self.in_flight[k]
            self.sent_us.pop(k, None)
        self.lost.extend(identities)
        return identities

    def available(self) -> bool:
        """Whether another frame may be published now."""
        return len(self.in_flight) < self.limit

    def idle(self) -> bool:
        """Whether no frame is in flight (the end of a recording waits for this)."""
        return not self.in_flight
