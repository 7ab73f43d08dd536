"""A fake ``pyk4a`` for tests: the same names and attributes as the real package (etiennedub/pyk4a)
that ``kinect_occlusion.sources.kinect`` uses, producing synthetic scenes instead of camera images.

Tests put ``tests/fakes`` first on ``sys.path`` and drive the fake through ``STATE``:
  - ``STATE.serials``: cameras connected (empty: none);
  - ``STATE.drop_at``: global capture numbers at which the device is "unplugged" (get_capture raises
    K4AException) and then stays absent for ``STATE.replug_after_polls`` calls of connected_device_count;
  - ``STATE.absent_polls``: connected_device_count returns 0 this many times first;
  - ``STATE.timeouts``: the next this many get_capture calls raise K4ATimeoutException.
``FAKE_PYK4A_SCRIPT`` (JSON of those fields) sets them in a process started by a test.
Set the environment variable ``FAKE_PYK4A_ABSENT=1`` to make the import fail as it does when the native
k4a library is missing (OSError).
"""

from __future__ import annotations

import os
from enum import IntEnum

import cv2
import numpy as np

from kinect_occlusion.sources.k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES, encode_color

if os.environ.get("FAKE_PYK4A_ABSENT"):
    raise OSError("Failed to load k4a library (fake)")

__version__ = "1.5.0-fake"


class FPS(IntEnum):
    FPS_5 = 0
    FPS_15 = 1
    FPS_30 = 2


class ImageFormat(IntEnum):
    COLOR_MJPG = 0
    COLOR_NV12 = 1
    COLOR_YUY2 = 2
    COLOR_BGRA32 = 3
    DEPTH16 = 4
    IR16 = 5
    CUSTOM8 = 6
    CUSTOM16 = 7
    CUSTOM = 8


class DepthMode(IntEnum):
    OFF = 0
    NFOV_2X2BINNED = 1
    NFOV_UNBINNED = 2
    WFOV_2X2BINNED = 3
    WFOV_UNBINNED = 4
    PASSIVE_IR = 5


class ColorResolution(IntEnum):
    OFF = 0
    RES_720P = 1
    RES_1080P = 2
    RES_1440P = 3
    RES_1536P = 4
    RES_2160P = 5
    RES_3072P = 6


class K4AException(Exception):
    pass


class K4ATimeoutException(K4AException):
    pass


# Image sizes from the project's one mode table, by the enum names pyk4a uses
COLOR_SIZES = {
    int(r): COLOR_RESOLUTIONS[r.name.removeprefix("RES_")] for r in ColorResolution if r.name != "OFF"
}
DEPTH_SIZES = {int(m): DEPTH_MODES[m.name] for m in DepthMode if m.name not in ("OFF", "PASSIVE_IR")}


