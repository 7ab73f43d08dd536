"""Proxy.lost_endpoints: an ipc:// socket file removed or replaced under a running proxy is reported."""

from __future__ import annotations

import os

from kinect_occlusion.bus import Proxy


def test_a_removed_or_replaced_socket_file_is_lost(ipc_dir):
    frontend, backend = f"ipc://{ipc_dir}/in", f"ipc://{ipc_dir}/out"
    with Proxy(frontend, backend, hwm=8) as proxy:
        assert proxy.lost_endpoints() == []
        os.unlink(ipc_dir / "in")
        assert proxy.lost_endpoints() == [f"{ipc_dir}/in"]
        os.unlink(ipc_dir / "out")
        (ipc_dir / "out").write_bytes(b"")  # another file under the same name
        assert proxy.lost_endpoints() == [f"{ipc_dir}/in", f"{ipc_dir}/out"]


def test_tcp_endpoints_have_no_file_to_lose():
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", hwm=8) as proxy:
        assert proxy.lost_endpoints() == []
