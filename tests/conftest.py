"""Shared fixtures: short ipc:// endpoints, free tcp ports, a config for pipeline tests."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


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
