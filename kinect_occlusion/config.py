"""The one validated configuration, loaded from ``config.yaml``.

Validated once (pydantic, ``extra="forbid"``) at start-up; each part of the pipeline then
receives only its own section.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError
from .geometry import Box, clip_roi
from .sources.k4a_formats import ColorFormatName, ColorResolution, DepthSensingMode, Fps, mode_problem

ENDPOINT_SCHEMES = ("ipc://", "tcp://", "inproc://")
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"  # a Triton model name (deeplab.triton_model, export-triton --name)
TRITON_URL_PATTERN = r"^[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}$"  # gRPC host:port, no scheme


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Section):
    id: str = Field(
        "bed1", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="Camera/bed id; part of every topic."
    )

    @field_validator("id")
    @classmethod
    def _not_a_topic(cls, v: str) -> str:
        # A schema-1 topic starts with the camera id: an id equal to a kind's topic would be ambiguous
        from .messages import TOPICS

        if v in TOPICS:
            raise ValueError(f"{v!r} is a message topic; choose another camera id")
        return v

    source: Literal["kinect", "mkv", "synthetic"] = Field("mkv", description="Where frames come from.")
    mkv_path: str | None = Field("recordings/sample.mkv", description="Recording replayed when source=mkv.")
    resolution: ColorResolution = Field("720P", description="Kinect colour resolution.")
    fps: Fps = Field(30, description="Kinect frame rate (frames per second).")
    color_format: ColorFormatName = Field(
        "MJPG", description="Kinect colour format (NV12 and YUY2 only at 720P)."
    )
    depth_mode: Literal["OFF", DepthSensingMode] = Field(
        "NFOV_UNBINNED", description="Kinect depth mode, or OFF for colour only."
    )
    align_depth_to_color: bool = Field(False, description="Publish depth reprojected onto the colour image.")
    device_serial: str | None = Field(None, description="Serial of the Kinect to open (None: the first one).")
    rate: Literal["realtime", "max"] = Field(
        "realtime", description="Replay pacing for mkv/synthetic sources."
    )
    loop: bool = Field(False, description="Replay the recording in a loop.")
    max_frames: int | None = Field(None, ge=1, description="Stop after this many frames (None: no limit).")
    synthetic_seed: int = Field(0, ge=0, description="Scene seed for source=synthetic.")
    synthetic_size: tuple[int, int] = Field((1280, 720), description="Width, height of synthetic frames.")
    reconnect_backoff_s: tuple[float, float] = Field(
        (0.5, 8.0), description="Kinect reconnect back-off: first and longest wait in seconds."
    )

    @model_validator(mode="after")
    def _mode_the_kinect_offers(self) -> CameraConfig:
        # One table (sources/k4a_formats.py) says which resolution × fps × format × depth modes exist
        problem = mode_problem(self.resolution, self.fps, self.color_format, self.depth_mode, "camera.")
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("synthetic_size")
    @classmethod
    def _synthetic_size(cls, v: tuple[int, int]) -> tuple[int, int]:
        # The synthetic scene needs at least 64×64 (sources.synthetic.MIN_SIZE)
        if not all(64 <= n <= 8192 for n in v):
            raise ValueError("width and height must be between 64 and 8192 pixels")
        return v

    @field_validator("reconnect_backoff_s")
    @classmethod
    def _backoff(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 3600:
            raise ValueError("must be [first, longest] with 0 < first <= longest <= 3600 seconds")
        return v

    @model_validator(mode="after")
    def _mkv_path_when_mkv(self) -> CameraConfig:
        if self.source == "mkv" and not self.mkv_path:
            raise ValueError("camera.mkv_path must name a recording when source is mkv")
        return self


class CurveConfig(_Section):
    enabled: bool = Field(False, description="Encrypt and authenticate every tcp:// endpoint with CURVE.")
    keys_dir: str = Field("keys", description="Folder made by 'kinect-occlusion keys generate'.")
    server_key: str = Field("server.key_secret", description="Proxy secret key file (in keys_dir).")
    client_key: str = Field(
        "client.key_secret",
        description="This process' secret key file: a publisher key for the pipeline, a subscriber key "
        "is enough for apps that only subscribe.",
    )
    authorized_dir: str = Field(
        "authorized",
        description="Allowed public keys (in keys_dir): publishers/ may publish and subscribe, "
        "subscribers/ may only subscribe.",
    )


class BusConfig(_Section):
    frontend: str = Field(
        "ipc:///tmp/kinect-occlusion/{camera}-in", description="Proxy XSUB endpoint: publishers connect here."
    )
    backend: str = Field(
        "ipc:///tmp/kinect-occlusion/{camera}-out",
        description="Proxy XPUB endpoint: subscribers connect here.",
    )
    bedside_status: str = Field(
        "ipc:///tmp/kinect-occlusion/{camera}-bedside",
        description="A bedside's own Status, bound on its host ('status --camera ID' reads it while the "
        "server is down).",
    )
    sndhwm: int = Field(4, ge=1, le=10000, description="Send high-water mark (messages) per socket.")
    rcvhwm: int = Field(4, ge=1, le=10000, description="Receive high-water mark (messages) per socket.")
    color_encoding: Literal["auto", "raw", "jpeg"] = Field(
        "auto",
        description="Colour frames: raw RGB or JPEG; auto = JPEG when published to a tcp:// frontend "
        "(a bedside to its server: ~20x fewer bytes to carry and encrypt per hop), raw on ipc://.",
    )
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of JPEG colour frames.")
    tcp_buffer_kb: int = Field(
        256,
        ge=0,
        le=65536,
        description="Kernel send/receive buffer (KiB) of the pipeline's tcp:// sockets (Linux doubles "
        "it); 0 = the OS default, which grows to MBs: frames waiting there are out of reach of "
        "latest-wins.",
    )
    curve: CurveConfig = CurveConfig()

    @field_validator("frontend", "backend", "bedside_status")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(ENDPOINT_SCHEMES):
            raise ValueError("endpoint must start with ipc://, tcp:// or inproc://")
        return v

    @field_validator("bedside_status")
    @classmethod
    def _local(cls, v: str) -> str:
        if not v.startswith("ipc://"):
            raise ValueError("must be an ipc:// endpoint (read on the bedside's own host)")
        return v

    def color_encoding_for(self, frontend: str) -> Literal["raw", "jpeg"]:
        """The encoding of colour frames published to ``frontend`` (``auto``: JPEG over tcp://)."""
        if self.color_encoding == "auto":
            return "jpeg" if frontend.startswith("tcp://") else "raw"
        return self.color_encoding

    def endpoints(self, camera: str) -> tuple[str, str]:
        """Return (frontend, backend) with ``{camera}`` substituted."""
        return self.frontend.format(camera=camera), self.backend.format(camera=camera)


# Smallest ROI side (px): the superpixel partition needs sam.superpixel.MIN_SIDE (16) after the
# default work_scale of 0.5, and a patient is hundreds of pixels wide anyway.
MIN_ROI_SIDE = 32


class RoiConfig(_Section):
    mode: Literal["full", "fixed"] = Field(
        "full", description="Whole frame, or a fixed box around the patient."
    )
    box: tuple[int, int, int, int] | None = Field(
        None, description=f"x, y, width, height when mode=fixed (width, height ≥ {MIN_ROI_SIDE})."
    )

    @model_validator(mode="after")
    def _box_when_fixed(self) -> RoiConfig:
        if self.mode != "fixed":
            return self
        if self.box is None or self.box[2] < MIN_ROI_SIDE or self.box[3] < MIN_ROI_SIDE:
            raise ValueError(
                f"roi.box must be [x, y, width, height] with width and height of at least "
                f"{MIN_ROI_SIDE} pixels when mode=fixed"
            )
        return self

    def resolve(self, width: int, height: int) -> Box:
        """ROI in pixels for a frame of the given size (``geometry.clip_roi``: ValueError when outside)."""
        return clip_roi(self.box if self.mode == "fixed" else None, width, height)


class DeepLabConfig(_Section):
    checkpoint: str | None = Field(
        "recordings/demo_model.pt",
        description="Our DeepLabV3+ checkpoint (made by 'kinect-occlusion train').",
    )
    backbone: Literal["resnet50", "resnet18", "mobilenet_v3_large"] | None = Field(
        None, description="Expected backbone; None accepts whatever the checkpoint holds."
    )
    allow_untrained: bool = Field(
        False, description="Run with random weights when the checkpoint is missing (tests/demos only)."
    )
    untrained_backbone: Literal["resnet50", "resnet18", "mobilenet_v3_large"] = Field(
        "mobilenet_v3_large", description="Backbone for allow_untrained when no checkpoint exists."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Inference device.")
    runtime: Literal["auto", "torch", "onnx", "triton"] = Field(
        "auto",
        description="auto: onnxruntime on CPU-only hosts, torch on CUDA; or force torch/onnx (CPU); "
        "triton: a Triton Inference Server runs the network (deeplab.triton_url).",
    )
    triton_url: str = Field(
        "127.0.0.1:8001",
        pattern=TRITON_URL_PATTERN,
        description="Triton gRPC endpoint host:port (runtime: triton).",
    )
    triton_model: str = Field(
        "deeplab",
        pattern=MODEL_NAME_PATTERN,
        description="Model name in Triton's repository ('kinect-occlusion export-triton --name').",
    )
    triton_timeout_ms: int = Field(
        1000, ge=1, le=60000, description="Per-frame Triton request deadline; past it a frame error."
    )
    half: bool = Field(
        False, description="fp16 on CUDA (ignored on CPU); measured slower at batch 1 on an H100."
    )
    channels_last: bool = Field(True, description="channels-last memory format.")
    compile: bool = Field(False, description="torch.compile the model (slow start-up).")
    threads: int = Field(0, ge=0, le=256, description="torch CPU threads (0: torch default).")
    onnx_cache: str | None = Field(
        "auto",
        description="Folder keeping the checkpoint's ONNX export (runtime onnx) so a start or restart "
        "skips torch; auto: $XDG_CACHE_HOME/kinect-occlusion/onnx (~/.cache/...); null: export each start.",
    )
    max_batch: int = Field(
        8, ge=1, le=64, description="Most frames (the newest of each camera) in one forward pass."
    )
    batch_deadline_ms: float = Field(
        20.0, ge=0, le=1000, description="Longest wait for other cameras' frames once one is waiting."
    )


class GuidedConfig(_Section):
    enabled: bool = Field(False, description="Prompt SAM where the coarse mask says it matters.")
    low: float = Field(0.2, ge=0, le=1, description="Uncertain band lower bound.")
    high: float = Field(0.8, ge=0, le=1, description="Uncertain band upper bound.")
    dilate_px: int = Field(15, ge=0, description="Grid points within this distance of a positive are kept.")
    skeleton_step_px: int = Field(12, ge=1, description="Spacing of points along thin structures.")
    max_points: int = Field(400, ge=1, description="Cap on prompts per frame.")


class SuperpixelConfig(_Section):
    method: Literal["seeds", "slic", "felzenszwalb"] = Field("seeds", description="Superpixel algorithm.")
    n_segments: int = Field(300, ge=2, le=100000, description="Target number of superpixels.")
    work_scale: float = Field(0.5, gt=0, le=1, description="Compute at this fraction of the frame size.")


class SamConfig(_Section):
    partitioner: Literal["auto", "sam", "superpixel"] = Field(
        "auto", description="auto: SAM when a checkpoint is configured, else superpixels."
    )
    checkpoint: str | None = Field(None, description="Local SAM checkpoint (e.g. sam_vit_b_01ec64.pth).")
    model_type: Literal["vit_b", "vit_l", "vit_h", "tiny"] = Field(
        "vit_b", description="SAM model of the checkpoint (tiny: build_tiny_sam's, tests and demos)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="SAM device.")
    points_per_side: int = Field(40, ge=1, le=128, description="AMG uniform grid size (paper: 40).")
    amg: Literal["fast", "reference"] = Field(
        "fast",
        description="fast: our device-resident generator (same masks as the reference); "
        "reference: segment-anything's SamAutomaticMaskGenerator.",
    )
    points_per_batch: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = Field(
        "auto",
        description="Prompts per decoder batch; auto: as many as GPU memory allows, on a CPU the "
        "reference's 64.",
    )
    pred_iou_thresh: float = Field(0.9, ge=0, le=1, description="AMG predicted-IoU filter (paper: 0.9).")
    stability_score_thresh: float = Field(0.85, ge=0, le=1, description="AMG stability filter (paper: 0.85).")
    min_mask_region_area: int = Field(5, ge=0, description="AMG small-region removal (paper: 5).")
    rate_hz: float = Field(0.0, ge=0, description="Partition refresh rate; 0 = as fast as possible.")
    skip_when_no_occlusion: bool = Field(
        True, description="Skip the partition when the coarse mask is empty."
    )
    occlusion_threshold: float = Field(
        0.5, gt=0, lt=1, description="Coarse probability counted as occlusion."
    )
    work_size: int | None = Field(
        None,
        ge=64,
        le=8192,
        description="Shrink the ROI crop to at most this long side before SAM (None: full).",
    )
    half: bool = Field(False, description="bf16 autocast for the SAM image encoder on CUDA.")
    sdpa: bool = Field(
        True, description="SAM attention through scaled_dot_product_attention (same output, faster)."
    )
    warp: bool = Field(
        False, description="Between refreshes, carry the last partition to each new frame by optical flow."
    )
    reuse_threshold: float = Field(
        0.0,
        ge=0,
        le=255,
        description="Skip a refresh when the mean grey difference is below this (0: never).",
    )
    guided: GuidedConfig = GuidedConfig()
    superpixel: SuperpixelConfig = SuperpixelConfig()
    # The image encoder on a Triton server (issue #12): prompts and masks stay in the worker
    encoder: Literal["local", "triton"] = Field(
        "local",
        description="local: the image encoder runs in the partition worker; triton: a Triton server "
        "runs it ('export-triton --sam-checkpoint'), the prompt decoder stays local.",
    )
    triton_url: str = Field(
        "127.0.0.1:8001", pattern=TRITON_URL_PATTERN, description="Triton gRPC host:port (encoder: triton)."
    )
    triton_model: str = Field(
        "sam_encoder",
        pattern=MODEL_NAME_PATTERN,
        description="Encoder model name in Triton's repository ('export-triton --sam-name').",
    )
    triton_timeout_ms: int = Field(
        5000, ge=1, le=600000, description="Per-image encoder request deadline; past it a frame error."
    )

    @model_validator(mode="after")
    def _triton_encoder_needs_sam(self) -> SamConfig:
        if self.encoder == "triton" and (self.partitioner == "superpixel" or not self.checkpoint):
            raise ValueError(
                "sam.encoder: triton needs sam.checkpoint and a SAM partitioner "
                "(the prompt decoder runs in the worker)"
            )
        return self

    # The mask decoder's transformer with fewer operations (issue #13, sam/factored.py)
    decoder_arithmetic: Literal["exact", "factored"] = Field(
        "exact",
        description="exact: the reference's decoder bit for bit; factored: its transformer "
        "re-associated (~2.3x fewer MACs per prompt, last bits differ; needs sam.amg: fast).",
    )

    @model_validator(mode="after")
    def _factored_needs_fast_amg(self) -> SamConfig:
        if self.decoder_arithmetic == "factored" and self.amg != "fast":
            raise ValueError("sam.decoder_arithmetic: factored needs sam.amg: fast")
        return self


class FuserConfig(_Section):
    max_partition_age_ms: float = Field(
        2000.0, gt=0, description="A partition older than this (vs the coarse frame) is not used."
    )
    wait_for_partition_ms: float = Field(
        0.0, ge=0, le=5000, description="Hold a coarse mask this long for the partition of its own frame."
    )
    output_encoding: Literal["raw", "packbits"] = Field("raw", description="Occlusion mask encoding.")
    depth_mask: bool = Field(
        False,
        description="Also publish the occlusion mask in the depth camera's pixels (mask.depth); needs "
        "raw depth with its calibration (a Kinect or a recording, align_depth_to_color false).",
    )


class RuntimeConfig(_Section):
    heartbeat_s: float = Field(1.0, gt=0, le=60, description="Status message period of every worker.")
    hang_timeout_s: float = Field(20.0, gt=0, description="A worker silent this long is restarted.")
    startup_grace_s: float = Field(120.0, gt=0, description="Time allowed to start (model loaded).")
    restart_backoff_s: tuple[float, float] = Field((0.5, 10.0), description="First and longest restart wait.")
    max_restarts: int = Field(5, ge=0, description="Give up after this many restarts of one worker …")
    restart_window_s: float = Field(300.0, gt=0, description="… within this many seconds.")
    shutdown_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Time for workers to stop before SIGKILL."
    )
    compute_timeout_s: float = Field(
        600.0,
        gt=0,
        description="A worker whose heartbeats say 'computing' this long is restarted "
        "(generous: a SAM partition on a CPU takes minutes).",
    )
    report_interval_s: float = Field(5.0, gt=0, description="Print per-stage rates every this many seconds.")
    # replay --every-frame: back-pressure instead of drops (docs: README "Deterministic replay")
    every_frame: bool = Field(
        False,
        description="Every frame through every stage: capture waits for credit, no stage drops or "
        "reuses, each frame fused with its own partition (replay --every-frame; not for a live camera).",
    )
    in_flight: int = Field(
        2, ge=1, le=16, description="every_frame: most frames captured but not yet fused (≤ bus HWMs)."
    )
    frame_timeout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="every_frame: a frame's whole trip, counted from capture: capture frees the credit "
        "of a frame with no mask after this; the fuser writes a frame whose partition has not come "
        "coarse-only (fallback) just before (min(1 s, a quarter of this) earlier).",
    )
    credit_on_save: bool = Field(
        False,
        description="every_frame: capture's credit comes back when replay --save-masks has written the "
        "frame's mask (mask.saved), not when the mask is published; set by replay --save-masks (from "
        "every_frame; a value in the file is replaced).",
    )


class MetricsConfig(_Section):
    prometheus_port: int | None = Field(None, ge=1, le=65535, description="Prometheus /metrics port (off).")
    prometheus_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds to.")


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    file: str | None = Field(None, description="Also log to this rotating file.")
    max_bytes: int = Field(10_000_000, ge=10_000, description="Rotate the log file at this size.")
    backups: int = Field(5, ge=0, le=100, description="Rotated log files kept.")

    @field_validator("file")
    @classmethod
    def _file_name(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or v.endswith(("/", "\\")) or "\0" in v):
            raise ValueError("must be a file name (not empty, not a folder ending in /)")
        return v


class ViewerConfig(_Section):
    enabled: bool = Field(False, description="Serve the live view in a browser from run/replay.")
    bind: str = Field("127.0.0.1", description="Address to listen on; anything but loopback needs a token.")
    port: int = Field(8088, ge=0, le=65535, description="HTTP port (0: any free port, printed at start).")
    token: str | None = Field(None, description="Required on every page and WebSocket when set.")
    max_fps: float = Field(10.0, gt=0, le=30, description="Pictures per second sent per camera.")
    max_width: int = Field(640, ge=64, le=3840, description="Pictures are downscaled to this width.")
    jpeg_quality: int = Field(70, ge=10, le=95, description="JPEG quality of the pictures.")

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ViewerConfig:
        from .viewer.security import bind_problem

        problem = bind_problem(self.bind, self.token)
        if problem:
            raise ValueError(problem)
        return self


def depth_mask_problem(cam: CameraConfig) -> str | None:
    """Why ``cam`` gives the fuser no depth frames in the depth camera's pixels (None: it does)."""
    if cam.depth_mode == "OFF":
        return "camera.depth_mode is OFF"
    if cam.source == "synthetic":
        return "the synthetic source renders depth in colour pixels only"
    if cam.align_depth_to_color:
        return "set camera.align_depth_to_color to false"
    return None


class Config(_Section):
    camera: CameraConfig = CameraConfig()
    cameras: tuple[CameraConfig, ...] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="A ward: every bed's camera (id, source, settings). Without it, 'camera' is the "
        "one camera.",
    )
    bus: BusConfig = BusConfig()
    roi: RoiConfig = RoiConfig()
    deeplab: DeepLabConfig = DeepLabConfig()
    sam: SamConfig = SamConfig()
    fuser: FuserConfig = FuserConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    viewer: ViewerConfig = ViewerConfig()

    @model_validator(mode="after")
    def _every_frame_needs_a_recording(self) -> Config:
        rt = self.runtime
        if not rt.every_frame:
            return self
        if any(c.source == "kinect" for c in self.camera_list()):
            raise ValueError("runtime.every_frame needs a recording or synthetic source, not a live Kinect")
        if self.ward:
            raise ValueError("runtime.every_frame replays one camera, not a ward")
        if rt.in_flight > min(self.bus.sndhwm, self.bus.rcvhwm):
            raise ValueError("runtime.in_flight must not exceed bus.sndhwm and bus.rcvhwm (no frame dropped)")
        return self

    @model_validator(mode="after")
    def _one_camera_list(self) -> Config:
        if self.cameras is None:
            return self
        if "camera" in self.model_fields_set:
            raise ValueError("give either 'camera' (one bed) or 'cameras' (a ward), not both")
        ids = [c.id for c in self.cameras]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"cameras: id {dup[0]!r} is used twice; each bed needs its own id")
        return self

    @model_validator(mode="after")
    def _depth_mask_needs_raw_depth(self) -> Config:
        # The depth-geometry mask maps through the depth camera's own frames and their calibration
        for cam in self.camera_list() if self.fuser.depth_mask else ():
            why = depth_mask_problem(cam)
            if why:
                raise ValueError(f"fuser.depth_mask needs raw depth from camera {cam.id!r}: {why}")
        return self

    def camera_list(self) -> tuple[CameraConfig, ...]:
        """Every camera this config describes (today's single ``camera`` section is a one-camera list)."""
        return self.cameras if self.cameras is not None else (self.camera,)

    @property
    def ward(self) -> bool:
        """Whether this is a ward config (a ``cameras`` list, even of one bed): its server reads every
        camera and names itself 'ward', so a bedside's Status is never taken for the server's."""
        return self.cameras is not None

    @property
    def bus_name(self) -> str:
        """What ``{camera}`` in bus endpoints and the supervisor's Status stand for: the camera, or 'ward'."""
        return "ward" if self.ward else self.camera_list()[0].id

    def for_camera(self, camera_id: str) -> Config:
        """This config for one camera of its list (a bedside); UserError when no camera has that id."""
        for cam in self.camera_list():
            if cam.id == camera_id:
                return self.model_copy(update={"camera": cam, "cameras": None})
        known = ", ".join(c.id for c in self.camera_list())
        raise UserError(f"--camera {camera_id!r}: no such camera in the config (cameras: {known})")