class _State:
    """What the fake hardware does; ``reset()`` between tests."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.serials: list[str] = ["000111222333"]
        self.drop_at: set[int] = set()
        self.replug_after_polls = 0
        self.absent_polls = 0
        self.timeouts = 0
        self.captures = 0
        self.polls = 0
        self.starts = 0
        self.running = 0
        self.calibration = '{"CalibrationInformation": {"Cameras": [], "fake": true}}'


STATE = _State()

# Process-level tests script the hardware through the environment: FAKE_PYK4A_SCRIPT='{"absent_polls": 5,
# "drop_at": [40], "replug_after_polls": 5}'
if os.environ.get("FAKE_PYK4A_SCRIPT"):
    import json as _json

    for _key, _value in _json.loads(os.environ["FAKE_PYK4A_SCRIPT"]).items():
        setattr(STATE, _key, set(_value) if _key == "drop_at" else _value)


def connected_device_count() -> int:
    STATE.polls += 1
    if STATE.absent_polls > 0:
        STATE.absent_polls -= 1
        return 0
    return len(STATE.serials)


class Config:
    def __init__(  # noqa: PLR0913 — one keyword per device/recording option
        self,
        color_resolution: ColorResolution = ColorResolution.RES_720P,
        color_format: ImageFormat = ImageFormat.COLOR_BGRA32,
        depth_mode: DepthMode = DepthMode.NFOV_UNBINNED,
        camera_fps: FPS = FPS.FPS_30,
        synchronized_images_only: bool = True,
        depth_delay_off_color_usec: int = 0,
        wired_sync_mode: int = 0,
        subordinate_delay_off_master_usec: int = 0,
        disable_streaming_indicator: bool = False,
    ):
        self.color_resolution = color_resolution
        self.color_format = color_format
        self.depth_mode = depth_mode
        self.camera_fps = camera_fps
        self.synchronized_images_only = synchronized_images_only
        self.depth_delay_off_color_usec = depth_delay_off_color_usec
        self.wired_sync_mode = wired_sync_mode
        self.subordinate_delay_off_master_usec = subordinate_delay_off_master_usec
        self.disable_streaming_indicator = disable_streaming_indicator


class PyK4ACapture:
    """Colour in the configured format; depth in depth-camera shape; transformed depth in colour shape."""

    def __init__(self, config: Config, index: int):
        from kinect_occlusion.sources.synthetic import render_scene

        w, h = COLOR_SIZES[int(config.color_resolution)]
        fps = (5, 15, 30)[int(config.camera_fps)]
        self._scene = render_scene(0, w, h, t=index / fps)
        self._config = config
        self.color_timestamp_usec = 200_000 + int(index * 1e6 / fps)  # device clock: restarts with the device
        self.depth_timestamp_usec = self.color_timestamp_usec
        self._color: np.ndarray | None = None

    @property
    def color(self) -> np.ndarray | None:
        if self._color is None:
            self._color = _encode(self._scene.rgb, ImageFormat(self._config.color_format))
        return self._color

    @property
    def depth(self) -> np.ndarray | None:
        mode = int(self._config.depth_mode)
        if mode not in DEPTH_SIZES:
            return None
        return cv2.resize(self._scene.depth, DEPTH_SIZES[mode], interpolation=cv2.INTER_NEAREST)

    @property
    def transformed_depth(self) -> np.ndarray | None:
        return None if self.depth is None else self._scene.depth.copy()


def _encode(rgb: np.ndarray, fmt: ImageFormat) -> np.ndarray:
    """RGB to what the K4A SDK hands out for ``fmt``: MJPG bytes, BGRA H×W×4, NV12 (H·3/2)×W, YUY2 H×W×2."""
    h, w = rgb.shape[:2]
    data = np.frombuffer(encode_color(rgb, fmt.name.removeprefix("COLOR_")), np.uint8)
    shapes = {
        ImageFormat.COLOR_MJPG: (-1,),
        ImageFormat.COLOR_BGRA32: (h, w, 4),
        ImageFormat.COLOR_NV12: (h * 3 // 2, w),
        ImageFormat.COLOR_YUY2: (h, w, 2),
    }
    if fmt not in shapes:
        raise NotImplementedError(f"fake pyk4a does not produce {fmt.name}")
    return data.reshape(shapes[fmt])


class PyK4A:
    TIMEOUT_WAIT_INFINITE = -1

    def __init__(self, config: Config | None = None, device_id: int = 0, thread_safe: bool = True):
        self._config = config if config is not None else Config()
        self._device_id = device_id
        self.thread_safe = thread_safe
        self._opened = False
        self.is_running = False
        self._index = 0

    @property
    def opened(self) -> bool:
        return self._opened

    def open(self) -> None:
        if self._opened:
            raise K4AException("Device already opened")
        if self._device_id >= len(STATE.serials) or STATE.absent_polls > 0:
            raise K4AException()
        self._opened = True

    def close(self) -> None:
        if not self._opened:
            raise K4AException("Device is not opened")
        self._opened = False

    def start(self) -> None:
        if not self._opened:
            self.open()
        self.is_running = True
        STATE.starts += 1
        STATE.running += 1

    def stop(self) -> None:
        if self.is_running:
            STATE.running -= 1
        self.is_running = False
        self.close()

    @property
    def serial(self) -> str:
        if not self._opened:
            raise K4AException("Device is not opened")
        return STATE.serials[self._device_id]

    @property
    def calibration_raw(self) -> str:
        if not self._opened:
            raise K4AException("Device is not opened")
        return STATE.calibration

    def get_capture(self, timeout: int = TIMEOUT_WAIT_INFINITE) -> PyK4ACapture:
        if not self._opened:
            raise K4AException("Device is not opened")
        if STATE.timeouts > 0:
            STATE.timeouts -= 1
            raise K4ATimeoutException()
        if STATE.captures in STATE.drop_at:
            # Unplugged: this and every later call fails; absent for a few polls
            STATE.drop_at.discard(STATE.captures)
            STATE.absent_polls = STATE.replug_after_polls
            self._opened = False
            raise K4AException()
        STATE.captures += 1
        capture = PyK4ACapture(self._config, self._index)
        self._index += 1
        return capture
