"""Entry point of a worker process started by the supervisor (spawned, not forked)."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from ..config import Config
from ..errors import UserError
from . import logs
from .worker import EXIT_ERROR, EXIT_STARTUP, worker_main

WORKERS = {
    "capture": "kinect_occlusion.capture.worker",
    "deeplab": "kinect_occlusion.deeplab.worker",
    "sam": "kinect_occlusion.sam.worker",
    "fuser": "kinect_occlusion.fuser.worker",
}

log = logging.getLogger(__name__)


def child_entry(name: str, cfg_json: str, log_queue: Any) -> None:
    """Run worker ``name`` with the config serialised by the supervisor; exit with its code."""
    cfg = Config.model_validate_json(cfg_json)
    logs.setup_child(cfg.logging.level, log_queue)
    try:
        target = importlib.import_module(WORKERS[name]).run
        code = worker_main(name, target, cfg)
    except UserError as exc:
        log.error("%s", exc)
        code = EXIT_STARTUP
    except Exception:
        log.exception("%s crashed", name)
        code = EXIT_ERROR
    logging.shutdown()
    sys.exit(code)
