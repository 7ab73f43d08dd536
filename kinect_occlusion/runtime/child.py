"""Entry point of a worker process started by the supervisor (spawned, not forked)."""

from __future__ import annotations

import importlib
import logging
import os
import sys

from ..config import Config
from ..errors import UserError
from . import logs
from .stages import module_of
from .worker import EXIT_ERROR, EXIT_STARTUP, die_with_parent, worker_main

log = logging.getLogger(__name__)


def child_entry(name: str, cfg_json: str, log_endpoint: str | None, parent_pid: int | None = None) -> None:
    """Run worker ``name`` with the config serialised by the supervisor; exit with its code.

    Its log records go to the supervisor's sink at ``log_endpoint`` (None: to stderr). The worker
    dies with ``parent_pid`` (default: the process that started it): SIGTERM from Linux
    when it goes, and a liveness check in the heartbeat loop elsewhere.
    """
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
