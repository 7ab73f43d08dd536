"""``kinect-occlusion validate-config [PATH]``: OK, or every error with its field path.

Two stages: the pure schema validation (pydantic), then whether the config can run here
(recording, checkpoints, CURVE keys, log file — ``_checks.runtime_problems``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import format_errors, read_yaml, resolve_paths
from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("validate-config", help="check a config file (schema and files) and list every error")
    p.add_argument("path", nargs="?", default="config.yaml", help="config file (default: config.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..config import Config
    from ._checks import runtime_problems

    path = Path(args.path)
    data = read_yaml(path)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        for line in format_errors(exc):
            print(f"{args.path}: {line}", file=sys.stderr)
        raise UserError(f"{args.path}: {exc.error_count()} error(s)") from None
    problems = runtime_problems(resolve_paths(cfg, path.resolve().parent))
    for line in problems:
        print(f"{args.path}: {line}", file=sys.stderr)
    if problems:
        raise UserError(f"{args.path}: valid, but cannot run: {len(problems)} problem(s)")
    print(f"{args.path}: OK")
    return 0
