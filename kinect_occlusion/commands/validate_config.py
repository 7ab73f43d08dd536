"""``kinect-occlusion validate-config [PATH]``: OK, or every error with its field path."""

from __future__ import annotations

import argparse
import sys

from ..config import format_errors, read_yaml
from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("validate-config", help="check a config file and list every error")
    p.add_argument("path", nargs="?", default="config.yaml", help="config file (default: config.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..config import Config

    data = read_yaml(__import__("pathlib").Path(args.path))
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        for line in format_errors(exc):
            print(f"{args.path}: {line}", file=sys.stderr)
        raise UserError(f"{args.path}: {exc.error_count()} error(s)", exit_code=1) from None
    print(f"{args.path}: OK")
    return 0
