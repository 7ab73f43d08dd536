"""A bedside's claim on its camera id: refused when another bedside already publishes that camera.

Before it starts, a bedside listens on the server's bus for ``status`` of its own camera for a
little over two heartbeats. Any heartbeat there comes from a bedside already serving that id (two
would interleave frames of different beds under one id): the later one exits 2 with one line.
"""

from __future__ import annotations

import logging
import time

from .. import messages as m
from ..bus import Subscriber, curve_keys
from ..config import Config
from ..errors import UserError

log = logging.getLogger(__name__)


def current_claimant(sub: Subscriber, window_s: float) -> m.Status | None:
    """The first Status heard within ``window_s`` (another process serving this camera), or None."""
    deadline = time.monotonic() + window_s
    while (left := deadline - time.monotonic()) > 0:
        msg = sub.recv(int(max(1, min(100, left * 1000))))
        if isinstance(msg, m.Status):
            return msg
    return None


def refuse_if_claimed(cfg: Config) -> None:
    """UserError (exit 2) when another bedside already publishes ``cfg.camera.id`` to the server."""
    camera = cfg.camera.id
    backend = cfg.bus.endpoints(camera)[1]
    window_s = 2 * cfg.runtime.heartbeat_s + 0.5
    with Subscriber(backend, camera, [m.TOPIC_STATUS], curve=curve_keys(cfg.bus.curve, server=False)) as sub:
        other = current_claimant(sub, window_s)
    if other is not None:
        raise UserError(
            f"camera {camera!r} is already published by another bedside ({other.worker} pid {other.pid}); "
            "stop that one, or give this one another --camera"
        )
