"""Can a validated config run here? File checks kept apart from the pure pydantic validation.

Each check returns one line per problem (naming the config key and what to fix); nothing raises.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config, LoggingConfig
from ..errors import UserError


def runtime_problems(cfg: Config, role: str = "all") -> list[str]:
    """Everything that would stop ``run``/``replay`` in ``role`` with this (already validated) config."""
    return [
        *(_source_problems(cfg) if role != "server" else []),
        *(_checkpoint_problems(cfg) if role != "bedside" else []),
        *_curve_problems(cfg),
        *_logging_problems(cfg.logging),
    ]


def _source_problems(cfg: Config) -> list[str]:
    """camera.source mkv: the recording exists and opens as an Azure Kinect recording."""
    if cfg.camera.source != "mkv":
        return []
    from ..sources.mkv import probe_mkv

    try:
        info = probe_mkv(cfg.camera.mkv_path or "", count_frames=False)
    except UserError as exc:
        return [f"camera.mkv_path: {exc}"]
    if not any(t.name == "COLOR" for t in info.tracks):  # the models segment colour images only
        return [
            f"camera.mkv_path: {info.path}: no COLOR track (recorded with the colour camera off): "
            "nothing to segment — replay a recording with colour"
        ]
    return []


def _checkpoint_problems(cfg: Config) -> list[str]:
    """deeplab.checkpoint exists unless allow_untrained; sam.checkpoint exists when set or needed."""
    problems = []
    dl = cfg.deeplab
    if dl.checkpoint and not Path(dl.checkpoint).is_file() and not dl.allow_untrained:
        problems.append(
            f"deeplab.checkpoint: {dl.checkpoint} does not exist — train one with "
            "'kinect-occlusion train' (or 'make demo-model'), or set deeplab.allow_untrained: true"
        )
    if dl.checkpoint is None and not dl.allow_untrained:
        problems.append(
            "deeplab.checkpoint: not set — name a trained model or set deeplab.allow_untrained: true"
        )
    sam = cfg.sam
    if sam.checkpoint and not Path(sam.checkpoint).is_file():
        problems.append(f"sam.checkpoint: {sam.checkpoint} does not exist (a local SAM .pth file)")
    elif sam.partitioner == "sam" and not sam.checkpoint:
        problems.append(
            "sam.checkpoint: not set, but partitioner: sam needs a local SAM checkpoint "
            "(e.g. sam_vit_b_01ec64.pth); or set sam.partitioner: superpixel"
        )
    return problems


def _curve_problems(cfg: Config) -> list[str]:
    """bus.curve enabled: the key files the proxy (server) and the workers (client) load exist."""
    if not cfg.bus.curve.enabled:
        return []
    from ..bus import curve_keys

    for server in (True, False):
        try:
            curve_keys(cfg.bus.curve, server=server)
        except (UserError, OSError, ValueError) as exc:
            # One line is enough: the same missing folder fails both roles
            return [str(exc) if str(exc).startswith("bus.curve") else f"bus.curve: {exc}"]
    return []


def _logging_problems(log_cfg: LoggingConfig) -> list[str]:
    """logging.file: not a folder, in an existing writable folder, writable when it exists."""
    if log_cfg.file is None:
        return []
    path = Path(log_cfg.file)
    folder = path.parent
    if path.is_dir():
        return [f"logging.file: {path} is a folder — name a file in it (e.g. {path / 'pipeline.log'})"]
    if not folder.is_dir():
        return [f"logging.file: folder {folder} does not exist — create it or log elsewhere"]
    from ._args import write_error

    why = write_error(path)
    return [] if why is None else [f"logging.file: {path} is not writable ({why})"]
