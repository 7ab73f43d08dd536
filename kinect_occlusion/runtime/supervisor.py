"""The supervisor: proxy + worker processes from one config, restarts, ordered shutdown.

Exit codes (defined in :mod:`.worker`): 0 clean stop (end of file or SIGINT/SIGTERM), 3 a worker
could not start (config, checkpoint, recording), 4 a worker kept failing and was given up: at once
when it was capture, deeplab or fuser (no mask can be produced any more); when it was the partition
worker the pipeline runs on degraded (coarse masks only) and exits 4 when stopped; 5 a socket file
of its ipc:// bus was removed (nothing new could connect: an ordered stop, so a service manager
restarts it and it binds again).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import messages as m
from ..bus import Proxy, Publisher, Subscriber, curve_keys
from ..config import Config, RuntimeConfig
from . import logs
from .child import child_entry, sigint_ignored_by_children
from .monitor import BusMonitor, Heartbeats
from .restart import RestartPolicy
from .stages import ESSENTIAL, SOURCE, for_role, start_order, stop_order
from .worker import EXIT_BUS_LOST, EXIT_GAVE_UP, EXIT_OK, EXIT_STARTUP

if TYPE_CHECKING:
    from .metrics import PipelineMetrics

log = logging.getLogger(__name__)

# A pause this long between two checks of the workers was the supervisor's own (SIGSTOP, a
# suspended VM, a starved host; its loop runs every ~0.1 s): heartbeat deadlines move by it
SELF_GAP_S = 1.0


def hang_reason(hb: Heartbeats, now: float, rt: RuntimeConfig) -> str | None:
    """Why a running child looks hung, from the supervisor's own measurements; None if it is alive."""
    if hb.last_at is None:
        late = now - hb.started_at
        return f"no heartbeat {late:.0f} s after start" if late > rt.startup_grace_s else None
    if now - hb.last_at > rt.hang_timeout_s:
        return f"no heartbeat for {now - hb.last_at:.0f} s"
    if not hb.ready and now - hb.started_at > rt.startup_grace_s:
        return f"still starting {now - hb.started_at:.0f} s after start, over runtime.startup_grace_s"
    if hb.computing_since is not None and now - hb.computing_since > rt.compute_timeout_s:
        return f"computing for {now - hb.computing_since:.0f} s, over runtime.compute_timeout_s"
    if hb.loop_at is not None and now - hb.loop_at > rt.hang_timeout_s:
        return f"main loop stalled {now - hb.loop_at:.0f} s"
    return None


@dataclass
class Handle:
    """One supervised worker."""

    name: str
    policy: RestartPolicy
    process: mp.process.BaseProcess | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    restarts: int = 0
    failed: bool = False
    finished: bool = False
    killing: bool = False  # a hang kill was issued to the current process
    exitcodes: list = field(default_factory=list)


