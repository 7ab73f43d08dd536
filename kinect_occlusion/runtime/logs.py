"""One log stream for every process: children send records to the supervisor through a queue."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import Any

from ..config import LoggingConfig

FORMAT = "%(asctime)s %(processName)-10s %(levelname)-7s %(name)s: %(message)s"


def handlers(cfg: LoggingConfig) -> list[logging.Handler]:
    """stderr, plus a rotating file when ``logging.file`` is set."""
    out: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if cfg.file:
        out.append(
            logging.handlers.RotatingFileHandler(cfg.file, maxBytes=cfg.max_bytes, backupCount=cfg.backups)
        )
    for h in out:
        h.setFormatter(logging.Formatter(FORMAT))
    return out


def setup_main(cfg: LoggingConfig, queue: Any | None = None) -> logging.handlers.QueueListener | None:
    """Configure the supervisor's logging; with ``queue``, also forward the children's records."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(cfg.level)
    hs = handlers(cfg)
    for h in hs:
        root.addHandler(h)
    if queue is None:
        return None
    listener = logging.handlers.QueueListener(queue, *hs, respect_handler_level=False)
    listener.start()
    return listener


def setup_child(level: str, queue: Any) -> None:
    """Send every record of this process to the supervisor's queue."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    root.addHandler(logging.handlers.QueueHandler(queue))
