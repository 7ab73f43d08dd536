"""What every worker process shares: stop event, bus access, heartbeat, counters, entry point."""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import messages as m
from ..bus import CurveKeys, Publisher, Subscriber, curve_keys
from ..config import Config
from ..errors import ServiceError

log = logging.getLogger(__name__)

# Exit codes: the one definition for worker processes and the pipeline commands (README "Exit codes")
EXIT_OK = 0  # clean stop, end of the recording
EXIT_ERROR = 1  # a worker crashed (restarted with back-off)
EXIT_STARTUP = 3  # could not start: config, checkpoint, recording
EXIT_GAVE_UP = 4  # worker: failing frame after frame; pipeline: a worker was given up
EXIT_BUS_LOST = 5  # pipeline: a socket file of its ipc:// bus was removed under it (restart to rebind)

# Linux prctl option: the signal a process gets when its parent dies
PR_SET_PDEATHSIG = 1

# Consecutive per-frame failures after which a worker exits to be restarted fresh
MAX_CONSECUTIVE_ERRORS = 25
# Frame errors that are operational (a service down, refusing, too slow): one line, no traceback,
# at most one line per EXPECTED_LINE_INTERVAL_S; the first MAX_TRACEBACKS others log their traceback
EXPECTED_ERRORS = (ServiceError, ConnectionError, TimeoutError)
EXPECTED_LINE_INTERVAL_S = 5.0
MAX_TRACEBACKS = 3
MAX_CAMERAS = 64  # per-camera counters kept by one worker (ids come from the bus: bounded)

# Test hook: KINECT_OCCLUSION_FAULT="deeplab=raise" makes that worker fail on every frame;
# "sam=spin" makes it busy-loop in its compute step (heartbeats go on saying "computing");
# "sam=spin-once:PATH" does so only in the first process that creates PATH.
FAULT_ENV = "KINECT_OCCLUSION_FAULT"


