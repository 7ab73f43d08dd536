"""Live Azure Kinect (or Orbbec Femto through the K4A wrapper) source over ``pyk4a``.

The camera may be unplugged, restarted or absent at start: the source then keeps trying with
exponential back-off until its stop event is set, and ``state`` tells the capture worker what it is
doing (``connecting``, ``streaming``, ``reconnecting``, ``stopped``). ``frame_id`` and ``ts_us`` keep
increasing across reconnects (the device clock restarts at zero, so timestamps of a new connection
are shifted to follow the last frame; the raw device time is in ``Frame.extra["device_ts_us"]``).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from ..errors import SourceError
from .base import Frame, Source
from .k4a_formats import COLOR_FORMATS, COLOR_RESOLUTIONS, decode_color, mode_problem

log = logging.getLogger(__name__)

MISSING_SDK = (
    "pyk4a is not importable: install the Azure Kinect SDK (or Orbbec's K4A wrapper for Femto cameras) "
    "and `pip install 'kinect-occlusion[kinect]'`"
)


class _Event(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def check_mode(color_resolution: str, fps: int, color_format: str, depth_mode: str) -> None:
    """Raise SourceError (one line naming the config keys) for a mode the Azure Kinect does not offer."""
    problem = mode_problem(color_resolution, fps, color_format, depth_mode, prefix="camera.")
    if problem:
        raise SourceError(problem)


def to_rgb(color: np.ndarray, color_format: str, size: tuple[int, int]) -> np.ndarray | None:
    """Decode a K4A colour image (MJPG bytes, BGRA32, NV12 or YUY2) to H×W×3 RGB; None if undecodable."""
    w, h = size
    try:
        return decode_color(np.ascontiguousarray(color), COLOR_FORMATS[color_format].fourcc.decode(), w, h)
    except ValueError:
        return None


def import_pyk4a() -> Any:
    """Import pyk4a, or raise SourceError telling what to install."""
    try:
        return importlib.import_module("pyk4a")
    except (ImportError, OSError) as exc:  # OSError: the native k4a library is missing
        raise SourceError(MISSING_SDK) from exc


class KinectSource(Source):
    """Frames from a live Azure Kinect (colour as RGB, depth in mm, raw or aligned to colour).

    Args:
        color_resolution: "720P" … "3072P".
        fps: 5, 15 or 30.
        color_format: "MJPG", "BGRA32", "NV12" or "YUY2" (decoded to RGB here).
        depth_mode: "NFOV_UNBINNED", "NFOV_2X2BINNED", "WFOV_*", or "OFF" for colour only.
        align_depth: reproject depth onto the colour image (``capture.transformed_depth``).
        device_serial: serial of the camera to open (None: the first one).
        reconnect_backoff: first and longest wait (s) between connection attempts.
        stop_event: ends the stream (and the reconnect loop) when set.
        capture_timeout_ms: wait for one capture; short so that the stop event is seen quickly.
        stall_s: this long without any capture counts as a lost device (reconnect).
        on_idle: called with ``state`` at least every 0.5 s while no frame comes (connecting, waiting,
            capture timeouts), so the capture worker can keep its heartbeat and publish the camera state.
    """

    def __init__(  # noqa: PLR0913 — one keyword per device/recording option
        self,
        color_resolution: str = "720P",
        fps: int = 30,
        color_format: str = "MJPG",
        depth_mode: str = "NFOV_UNBINNED",
        align_depth: bool = False,
        device_serial: str | None = None,
        reconnect_backoff: tuple[float, float] = (0.5, 8.0),
        stop_event: _Event | threading.Event | None = None,
        capture_timeout_ms: int = 100,
        stall_s: float = 5.0,
        on_idle: Callable[[str], None] | None = None,
    ) -> None:
        check_mode(color_resolution, fps, color_format, depth_mode)
        self.color_resolution, self.fps, self.color_format = color_resolution, fps, color_format
        self.depth_mode, self.align_depth, self.device_serial = depth_mode, align_depth, device_serial
        self.backoff = (max(0.001, reconnect_backoff[0]), max(reconnect_backoff))
        self.stop_event = stop_event
        self.capture_timeout_ms, self.stall_s = capture_timeout_ms, stall_s
        self.on_idle = on_idle
        self.state = "stopped"
        self.reconnects = 0
        self._k4a: Any = None
        self._device: Any = None
        self._next_id = 0
        self._ts_shift = 0
        self._shift_next = False
        self._last_ts: int | None = None
        self._stall_since = 0.0

    def open(self) -> None:
        """Check that pyk4a is importable; the device itself is (re)connected while streaming."""
        self._k4a = import_pyk4a()
        self.state = "connecting"

    def close(self) -> None:
        """Stop the camera. Safe to call twice."""
        self._disconnect()
        self.state = "stopped"

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the stop event is set, reconnecting whenever the device is lost."""
        if self._k4a is None:
            self.open()
        delay = self.backoff[0]
        while not self._stopped():
            # Connect (or wait and retry with a longer back-off)
            if self._device is None:
                if not self._connect():
                    self._wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                delay = self.backoff[0]
            frame = self._next_frame()
            if frame is not None:
                yield frame
        self.state = "stopped"

    def _stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (cut short by the stop event), reporting idleness every 0.5 s."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stopped():
            self._idle()
            if self.stop_event is not None:
                self.stop_event.wait(min(left, 0.5))
            else:
                time.sleep(min(left, 0.5))

    def _idle(self) -> None:
        if self.on_idle is not None:
            self.on_idle(self.state)

    def _config(self) -> Any:
        """The pyk4a Config for this source's mode."""
        k = self._k4a
        return k.Config(
            color_resolution=k.ColorResolution[f"RES_{self.color_resolution}"],
            color_format=k.ImageFormat[f"COLOR_{self.color_format}"],
            depth_mode=k.DepthMode[self.depth_mode],
            camera_fps=k.FPS[f"FPS_{self.fps}"],
            synchronized_images_only=self.depth_mode != "OFF",
        )

    def _find_device_id(self) -> int | None:
        """Index of the wanted camera among those connected, or None."""
        count = self._k4a.connected_device_count()
        if count == 0:
            log.warning("kinect: no camera connected")
            return None
        if self.device_serial is None:
            return 0
        for device_id in range(count):
            probe = self._k4a.PyK4A(device_id=device_id)
            probe.open()
            try:
                if probe.serial == self.device_serial:
                    return device_id
            finally:
                probe.close()
        log.warning("kinect: camera %s not among the %d connected", self.device_serial, count)
        return None

    def _connect(self) -> bool:
        """Open and start the camera; False (logged) when it is not there or fails to start."""
        try:
            device_id = self._find_device_id()
            if device_id is None:
                return False
            device = self._k4a.PyK4A(config=self._config(), device_id=device_id)
            device.start()
            self.calibration = device.calibration_raw
        except self._k4a.K4AException as exc:
            log.warning("kinect: cannot start the camera (%s)", exc or type(exc).__name__)
            return False
        self._device = device
        self._stall_since = time.monotonic()
        self.state = "streaming"
        log.info(
            "kinect: streaming %s %s at %d fps, depth %s",
            self.color_resolution,
            self.color_format,
            self.fps,
            self.depth_mode,
        )
        return True

    def _disconnect(self) -> None:
        """Stop the camera if running; errors of a camera already gone are only logged."""
        device, self._device = self._device, None
        if device is None:
            return
        try:
            device.stop()
        except Exception as exc:  # a vanished device fails to stop: nothing else to do
            log.info("kinect: stop after loss failed (%s)", exc or type(exc).__name__)

    def _lost(self, why: str) -> None:
        """Drop the device and go back to connecting."""
        log.warning("kinect: camera lost after frame %d (%s); reconnecting", self._next_id - 1, why)
        self._disconnect()
        self.state, self.reconnects = "reconnecting", self.reconnects + 1
        self._shift_next = True  # the next connection's device clock restarts

    def _next_frame(self) -> Frame | None:
        """One capture as a Frame; None on timeout, undecodable colour or device loss."""
        try:
            capture = self._device.get_capture(timeout=self.capture_timeout_ms)
        except self._k4a.K4ATimeoutException:
            self._idle()
            if time.monotonic() - self._stall_since > self.stall_s:
                self._lost(f"no capture for {self.stall_s:.1f} s")
            return None
        except self._k4a.K4AException as exc:
            self._lost(str(exc) or type(exc).__name__)
            return None
        self._stall_since = time.monotonic()
        try:
            return self._to_frame(capture)
        except self._k4a.K4AException as exc:
            self._lost(str(exc) or type(exc).__name__)
            return None

    def _to_frame(self, capture: Any) -> Frame | None:
        """Decode colour, pick depth (raw or aligned) and number the frame."""
        if capture.color is None:
            return None
        rgb = to_rgb(capture.color, self.color_format, COLOR_RESOLUTIONS[self.color_resolution])
        if rgb is None:
            log.warning("kinect: undecodable colour image after frame %d, skipped", self._next_id - 1)
            return None
        depth = None
        if self.depth_mode not in ("OFF", "PASSIVE_IR"):
            depth = capture.transformed_depth if self.align_depth else capture.depth
        device_ts = int(capture.color_timestamp_usec)
        frame = Frame(
            frame_id=self._next_id,
            ts_us=self._monotonic_ts(device_ts),
            color=rgb,
            depth=depth,
            extra={
                "aligned_to_color": bool(self.align_depth and depth is not None),
                "device_ts_us": device_ts,
            },
        )
        self._next_id += 1
        return frame

    def _monotonic_ts(self, device_ts: int) -> int:
        """Device time, shifted after a reconnect so that it never goes backwards."""
        if self._shift_next and self._last_ts is not None:
            self._ts_shift = max(0, self._last_ts + int(1e6 / self.fps) - device_ts)
        self._shift_next = False
        ts = device_ts + self._ts_shift
        self._last_ts = ts
        return ts
