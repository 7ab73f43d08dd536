"""What ``replay`` and ``run`` share: config loading, pre-flight checks, supervisor, overlay video."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path

from ..config import Config, load_config
from ..errors import UserError

log = logging.getLogger(__name__)

EXIT_VIDEO_FAILED = 1  # the pipeline ran, but the overlay video (or --save-masks) could not be written


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


def preflight(cfg: Config, role: str = "all") -> None:
    """Fail fast with one line on what would stop a worker of ``role`` at start-up."""
    from ._checks import runtime_problems

    problems = runtime_problems(cfg, role)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s): see validate-config)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    dl = cfg.deeplab
    untrained = dl.checkpoint is None or not Path(dl.checkpoint).is_file()
    if untrained and role != "bedside":  # a bedside runs no model
        log.warning(
            "DeepLab model is UNTRAINED (random weights): the masks are meaningless — "
            "set deeplab.checkpoint to a trained model"
        )
    if role != "server" and cfg.camera.source == "kinect":
        from ..sources.kinect import import_pyk4a

        import_pyk4a()


def install_signals(stop: threading.Event) -> None:
    from ..runtime.worker import install_stop_handlers

    install_stop_handlers(stop)


def start_viewer(cfg: Config, log_endpoint: str) -> BaseProcess | None:
    """The live view as its own low-priority process when ``viewer.enabled`` (else None); it logs to
    the supervisor's sink at ``log_endpoint`` like a worker."""
    if not cfg.viewer.enabled:
        return None
    from ..bus import curve_keys
    from ..viewer.service import settings_from_config, start_viewer_process

    backend = cfg.bus.endpoints(cfg.camera.id)[1]
    keys = curve_keys(cfg.bus.curve, server=False)
    settings = settings_from_config(cfg.viewer)
    return start_viewer_process(backend, cfg.camera.id, settings, keys, (log_endpoint, cfg.logging.level))


def mask_saver(cfg: Config, folder: str, overwrite: bool, on_error=None):
    """The ``--save-masks`` writer (its folder checked now: one line when unusable); ``on_error``:
    called when saving fails (the run's stop)."""
    from ..bus import curve_keys
    from ..runtime.mask_saver import MaskSaver, prepare_folder, provenance

    path = prepare_folder(folder, overwrite)
    keys = curve_keys(cfg.bus.curve, server=False)
    frontend, backend = cfg.bus.endpoints(cfg.camera.id)
    every_frame = cfg.runtime.every_frame  # then each written mask is capture's credit (mask.saved)
    ack = frontend if every_frame else None
    return MaskSaver(
        path, backend, cfg.camera.id, provenance(cfg), every_frame, keys, ack_endpoint=ack, on_error=on_error
    )


def credit_on_save(cfg: Config, saving: bool) -> Config:
    """``runtime.credit_on_save`` as the run needs it: on for an every-frame replay whose masks are
    saved (capture then waits until each is written), off otherwise (no one would acknowledge)."""
    on = saving and cfg.runtime.every_frame
    return cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"credit_on_save": on})})


def overlay_recorder(cfg: Config, save_video: str):
    """The ``--save-video`` writer (the file checked now: one line when unusable)."""
    from ..bus import curve_keys
    from ..runtime.recorder import OverlayRecorder
    from ._args import video_file

    video_file(save_video)
    keys = curve_keys(cfg.bus.curve, server=False)
    return OverlayRecorder(
        save_video, cfg.bus.endpoints(cfg.camera.id)[1], cfg.camera.id, cfg.camera.fps, keys
    )


def run_pipeline(
    cfg: Config,
    save_video: str | None = None,
    role: str = "all",
    save_masks: str | None = None,
    overwrite: bool = False,
) -> int:
    """Run the supervised pipeline (``role``'s stages) until end of file or SIGINT/SIGTERM."""
    from ..runtime.supervisor import Supervisor

    preflight(cfg, role)
    recorder = overlay_recorder(cfg, save_video) if save_video else None
    stop = threading.Event()
    saver = mask_saver(cfg, save_masks, overwrite, on_error=stop.set) if save_masks else None
    cfg = credit_on_save(cfg, saver is not None)
    outputs = [o for o in (recorder, saver) if o is not None]
    install_signals(stop)
    sup = Supervisor(cfg, stop, role=role)
    log_endpoint = sup.start_logging()
    viewer = None
    try:
        viewer = start_viewer(cfg, log_endpoint)
        for o in outputs:
            o.start()
        code = sup.run()
    finally:
        if saver is not None:
            saver.interrupted = stop.is_set()  # frames without a mask: stopped, not lost
        for o in outputs:
            o.stop()
        if viewer is not None:
            from ..viewer.service import stop_viewer_process

            stop_viewer_process(viewer)
        sup.stop_logging()
    if saver is not None:
        code = _report_masks(code, saver)
    if recorder is not None:
        code = _report_video(code, recorder, save_video)
    return code


def _report_video(code: int, recorder, save_video: str | None) -> int:
    """One line on the overlay video; the exit code (1 when it could not be written)."""
    if recorder.error:
        print(f"kinect-occlusion: error: {recorder.error}", file=sys.stderr)
        return code or EXIT_VIDEO_FAILED
    skipped = (
        f"; {recorder.skipped} masks skipped: their frame was not held or of another size"
        if recorder.skipped
        else ""
    )
    print(f"overlay video written: {save_video} ({recorder.written} frames{skipped})")
    return code


def _report_masks(code: int, saver) -> int:
    """One line on what ``--save-masks`` wrote; the exit code (1 when it could not write)."""
    if saver.error:
        print(f"kinect-occlusion: error: {saver.error}", file=sys.stderr)
        return code or EXIT_VIDEO_FAILED
    print(saver.summary())
    return code
