"""``kinect-occlusion keys generate DIR``: CURVE key pairs for an encrypted bus, with roles.

Publisher keys (the pipeline's workers, bedside captures) may publish and subscribe; subscriber
keys (monitoring apps) may only subscribe. Their public keys go to ``DIR/authorized/publishers/``
and ``DIR/authorized/subscribers/``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

from ..errors import UserError

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def register(sub) -> None:
    p = sub.add_parser("keys", help="manage CURVE keys for tcp:// endpoints")
    p.add_argument("action", choices=["generate"], help="generate: server + client key pairs")
    p.add_argument("dir", help="folder for the keys (created owner-only)")
    p.add_argument(
        "--publishers",
        nargs="*",
        default=None,
        metavar="NAME",
        help="key pairs that may publish and subscribe: the pipeline's own 'client', bedside captures "
        "(default: client)",
    )
    p.add_argument(
        "--subscribers",
        nargs="*",
        default=[],
        metavar="NAME",
        help="key pairs that may only subscribe (apps)",
    )
    p.add_argument("--clients", nargs="*", default=None, metavar="NAME", help="old name of --publishers")
    p.set_defaults(func=run)


def _check_names(publishers: list[str], subscribers: list[str]) -> None:
    names = [*publishers, *subscribers]
    for name in names:
        if not NAME_RE.fullmatch(name) or name == "server":
            raise UserError(f"keys: bad key name {name!r} (letters, digits, _ and -; not 'server')")
    if len(set(names)) != len(names):
        raise UserError("keys: a name is given twice (each key pair has exactly one role)")


def generate(base: Path, publishers: list[str], subscribers: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Make ``server`` and each client key pair; authorise each public key for its role."""
    import zmq.auth

    from ..bus import ROLE_PUBLISHERS, ROLE_SUBSCRIBERS

    _check_names(list(publishers), list(subscribers))
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    roles = {ROLE_PUBLISHERS: list(publishers), ROLE_SUBSCRIBERS: list(subscribers)}
    made = []
    for role, names in [("", ["server"]), *roles.items()]:
        folder = base / "authorized" / role
        if role:
            folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            public, secret = zmq.auth.create_certificates(str(base), name)
            os.chmod(secret, 0o600)
            made += [Path(public), Path(secret)]
            if role:
                shutil.copy(public, folder / Path(public).name)
    return made


def run(args: argparse.Namespace) -> int:
    if args.publishers is not None and args.clients is not None:
        raise UserError("keys: give --publishers or its old name --clients, not both")
    publishers = args.publishers if args.publishers is not None else args.clients
    publishers = ["client"] if publishers is None else publishers
    base = Path(args.dir)
    if base.exists() and not base.is_dir():
        raise UserError(f"keys generate {args.dir}: is a file, not a folder — name a folder for the keys")
    try:
        made = generate(base, publishers, args.subscribers)
    except OSError as exc:
        raise UserError(f"keys generate {args.dir}: cannot write the keys ({exc.strerror or exc})") from None
    for p in made:
        print(p)
    print(
        f"publishers (publish + subscribe): {', '.join(publishers) or '-'}; "
        f"subscribers (subscribe only): {', '.join(args.subscribers) or '-'} — in {base / 'authorized'}. "
        "Copy server.key (public) and one client key pair to each remote host; never copy server.key_secret"
    )
    return 0
