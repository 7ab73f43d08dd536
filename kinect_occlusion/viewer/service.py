"""Run the viewer: standalone (``kinect-occlusion view``) or as a low-priority child of ``run``/``replay``."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..bus import CurveKeys
from ..errors import UserError
from .hub import ViewerHub, ViewOptions
from .security import check_bind

if TYPE_CHECKING:
    from ..config import ViewerConfig

log = logging.getLogger(__name__)

NICENESS = 10  # the daemon's viewer yields the CPU to the pipeline
PARENT_CHECK_S = 1.0


@dataclass(frozen=True)
class ViewerSettings:
    """Where to listen, who may watch, and how much to send."""

    bind: str = "127.0.0.1"
    port: int = 8088
    token: str | None = None
    options: ViewOptions = ViewOptions()


def import_aiohttp() -> None:
    """Fail with one line when the web stack is not installed."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UserError(
            "viewer: aiohttp is not installed — pip install 'kinect-occlusion[viewer]' (make does it)"
        ) from None


def announce(settings: ViewerSettings, port: int) -> None:
    """One line saying where the pages are (the token itself is never printed)."""
    host = f"[{settings.bind}]" if ":" in settings.bind else settings.bind
    need = " (add ?token=… once)" if settings.token else ""
    print(f"viewer: listening on http://{host}:{port}/ — ward page; /bed/<camera> per bed{need}", flush=True)


def run_viewer(
    endpoints: Sequence[str],
    camera: str,
    settings: ViewerSettings,
    stop: threading.Event,
    curve: CurveKeys | None = None,
) -> None:
    """Serve the pages until ``stop`` is set (UserError: one line on a refused bind or busy port)."""
    check_bind(settings.bind, settings.token)
    import_aiohttp()
    from .server import ViewerServer, serve

    hub = ViewerHub(endpoints, camera, settings.options, curve)
    hub.start()
    try:
        server = ViewerServer(hub, settings.token)
        asyncio.run(serve(server, settings.bind, settings.port, stop, lambda p: announce(settings, p)))
    finally:
        hub.stop()


# ----------------------------------------------------------------------------- daemon child


def check_port_free(bind: str, port: int) -> None:
    """Fail fast with one line when ``bind:port`` cannot be listened on (before the pipeline starts)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError as exc:
            raise UserError(
                f"viewer: cannot listen on {bind}:{port} ({exc.strerror or exc}); set viewer.port"
            ) from None


def _exit_with_parent(stop: threading.Event, parent: int) -> None:
    while not stop.wait(PARENT_CHECK_S):
        if os.getppid() != parent:
            stop.set()


def viewer_child(
    endpoint: str, camera: str, settings: ViewerSettings, curve: CurveKeys | None, log_to: tuple[str, str]
) -> None:
    """Entry point of the daemon's viewer process: lower priority, stops with its parent, logs to
    the supervisor's sink (``log_to``: its endpoint and the level) like the workers."""
    from ..runtime import logs
    from ..runtime.worker import install_stop_handlers

    logs.setup_child(log_to[1], log_to[0])
    os.nice(NICENESS)
    stop = threading.Event()
    install_stop_handlers(stop, (signal.SIGTERM,))  # SIGINT stays ignored: the daemon stops it
    threading.Thread(target=_exit_with_parent, args=(stop, os.getppid()), daemon=True).start()
    try:
        run_viewer([endpoint], camera, settings, stop, curve)
    except UserError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


def start_viewer_process(
    endpoint: str, camera: str, settings: ViewerSettings, curve: CurveKeys | None, log_to: tuple[str, str]
) -> mp.process.BaseProcess:
    """Start :func:`viewer_child` as a spawned process (after checking the port is free); ``log_to``:
    the supervisor's log sink endpoint and the level."""
    check_bind(settings.bind, settings.token)
    import_aiohttp()
    if settings.port:
        check_port_free(settings.bind, settings.port)
    from ..runtime.child import sigint_ignored_by_children

    proc = mp.get_context("spawn").Process(
        target=viewer_child, name="viewer", args=(endpoint, camera, settings, curve, log_to), daemon=True
    )
    with sigint_ignored_by_children():  # a Ctrl-C to the process group is the daemon's to handle
        proc.start()
    log.info("started viewer (pid %d)", proc.pid)
    return proc


def stop_viewer_process(proc: mp.process.BaseProcess, timeout_s: float = 5.0) -> None:
    """SIGTERM the viewer, then SIGKILL if it has not stopped within ``timeout_s``."""
    proc.terminate()
    proc.join(timeout_s)
    if proc.is_alive():
        log.warning("viewer did not stop in time: killing it")
        proc.kill()
        proc.join(2.0)


def settings_from_config(viewer_cfg: ViewerConfig, **overrides: Any) -> ViewerSettings:
    """ViewerSettings from the ``viewer:`` config section; ``overrides`` that are not None win."""
    values: dict[str, Any] = {
        "bind": viewer_cfg.bind,
        "port": viewer_cfg.port,
        "token": viewer_cfg.token,
        "max_fps": viewer_cfg.max_fps,
        "max_width": viewer_cfg.max_width,
        "jpeg_quality": viewer_cfg.jpeg_quality,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    options = ViewOptions(values.pop("max_fps"), values.pop("max_width"), values.pop("jpeg_quality"))
    return ViewerSettings(options=options, **values)
