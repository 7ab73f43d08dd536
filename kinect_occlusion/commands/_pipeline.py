"""What ``replay`` and ``run`` share: config loading, pre-flight checks, supervisor, overlay video."""

from __future__ import annotations

import argparse
import logging
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path

from ..config import Config, load_config
from ..errors import UserError

log = logging.getLogger(__name__)


def add_config_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=None,
        help="config file (default: ./config.yaml when present, else built-in defaults)",
    )


def config_from_args(args: argparse.Namespace, overrides: dict | None = None) -> Config:
    """Load the config named by ``--config`` (or ./config.yaml) with command-line overrides."""
    path = args.config
    if path is None and Path("config.yaml").is_file():
        path = "config.yaml"
    return load_config(path, overrides)


def preflight(cfg: Config) -> None:
    """Fail fast with one line on what would stop a worker at start-up."""
    dl = cfg.deeplab
    if dl.checkpoint and not Path(dl.checkpoint).is_file() and not dl.allow_untrained:
        raise UserError(
            f"deeplab.checkpoint: {dl.checkpoint} does not exist — train one with "
            "'kinect-occlusion train' (or 'make demo-model'), or set deeplab.allow_untrained: true"
        )
    if dl.checkpoint is None or not Path(dl.checkpoint).is_file():
        log.warning(
            "DeepLab model is UNTRAINED (random weights): the masks are meaningless — "
            "set deeplab.checkpoint to a trained model"
        )
    sam = cfg.sam
    if sam.partitioner == "sam" and (not sam.checkpoint or not Path(sam.checkpoint).is_file()):
        raise UserError(
            f"sam.checkpoint: {sam.checkpoint} does not exist (partitioner: sam needs a local "
            "SAM checkpoint, e.g. sam_vit_b_01ec64.pth); or set sam.partitioner: superpixel"
        )
    if cfg.camera.source == "kinect":
        from ..sources.kinect import import_pyk4a

        import_pyk4a()
    if cfg.camera.source == "mkv":
        from ..sources.mkv import probe_mkv

        probe_mkv(cfg.camera.mkv_path or "", count_frames=False)


def install_signals(stop: threading.Event) -> None:
    from ..runtime.worker import install_stop_handlers

    install_stop_handlers(stop)


def start_viewer(cfg: Config) -> BaseProcess | None:
    """The live view as its own low-priority process when ``viewer.enabled`` (else None)."""
    if not cfg.viewer.enabled:
        return None
    from ..bus import curve_keys
    from ..viewer.service import settings_from_config, start_viewer_process

    backend = cfg.bus.endpoints(cfg.camera.id)[1]
    keys = curve_keys(cfg.bus.curve, server=False)
    return start_viewer_process(backend, cfg.camera.id, settings_from_config(cfg.viewer), keys)


def run_pipeline(cfg: Config, save_video: str | None = None) -> int:
    """Run the supervised pipeline until end of file or SIGINT/SIGTERM; return the exit code."""
    from ..runtime.supervisor import Supervisor

    preflight(cfg)
    stop = threading.Event()
    install_signals(stop)
    recorder = None
    if save_video:
        from ..bus import curve_keys
        from ..runtime.recorder import OverlayRecorder

        keys = curve_keys(cfg.bus.curve, server=False)
        recorder = OverlayRecorder(
            save_video, cfg.bus.endpoints(cfg.camera.id)[1], cfg.camera.id, cfg.camera.fps, keys
        )
    sup = Supervisor(cfg, stop)
    viewer = start_viewer(cfg)
    if recorder is not None:
        recorder.start()
    try:
        code = sup.run()
    finally:
        if recorder is not None:
            recorder.stop()
        if viewer is not None:
            from ..viewer.service import stop_viewer_process

            stop_viewer_process(viewer)
    if recorder is not None:
        print(f"overlay video written: {save_video} ({recorder.written} frames)")
    return code
