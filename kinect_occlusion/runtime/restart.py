"""Restart policy: exponential back-off, and giving up after N restarts in a window (pure)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    """Tracks the failures of one worker.

    Args:
        first_s, max_s: first and longest back-off delay.
        max_restarts: restarts allowed within ``window_s`` before giving up.
    """

    first_s: float
    max_s: float
    max_restarts: int
    window_s: float
    failures: deque = field(default_factory=deque)

    def on_failure(self, now: float) -> float | None:
        """Record a failure at ``now``; return the delay before restarting, or None to give up."""
        self.failures.append(now)
        while self.failures and self.failures[0] < now - self.window_s:
            self.failures.popleft()
        n = len(self.failures)
        if n > self.max_restarts:
            return None
        return min(self.max_s, self.first_s * 2 ** (n - 1))

    @property
    def restarts(self) -> int:
        """Failures within the current window."""
        return len(self.failures)
