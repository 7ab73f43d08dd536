"""Process-lifecycle lies: key files and start-up faults that pass the earlier checks."""

from __future__ import annotations

import shutil

import pytest
from conftest import free_port
from harness import cli, write_config

from kinect_occlusion.commands.keys import generate


@pytest.mark.parametrize("which", ["server.key_secret", "client.key_secret"])
def test_public_key_where_a_secret_is_expected_is_one_line(tmp_path, ipc_dir, which):
    keys = tmp_path / "keys"
    generate(keys, ["client"])
    shutil.copy(keys / which.replace("_secret", ""), keys / which)  # a public key under the secret's name
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    cfg = write_config(
        tmp_path,
        ipc_dir,
        None,
        bus={"frontend": front, "backend": back, "curve": {"enabled": True, "keys_dir": str(keys)}},
    )
    done = cli("run", "--config", str(cfg), timeout=30)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "holds no secret key" in done.stderr and which in done.stderr
