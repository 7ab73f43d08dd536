"""Shared fixtures: short ipc:// endpoints, free tcp ports, a config for pipeline tests."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session", autouse=True)
def onnx_cache_of_this_run():
    """deeplab.onnx_cache ``auto`` in one folder for the whole run, not the user's ~/.cache: the
    first pipeline exports the test checkpoint, the others (and their restarts) reuse it, as a
    bedside's restarts do. Tests of the cache itself name their own folder."""
    folder = tempfile.mkdtemp(prefix="ko-cache-")
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = folder
    yield Path(folder)
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ipc_dir():
    """A short folder for ipc:// sockets (Unix socket paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="ko-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def endpoints(ipc_dir):
    """(frontend, backend) ipc endpoints unique to the test."""
    return f"ipc://{ipc_dir}/in", f"ipc://{ipc_dir}/out"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
