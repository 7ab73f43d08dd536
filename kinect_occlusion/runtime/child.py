"""Entry point of a worker process started by the supervisor (spawned, not forked)."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Config
from ..errors import UserError
from . import logs
from .stages import module_of
from .worker import EXIT_ERROR, EXIT_STARTUP, die_with_parent, worker_main

log = logging.getLogger(__name__)


@contextmanager
def sigint_ignored_by_children() -> Iterator[None]:
    """Start children inside this block (main thread): they are born ignoring SIGINT (an ignored
    signal stays ignored across the spawn's exec, a blocked mask does not), so a Ctrl-C to the
    terminal's process group cannot interrupt one still importing (a KeyboardInterrupt traceback,
    an exit the supervisor took for a crash). SIGINT is blocked in this thread meanwhile; one for
    this process can still be taken by another of its threads and lost while ignored: a window of
    the start() call (milliseconds), where before the whole of a child's imports (seconds) was one.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def child_entry(name: str, cfg_json: str, log_endpoint: str | None, parent_pid: int | None = None) -> None:
    """Run worker ``name`` with the config serialised by the supervisor; exit with its code.

    Its log records go to the supervisor's sink at ``log_endpoint`` (None: to stderr). The worker
    dies with ``parent_pid`` (default: the process that started it): SIGTERM from Linux
    when it goes, and a liveness check in the heartbeat loop elsewhere.
    """
    # The supervisor alone stops its workers (SIGTERM, in order): SIGINT stays ignored (it was
    # from the spawn on, see sigint_ignored_by_children; this covers any other starter)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_pid = os.getppid() if parent_pid is None else parent_pid
    if not die_with_parent(parent_pid):
        sys.exit(EXIT_ERROR)  # the supervisor died while this process started
    cfg = Config.model_validate_json(cfg_json)
    logs.setup_child(cfg.logging.level, log_endpoint)
    try:
        target = importlib.import_module(module_of(name)).run
        code = worker_main(name, target, cfg, parent_pid)
    except UserError as exc:
        log.error("%s", exc)
        code = EXIT_STARTUP
    except Exception:
        log.exception("%s crashed", name)
        code = EXIT_ERROR
    if os.getppid() != parent_pid:
        # Orphaned: nobody reads the log sink any more, the sockets are closed: end now rather
        # than wait (up to logs.LINGER_MS) on undeliverable records
        os._exit(code)
    logging.shutdown()
    sys.exit(code)
