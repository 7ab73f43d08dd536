"""``kinect-occlusion`` command line: one sub-command per module in ``kinect_occlusion.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__
from .errors import UserError

INTERNAL_ERROR = 70  # EX_SOFTWARE: an unexpected exception (a bug), never bad input

COMMANDS = (
    "validate_config",
    "replay",
    "run",
    "subscribe",
    "status",
    "view",
    "keys",
    "info",
    "export",
    "record",
    "train",
    "evaluate",
    "augment_preview",
    "export_onnx",
    "export_triton",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="kinect-occlusion",
        description="Live segmentation of occlusions over ICU patients from an Azure Kinect (SOSS: "
        "DeepLabV3+ coarse masks soft-voted over Segment Anything / superpixel partitions).",
        epilog="Run 'kinect-occlusion COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"kinect_occlusion.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; a UserError becomes one line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"kinect-occlusion {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Last resort: a bug, not bad input — one line and its own exit code
        if os.environ.get("KINECT_OCCLUSION_TRACEBACK"):
            raise
        detail = " ".join(str(exc).split())[:300]
        print(
            f"kinect-occlusion {args.command}: internal error: {type(exc).__name__}: {detail} "
            "(a bug: please report it; KINECT_OCCLUSION_TRACEBACK=1 shows where)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