class Supervisor:
    """Runs the pipeline until end of file, a stop signal, or a fatal start-up error.

    Args:
        cfg: validated configuration.
        stop: set to stop (the CLI sets it on SIGINT/SIGTERM).
        on_message: optional callback ``(msg, latency_ms)`` for every result the monitor sees.
        workers: which workers to run (default: the stages of ``role``).
        role: ``all`` (one box), ``bedside`` (capture only, on the server's bus: no proxy of its
            own) or ``server`` (the proxy and inference for every camera); see ``stages.for_role``.
    """

    def __init__(
        self,
        cfg: Config,
        stop: threading.Event,
        on_message: Callable | None = None,
        workers: tuple[str, ...] | None = None,
        role: str = "all",
    ) -> None:
        self.cfg, self.stop, self.role = cfg, stop, role
        self.workers = workers if workers is not None else for_role(role)
        self.ctx = mp.get_context("spawn")
        self.log_sink: logs.LogSink | None = None  # started by start_logging() or run()
        rt = cfg.runtime
        self.handles = {
            n: Handle(
                n,
                RestartPolicy(
                    rt.restart_backoff_s[0], rt.restart_backoff_s[1], rt.max_restarts, rt.restart_window_s
                ),
            )
            for n in self.workers
        }
        self.on_message = on_message
        self.metrics: PipelineMetrics | None = None
        self.exit_code = EXIT_OK
        self.eof_at: float | None = None
        self.fatal: str | None = None
        self.proxy: Proxy | None = None  # ours (not on a bedside), once bound
        self.checked_at: float | None = None  # monotonic time of the last _check
        self.server_up = True  # bedside: whether the server's bus answers (logged on change)
        # A ward config names its cameras in 'cameras' only (the child validates it again)
        self._not_dumped = {"camera"} if cfg.cameras is not None else None

    # ------------------------------------------------------------------ processes

    def _spawn(self, h: Handle, monitor: BusMonitor) -> None:
        h.process = self.ctx.Process(
            target=child_entry,
            name=h.name,
            args=(
                h.name,
                self.cfg.model_dump_json(exclude=self._not_dumped),
                self.start_logging(),
                os.getpid(),
            ),
            daemon=False,
        )
        with sigint_ignored_by_children():
            h.process.start()
        h.started_at = time.monotonic()
        h.restart_at, h.killing = None, False
        monitor.expect(h.name, h.process.pid or 0, h.started_at)
        log.info("started %s (pid %d)", h.name, h.process.pid)

    def _on_exit(self, h: Handle, code: int, now: float) -> None:
        h.exitcodes.append(code)
        h.process = None
        if h.name == SOURCE and code == EXIT_OK:
            log.info("capture finished (end of source); draining the pipeline")
            h.finished, self.eof_at = True, now
            return
        if self.stop.is_set():  # stopping: an exit now is no failure, and nothing restarts
            log.info("%s exited with code %s while stopping", h.name, code)
            return
        if code == EXIT_STARTUP:
            self.fatal = f"{h.name} could not start (see the error above)"
            self.exit_code = EXIT_STARTUP
            return
        delay = h.policy.on_failure(now)
        if delay is None:
            self._give_up(h)
            return
        h.restart_at = now + delay
        log.warning("%s exited with code %s; restarting in %.1f s", h.name, code, delay)

    def _give_up(self, h: Handle) -> None:
        h.failed = True
        self.exit_code = EXIT_GAVE_UP
        log.error(
            "%s failed %d times within %.0f s: giving up on it",
            h.name,
            h.policy.restarts,
            h.policy.window_s,
        )
        if h.name in ESSENTIAL:
            self.fatal = f"{h.name} was given up: no masks can be produced (exit code {EXIT_GAVE_UP})"
        else:
            self._warn_degraded([h])

    def _check(self, monitor: BusMonitor) -> None:
        now = time.monotonic()
        self._forgive_own_gap(monitor, now)
        for h in self.handles.values():
            if h.process is not None and not h.process.is_alive():
                self._on_exit(h, h.process.exitcode or 0, now)
            elif h.process is not None and not h.killing and self._bus_answers(monitor, now):
                hb = monitor.beats.get(h.name)
                reason = hang_reason(hb, now, self.cfg.runtime) if hb is not None else None
                if reason:
                    log.error("%s looks hung (%s): killing it", h.name, reason)
                    h.killing = True  # once per hang: not re-issued while the process dies
                    h.process.kill()
            elif h.restart_at is not None and now >= h.restart_at and not self.stop.is_set():
                h.restarts += 1
                self._spawn(h, monitor)

    def _forgive_own_gap(self, monitor: BusMonitor, now: float) -> None:
        """After a pause of this process (not of its workers), heartbeats are judged from now on:
        without this, every worker was declared hung and killed when a stopped supervisor resumed."""
        gap = 0.0 if self.checked_at is None else now - self.checked_at
        self.checked_at = now
        if gap > SELF_GAP_S:
            log.warning(
                "the supervisor did not run for %.1f s (stopped, suspended or starved): "
                "worker heartbeat deadlines moved by as much",
                gap,
            )
            monitor.forgive_gap(gap, now)

    def _bus_answers(self, monitor: BusMonitor, now: float) -> bool:
        """Whether heartbeats can be judged: always with our own proxy; on a bedside, while the
        server's bus brings anything back (a lost server is not a hung capture)."""
        if self.role != "bedside":
            return True
        quiet_s = 3 * self.cfg.runtime.heartbeat_s
        answers = monitor.last_arrival is not None and now - monitor.last_arrival < quiet_s
        if answers != self.server_up:
            self.server_up = answers
            if answers:
                log.info("bus server reachable: %s", self.cfg.bus.frontend)
            else:
                log.warning(
                    "bus server unreachable (nothing back for %.0f s): capture keeps running, "
                    "frames are dropped until it returns",
                    quiet_s,
                )
        return answers

    # ------------------------------------------------------------------ lifetime

    def _drained(self, monitor: BusMonitor) -> bool:
        """After end of file: the last frame's mask arrived, or nothing came for 3 s (max 60 s)."""
        if self.eof_at is None:
            return False
        cap = monitor.status.get(SOURCE)
        last = (cap.info.get("epoch", 0), cap.info.get("last_frame_id", -1)) if cap else (0, -1)
        fused = monitor.stages[m.TOPIC_OCCLUSION]
        quiet = not fused.arrivals or time.monotonic() - fused.arrivals[-1] > 3.0
        waited = time.monotonic() - self.eof_at
        # The last frame's own mask, by identity (a forged or older id cannot end the drain early)
        return (last[1] >= 0 and last in fused.recent) or (quiet and waited > 3.0) or waited > 60.0

    def _shutdown(self) -> None:
        """Stop workers in order: SIGTERM, wait, then SIGKILL what is left."""
        deadline = time.monotonic() + self.cfg.runtime.shutdown_timeout_s
        for name in stop_order(self.workers):
            h = self.handles.get(name)
            if h is not None and h.process is not None and h.process.pid is not None and h.process.is_alive():
                os.kill(h.process.pid, signal.SIGTERM)
        for name in stop_order(self.workers):
            h = self.handles.get(name)
            if h is None or h.process is None:
                continue
            h.process.join(max(0.0, deadline - time.monotonic()))
            if h.process.is_alive():
                log.warning("%s did not stop in time: killing it", name)
                h.process.kill()
                h.process.join(2.0)

    def _message(self, msg: m.Message, latency_ms: float | None) -> None:
        if self.metrics is not None:
            self.metrics.observe_message(msg, latency_ms)
        if self.on_message is not None:
            self.on_message(msg, latency_ms)

    def _publish_status(self, pub: Publisher, beat: int, monitor: BusMonitor) -> None:
        alive = {n: bool(h.process and h.process.is_alive()) for n, h in self.handles.items()}
        # A bedside says whether its server answers (read on its own host: 'status --camera ID')
        server = {"server": "up" if self._bus_answers(monitor, time.monotonic()) else "down"}
        info = {
            n: {"restarts": h.restarts, "failed": h.failed, "alive": alive[n]}
            for n, h in self.handles.items()
        }
        if self.metrics is not None:
            for n, h in self.handles.items():
                self.metrics.observe_worker(n, h.restarts, alive[n])
            for st in monitor.status.values():
                self.metrics.observe_status(st)
        pub.publish(
            m.Status(
                camera=self.cfg.bus_name,
                frame_id=beat,
                ts_us=m.now_us(),
                worker="supervisor",
                pid=os.getpid(),
                state="degraded" if any(h.failed for h in self.handles.values()) else "running",
                info={
                    "workers": info,
                    "invalid": monitor.invalid,
                    "role": self.role,
                    **(server if self.role == "bedside" else {}),
                },
            )
        )

    def run(self) -> int:
        """Run until done; return the exit code (call it from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            # Linux sends PDEATHSIG when the *thread* that started a worker ends
            raise RuntimeError("Supervisor.run() must be called from the main thread")
        own_sink = self.log_sink is None  # else the caller started it (for its own children too)
        self.start_logging()
        try:  # the sink's folder goes on every path, a bind that fails included
            return self._run()
        finally:
            if own_sink:
                self.stop_logging()

    def _run(self) -> int:
        """:meth:`run` once logging is set up: proxy, monitor, workers; what was opened is closed on
        every path (a later step that fails, a bind or the metrics port, included)."""
        with ExitStack() as closing:  # closed in reverse: metrics, workers, proxy, our sockets
            pub, sub = self._open_bus(closing)
            monitor = BusMonitor(
                sub, self._message, own_pid=os.getpid(), camera=self.cfg.bus_name if self.cfg.ward else None
            )
            closing.callback(self._shutdown)
            if self.cfg.metrics.prometheus_port:
                from .metrics import PipelineMetrics

                self.metrics = PipelineMetrics(
                    self.cfg.bus_name, self.cfg.metrics.prometheus_port, self.cfg.metrics.prometheus_host
                )
                closing.callback(self.metrics.close)
            if self.role == "bedside":
                pub.also_bind(self.cfg.bus.bedside_status.format(camera=self.cfg.camera.id))
            self._loop(monitor, pub)
        return self.exit_code

    def _open_bus(self, closing: ExitStack) -> tuple[Publisher, Subscriber]:
        """Our proxy (not on a bedside: it publishes to the server's) and this process's publisher
        and subscriber on it, their closing registered on ``closing``.

        The proxy stops *before* our own sockets close: a subscriber of this process disconnecting
        while the proxy closes can abort the process (libzmq 4.3.5, session_base.cpp:233; see
        :meth:`Proxy.stop`).
        """
        frontend, backend = self.cfg.bus.endpoints(self.cfg.bus_name)
        client_keys = curve_keys(self.cfg.bus.curve, server=False)
        proxy = None
        if self.role != "bedside":
            proxy = Proxy(
                frontend,
                backend,
                hwm=max(self.cfg.bus.sndhwm, self.cfg.bus.rcvhwm),
                curve=curve_keys(self.cfg.bus.curve, server=True),
                tcp_buffer_kb=self.cfg.bus.tcp_buffer_kb,
            ).start()
            self.proxy = proxy
            closing.callback(proxy.stop)  # if opening our sockets fails
        serves = "*" if self.cfg.ward else self.cfg.camera.id
        pub = closing.enter_context(Publisher(frontend, 16, client_keys))
        sub = closing.enter_context(
            Subscriber(backend, serves, BusMonitor.TOPICS, rcvhwm=64, curve=client_keys)
        )
        if proxy is not None:
            closing.callback(proxy.stop)  # the usual path: before our sockets (stop is idempotent)
        return pub, sub

    def start_logging(self) -> str:
        """Configure this process's logging and start the children's log sink (once); its endpoint.

        A process the caller starts beside the workers (the viewer) logs there too.
        """
        if self.log_sink is None:
            self.log_sink = logs.LogSink(logs.setup_main(self.cfg.logging))
        return self.log_sink.endpoint

    def stop_logging(self) -> None:
        """Deliver the records that have arrived and close the sink."""
        if self.log_sink is not None:
            self.log_sink.stop()
            self.log_sink = None

    def _start_all(self, monitor: BusMonitor) -> None:
        for name in start_order(self.workers):
            if name == SOURCE:
                self._wait_ready(monitor)
            if not self.stop.is_set() and self.fatal is None:
                self._spawn(self.handles[name], monitor)

    def _wait_ready(self, monitor: BusMonitor) -> None:
        """Let the consumers load their models before frames flow (bounded by startup_grace_s)."""
        consumers = [n for n in self.workers if n != SOURCE]
        deadline = time.monotonic() + self.cfg.runtime.startup_grace_s
        while not self.stop.is_set() and self.fatal is None and time.monotonic() < deadline:
            monitor.poll(100)
            self._check(monitor)
            if all(
                monitor.status.get(n) is not None and monitor.status[n].state != "starting" for n in consumers
            ):
                return

    def _check_endpoints(self) -> None:
        """Stop with EXIT_BUS_LOST when an ipc:// socket file of our proxy was removed (a cleaner of
        /tmp, an operator): subscribers and restarted workers could no longer connect, silently."""
        lost = self.proxy.lost_endpoints() if self.proxy is not None else []
        if lost and self.fatal is None:
            self.fatal = (
                f"the bus socket file {lost[0]} was removed or replaced: nothing new can connect; "
                f"exit code {EXIT_BUS_LOST} (restart to bind it again)"
            )
            self.exit_code = EXIT_BUS_LOST

    def _warn_degraded(self, handles: Iterable[Handle]) -> None:
        """The DEGRADED line of each of ``handles``: once when given up, then every report interval."""
        for h in handles:
            log.warning(
                "DEGRADED: %s was given up after %d failures: coarse masks only (fused=false) "
                "until the daemon is restarted",
                h.name,
                h.policy.restarts,
            )

    def _loop(self, monitor: BusMonitor, pub: Publisher) -> None:
        self._start_all(monitor)
        next_report = time.monotonic() + self.cfg.runtime.report_interval_s
        next_beat, beat = time.monotonic(), 0
        while not self.stop.is_set() and self.fatal is None and not self._drained(monitor):
            monitor.poll(100)
            self._check(monitor)
            now = time.monotonic()
            if now >= next_beat:
                self._check_endpoints()
                self._publish_status(pub, beat, monitor)
                beat, next_beat = beat + 1, now + self.cfg.runtime.heartbeat_s
            if now >= next_report:
                log.info("%s", monitor.report())
                self._warn_degraded(h for h in self.handles.values() if h.failed)
                next_report = now + self.cfg.runtime.report_interval_s
        if self.fatal:
            log.error("stopping: %s", self.fatal)
        log.info("final: %s", monitor.report())
