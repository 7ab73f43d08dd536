"""An ipc:// folder others can write into is refused with one line (never used, never chmod-ed)."""

from __future__ import annotations

import os

import pytest

from kinect_occlusion.bus import Proxy
from kinect_occlusion.errors import UserError


def refused(ipc_dir, match: str) -> str:
    """Start a proxy on ``ipc_dir``; it must refuse with UserError matching ``match``."""
    proxy = Proxy(f"ipc://{ipc_dir}/in", f"ipc://{ipc_dir}/out")
    try:
        with pytest.raises(UserError, match=match) as info:
            proxy.start()
    finally:
        proxy.stop()
    return str(info.value)


def test_world_writable_ipc_folder_is_refused(ipc_dir):
    os.chmod(ipc_dir, 0o777)
    message = refused(ipc_dir, r"group/world-writable \(mode 0777\)")
    assert "\n" not in message and str(ipc_dir) in message
    assert os.listdir(ipc_dir) == []  # nothing bound, nothing locked
    assert os.stat(ipc_dir).st_mode & 0o777 == 0o777  # and the mode left as the owner set it


def test_group_writable_or_foreign_ipc_folder_is_refused_private_one_accepted(ipc_dir):
    os.chmod(ipc_dir, 0o770)
    refused(ipc_dir, r"mode 0770")
    os.chmod(ipc_dir, 0o700)
    if os.geteuid() == 0:  # only root can give the folder away
        os.chown(ipc_dir, 65534, 65534)
        refused(ipc_dir, r"owned by another user \(uid 65534\)")
        os.chown(ipc_dir, 0, 0)
    with Proxy(f"ipc://{ipc_dir}/in", f"ipc://{ipc_dir}/out"):
        assert os.path.exists(f"{ipc_dir}/in")
    fresh = ipc_dir / "new" / "sub"  # a folder we create is owner-only
    with Proxy(f"ipc://{fresh}/in", f"ipc://{fresh}/out"):
        assert os.stat(fresh).st_mode & 0o777 == 0o700