def install_stop_handlers(
    stop: threading.Event, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> None:
    """Set ``stop`` on ``signals`` (default SIGINT and SIGTERM; main thread only).

    The handler only writes a byte to a pipe; a relay thread sets ``stop``. A handler that set the
    event itself could interrupt the main thread while it holds the event's lock (in ``stop.wait``,
    ``stop.set``, or an earlier handler) and deadlock it for good.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def relay() -> None:
        while os.read(read_fd, 64):
            stop.set()

    threading.Thread(target=relay, name="stop-signal", daemon=True).start()

    def handler(signum: int, _frame: object) -> None:
        os.write(write_fd, b"\0")

    for signum in signals:
        signal.signal(signum, handler)


def injected_fault(worker: str) -> str | None:
    """The fault injected into ``worker`` by the test hook, if any."""
    for item in os.environ.get(FAULT_ENV, "").split(","):
        name, _, fault = item.partition("=")
        if name.strip() == worker and fault:
            return fault.strip()
    return None


def die_with_parent(parent_pid: int) -> bool:
    """Have Linux SIGTERM this process when its parent dies; False if ``parent_pid`` is already gone.

    The parent is checked after the request, which closes the race with a parent dying before it.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    return os.getppid() == parent_pid


def _spin_fault(fault: str | None) -> bool:
    """Whether the injected fault makes this compute step spin (``spin-once`` claims its file)."""
    if fault == "spin":
        return True
    if fault is not None and fault.startswith("spin-once:"):
        try:
            os.close(os.open(fault.partition(":")[2], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        return True
    return False


def _spin_forever() -> None:
    """A compute step that never returns and never looks at the stop event (a stuck native call)."""
    n = 0
    while True:
        n += 1


@dataclass
class Counters:
    """Per-worker counters published in every Status message."""

    frames_in: int = 0
    frames_out: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _window: list[float] = field(default_factory=list)

    def out(self) -> None:
        """Count one published result (and keep a 5 s window for the rate)."""
        self.frames_out += 1
        self.consecutive_errors = 0
        now = time.monotonic()
        self._window.append(now)
        while self._window and self._window[0] < now - 5.0:
            self._window.pop(0)

    def rate(self) -> float:
        """Results per second over the last 5 s."""
        if len(self._window) < 2:
            return 0.0
        span = self._window[-1] - self._window[0]
        return (len(self._window) - 1) / span if span > 0 else 0.0


class WorkerRuntime:
    """A worker's connection to the pipeline: config, stop event, bus sockets, heartbeat.

    The worker sees only the config sections its stage declares (``runtime/stages.py``), through
    :meth:`section`; the bus and runtime sections serve this object itself.

    Args:
        name: worker name (a stage of ``runtime/stages.py``).
        cfg: the validated configuration (only the stage's sections are kept).
        stop: set when the worker must stop.
        parent_pid: the supervisor (default: the current parent); the worker stops when it is gone.
    """

    def __init__(self, name: str, cfg: Config, stop: threading.Event, parent_pid: int | None = None) -> None:
        from .stages import BY_NAME

        self.name, self.stop = name, stop
        self._sections: dict[str, Any] = {s: getattr(cfg, s) for s in BY_NAME[name].sections}
        self.bus, self.runtime = cfg.bus, cfg.runtime
        self.parent_pid = os.getppid() if parent_pid is None else parent_pid
        self.fault = injected_fault(name)
        self.camera = cfg.bus_name  # Status and capture's camera id; 'ward' on a server of many
        self.serves = "*" if cfg.ward else cfg.camera.id  # the cameras whose topics it reads
        self.n_cameras = len(cfg.camera_list())
        self.frontend, self.backend = cfg.bus.endpoints(self.camera)
        self.curve: CurveKeys | None = curve_keys(cfg.bus.curve, server=False)
        self.counters = Counters()
        self.per_camera: dict[str, Counters] = {}  # results per camera (a server serves many)
        self.state = "starting"
        self.info: dict[str, Any] = {}
        self.loop_tick = time.monotonic()
        self._closing: list[Any] = []
        self._beat_thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._unexpected_errors = 0  # frame errors not in EXPECTED_ERRORS (the first log a traceback)
        self._expected_logged_at, self._expected_unshown = -math.inf, 0

    def section(self, name: str) -> Any:
        """Config section ``name``, one of those this worker's stage declares (else KeyError)."""
        try:
            return self._sections[name]
        except KeyError:
            raise KeyError(f"worker {self.name!r} does not declare config section {name!r}") from None

    def publisher(self) -> Publisher:
        """A publisher to the proxy (closed by :meth:`close`)."""
        pub = Publisher(
            self.frontend,
            self.bus.sndhwm,
            self.curve,
            self.bus.jpeg_quality,
            tcp_buffer_kb=self.bus.tcp_buffer_kb,
        )
        self._closing.append(pub)
        return pub

    def subscriber(self, topics: Iterable[str], rcvhwm: int | None = None) -> Subscriber:
        """A subscriber to ``topics`` of the camera(s) it serves (closed by :meth:`close`)."""
        sub = Subscriber(
            self.backend,
            self.serves,
            topics,
            rcvhwm or self.bus.rcvhwm,
            self.curve,
            tcp_buffer_kb=self.bus.tcp_buffer_kb,
        )
        self._closing.append(sub)
        return sub

    def tick(self, state: str | None = None) -> None:
        """Mark the main loop alive (and optionally change state)."""
        self.loop_tick = time.monotonic()
        if state is not None:
            self.state = state
        if state == "computing" and _spin_fault(self.fault):
            log.warning("%s: injected fault: spinning in the compute step", self.name)
            _spin_forever()

    def _expected_error_line(self, text: str) -> None:
        """One line for an operational error, unless one was logged within EXPECTED_LINE_INTERVAL_S
        (then counted, and the next line says how many were not shown)."""
        now = time.monotonic()
        if now - self._expected_logged_at < EXPECTED_LINE_INTERVAL_S:
            self._expected_unshown += 1
            return
        more = f" (+{self._expected_unshown} more such errors not shown)" if self._expected_unshown else ""
        log.error("%s: %s%s", self.name, text, more)
        self._expected_logged_at, self._expected_unshown = now, 0

    def frame_error(self, frame_id: int, exc: BaseException, remote: bool = False) -> None:
        """Log and count a per-frame error; exit for a restart when they persist.

        ``remote``: a server this worker calls failed (the caller backs off); one line, no
        traceback, and no restart (a fresh process would not bring the server back).
        """
        c = self.counters
        c.errors += 1
        c.consecutive_errors += 0 if remote else 1
        c.last_error = f"frame {frame_id}: {type(exc).__name__}: {exc}"
        if remote or isinstance(exc, EXPECTED_ERRORS):
            self._expected_error_line(c.last_error)
        else:
            self._unexpected_errors += 1
            log.error("%s: %s", self.name, c.last_error, exc_info=self._unexpected_errors <= MAX_TRACEBACKS)
        if c.consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            raise PersistentFailure(f"{c.consecutive_errors} consecutive frame errors; last: {c.last_error}")

    def camera_out(self, camera: str, origin_us: int, **extra: Any) -> None:
        """Count one result for ``camera`` (rate, capture→now latency, ``extra``) for Status ``cameras``.

        At most ``MAX_CAMERAS`` are tracked: camera ids come from the bus, so their number is bounded.
        """
        c = self.per_camera.get(camera)
        if c is None:
            if len(self.per_camera) >= MAX_CAMERAS:
                self.info["cameras_untracked"] = self.info.get("cameras_untracked", 0) + 1
                return
            c = self.per_camera[camera] = Counters()
        c.out()
        c.extra.update(latency_ms=round((m.now_us() - origin_us) / 1000.0, 1), **extra)

    def camera_info(self) -> dict[str, dict[str, Any]]:
        """Per-camera results for Status ``info['cameras']``: count, rate, latency and extras."""
        return {
            cam: {"frames_out": c.frames_out, "rate_hz": round(c.rate(), 2), **c.extra}
            for cam, c in self.per_camera.items()
        }

    def status(self, beat: int) -> m.Status:
        """The Status message describing this worker now."""
        c = self.counters
        info = {
            "frames_in": c.frames_in,
            "frames_out": c.frames_out,
            "rate_hz": round(c.rate(), 2),
            "errors": c.errors,
            "last_error": c.last_error,
            "loop_age_s": round(time.monotonic() - self.loop_tick, 2),
            "uptime_s": round(time.monotonic() - c.started, 1),
            **self.info,
        }
        if self.per_camera:
            info["cameras"] = self.camera_info()
        now = m.now_us()
        return m.Status(
            camera=self.camera,
            frame_id=beat,
            ts_us=now,
            worker=self.name,
            pid=os.getpid(),
            state=self.state,
            info=info,
        )

    def start_heartbeat(self) -> None:
        """Publish Status every ``runtime.heartbeat_s`` from a thread with its own socket."""
        self._beat_thread = threading.Thread(target=self._beat, name=f"{self.name}-heartbeat", daemon=True)
        self._beat_thread.start()

    def orphaned(self) -> bool:
        """True once the supervisor that started this worker is gone (portable PDEATHSIG)."""
        return os.getppid() != self.parent_pid

    def _beat(self) -> None:
        pub = Publisher(self.frontend, 16, self.curve)
        try:
            beat = 0
            while not self.stop.is_set():
                if self.orphaned():
                    log.error("%s: its supervisor (pid %d) is gone: stopping", self.name, self.parent_pid)
                    self.stop.set()
                    break
                pub.publish(self.status(beat))
                beat += 1
                self.stop.wait(self.runtime.heartbeat_s)
            self.state = "stopped" if self.state != "eof" else "eof"
            pub.publish(self.status(beat))
        finally:
            pub.close()
        self._exit_if_orphaned_and_stuck()

    def _exit_if_orphaned_and_stuck(self) -> None:
        """Until the main loop closes: once the supervisor is gone, nobody would SIGKILL a main loop
        stuck in compute, so end the process ``shutdown_timeout_s`` later.

        The parent pid changes only when the supervisor's last thread has died, which can be after
        its death signal: so this keeps watching rather than checking once.
        """
        grace = self.runtime.shutdown_timeout_s
        orphaned_at: float | None = None
        while not self._closed.wait(0.1):
            if orphaned_at is None and self.orphaned():
                orphaned_at = time.monotonic()
            if orphaned_at is not None and time.monotonic() - orphaned_at > grace:
                log.error("%s: did not stop %.0f s after its supervisor died: exiting", self.name, grace)
                logging.shutdown()
                os._exit(EXIT_ERROR)

    def close(self) -> None:
        """Stop the heartbeat and close every socket."""
        self._closed.set()
        self.stop.set()
        if self._beat_thread is not None:
            self._beat_thread.join(timeout=2.0)
        for sock in reversed(self._closing):
            sock.close()


def deterministic_kernels() -> None:
    """``runtime.every_frame``: cuDNN uses deterministic kernels only (no per-run algorithm search),
    so a CUDA run gives the same masks each time as a CPU run does (nothing to do without torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


class PersistentFailure(RuntimeError):
    """Raised when a worker fails on frame after frame: it exits so the supervisor restarts it."""


def worker_main(
    name: str, target: Callable[[WorkerRuntime], int], cfg: Config, parent_pid: int | None = None
) -> int:
    """Run one worker in the current process: signals, heartbeat, exit code."""
    stop = threading.Event()
    install_stop_handlers(stop, (signal.SIGTERM,))  # SIGINT is the supervisor's (child_entry)
    rt = WorkerRuntime(name, cfg, stop, parent_pid)
    rt.start_heartbeat()
    try:
        return target(rt)
    except PersistentFailure as exc:
        log.error("%s: giving up for a restart: %s", name, exc)
        return EXIT_GAVE_UP
    finally:
        rt.close()
