"""The Azure Kinect SDK as a reference: its venv (``make sdk-env``) is called as a subprocess.

Skipped with a reason when the venv is missing — except in CI (``CI`` set), where ``make test``
creates it first, so a missing environment fails instead of passing silently.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "k4a"))


@pytest.fixture(scope="session")
def sdk():
    """The tools/k4a/sdk_client module, once the reference environment is known to be there."""
    import sdk_client

    try:
        sdk_client.sdk_python()
    except sdk_client.SdkUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must create it: `make test` depends on `make sdk-env`)")
        pytest.skip(str(exc))
    return sdk_client