def format_errors(error: ValidationError) -> list[str]:
    """One line per validation error: ``field.path: message``."""
    lines = []
    for e in error.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"{path}: {e['msg'].removeprefix('Value error, ')}")
    return lines


MAX_CONFIG_BYTES = 1_000_000  # a config is a few kB; anything larger is not one


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, at most MAX_CONFIG_BYTES); UserError with one line otherwise."""
    try:
        # Non-blocking open, then only a regular file is read: a FIFO or a terminal would wait for ever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
                raise UserError(f"config {path}: {what} — name a .yaml file")
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UserError(f"config {path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UserError(f"config {path}: larger than {MAX_CONFIG_BYTES} bytes — not a config file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"config {path}: not a text file (byte {exc.start} is not UTF-8)") from None


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping; raise UserError with one line on a missing or malformed file."""
    text = _read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"config {path}:{where} is not valid YAML") from None
    except RecursionError:
        raise UserError(f"config {path}: nested too deeply to be a config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {path}: top level must be a mapping of sections")
    return data


def resolve_paths(cfg: Config, base: Path) -> Config:
    """Make relative file paths in ``cfg`` relative to ``base`` (the config file's folder)."""

    def fix(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        return str((base / p).resolve())

    return cfg.model_copy(
        update={
            "camera": cfg.camera.model_copy(update={"mkv_path": fix(cfg.camera.mkv_path)}),
            "cameras": None
            if cfg.cameras is None
            else tuple(c.model_copy(update={"mkv_path": fix(c.mkv_path)}) for c in cfg.cameras),
            "deeplab": cfg.deeplab.model_copy(update={"checkpoint": fix(cfg.deeplab.checkpoint)}),
            "sam": cfg.sam.model_copy(update={"checkpoint": fix(cfg.sam.checkpoint)}),
            "bus": cfg.bus.model_copy(
                update={"curve": cfg.bus.curve.model_copy(update={"keys_dir": fix(cfg.bus.curve.keys_dir)})}
            ),
        }
    )


def validate(data: dict, source: str = "config") -> Config:
    """Validate a mapping; raise UserError listing every error with its field path."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc)
        raise UserError(f"{source}: " + "; ".join(lines)) from None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load, merge ``overrides`` (nested dict) and validate; relative paths resolve against the file."""
    data: dict = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        data = read_yaml(p)
        base = p.resolve().parent
    for section, values in (overrides or {}).items():
        if not isinstance(data.get(section) or {}, dict):
            continue  # not a mapping: validation reports the section itself
        merged = dict(data.get(section) or {})
        merged.update(values)
        data[section] = merged
    return resolve_paths(validate(data, str(path or "config")), base)
