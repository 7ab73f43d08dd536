"""``kinect-occlusion keys generate DIR``: CURVE key pairs for an encrypted bus."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path


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
    made = generate(Path(args.dir), args.clients)
    for p in made:
        print(p)
    print(
        f"authorised clients: {Path(args.dir) / 'authorized'} — copy server.key (public) and a client "
        "key pair to each subscriber host; never copy server.key_secret"
    )
    return 0
