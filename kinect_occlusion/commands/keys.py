"""``kinect-occlusion keys generate DIR``: CURVE key pairs for an encrypted bus."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("keys", help="manage CURVE keys for tcp:// endpoints")
    p.add_argument("action", choices=["generate"], help="generate: server + client key pairs")
    p.add_argument("dir", help="folder for the keys (created owner-only)")
    p.add_argument("--clients", nargs="*", default=["client"], help="names of client key pairs to make")
    p.set_defaults(func=run)


def generate(base: Path, clients: list[str]) -> list[Path]:
    """Make ``server`` and each client key pair; authorise the clients' public keys."""
    import zmq.auth

    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    authorized = base / "authorized"
    authorized.mkdir(exist_ok=True)
    made = []
    for name in ["server", *clients]:
        public, secret = zmq.auth.create_certificates(str(base), name)
        os.chmod(secret, 0o600)
        made += [Path(public), Path(secret)]
        if name != "server":
            shutil.copy(public, authorized / Path(public).name)
    return made


def run(args: argparse.Namespace) -> int:
    if Path(args.dir).exists() and not Path(args.dir).is_dir():
        raise UserError(f"keys generate {args.dir}: is a file, not a folder — name a folder for the keys")
    try:
        made = generate(Path(args.dir), args.clients)
    except OSError as exc:
        raise UserError(f"keys generate {args.dir}: cannot write the keys ({exc.strerror or exc})") from None
    for p in made:
        print(p)
    print(
        f"authorised clients: {Path(args.dir) / 'authorized'} — copy server.key (public) and a client "
        "key pair to each subscriber host; never copy server.key_secret"
    )
    return 0
