"""The ONNX export of a DeepLab checkpoint, kept on disk so a restarted worker skips torch.

An ``onnx`` worker (the CPU default) exported its checkpoint at every start: importing torch and
exporting cost ~3.5 s of each start or restart on 2 cores. The export is kept in ``deeplab.onnx_cache``
under a key naming the checkpoint's exact bytes (SHA-256), our version, torch's version and the
opset, beside the checkpoint's card (input size, normalisation, name). The next start reads the
checkpoint once to hash it and runs the cached graph without importing torch.

The folder is untrusted like any file: it must be ours and not writable by others (a planted graph
would be run), a card is checked like a checkpoint's values, and anything wrong — a missing or cut
file, a graph onnxruntime refuses — is a miss: the worker exports again and replaces the entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..bus import open_to_others
from .onnx_runtime import OPSET, ModelCard

log = logging.getLogger(__name__)

MAX_CARD_BYTES = 4096
MAX_GRAPH_BYTES = 1 << 30  # a checkpoint's graph (resnet50 ≈ 160 MB); more is not ours


def cache_key(checkpoint: Path) -> str:
    """The key of ``checkpoint``'s export: its bytes, our version, torch's, the opset (hex)."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    digest.update(f"|kinect-occlusion {__version__}|torch {torch_version}|opset {OPSET}".encode())
    return digest.hexdigest()


def private_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot hold graphs we would run (None: it is ours and closed to others)."""
    try:
        st = folder.stat()
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    return open_to_others(st)  # the rule of the bus's ipc folders


def lookup(folder: Path, key: str) -> tuple[bytes, ModelCard] | None:
    """The cached (graph, card) of ``key``, or None (a miss: nothing there, or not usable)."""
    graph, card = folder / f"{key}.onnx", folder / f"{key}.json"
    if not graph.is_file() or not card.is_file():
        return None
    why = private_folder(folder)
    if why is not None:
        log.warning("deeplab.onnx_cache: %s is %s: not used (the export is redone)", folder, why)
        return None
    try:
        if card.stat().st_size > MAX_CARD_BYTES or graph.stat().st_size > MAX_GRAPH_BYTES:
            raise ValueError("too large")
        parsed = ModelCard.from_json(json.loads(card.read_bytes()))
        return graph.read_bytes(), parsed
    except (OSError, ValueError) as exc:  # json's errors are ValueErrors
        log.warning("deeplab.onnx_cache: entry %s unusable (%s): exporting again", key[:12], exc)
        return None


def store(folder: Path, key: str, graph: bytes, card: ModelCard) -> None:
    """Keep ``graph`` and ``card`` under ``key`` (each file written whole, then renamed into place).

    A folder that cannot be made or written is one line: the worker runs on, exporting each start.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        why = private_folder(folder)
        if why is not None:
            log.warning("deeplab.onnx_cache: %s is %s: the export is not kept", folder, why)
            return
        _write(folder / f"{key}.onnx", graph)
        _write(folder / f"{key}.json", json.dumps(card.to_json()).encode())  # the card last: it commits
    except OSError as exc:
        log.warning("deeplab.onnx_cache: cannot keep the export in %s (%s)", folder, exc.strerror or exc)


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
