"""The viewer's listening socket against clients that hold connections: bounded and timed out.

Real TCP connections to a real viewer (aiohttp server, hub on a real bus). Before, a request never
finished was held for ever (aiohttp's keep-alive default is an hour) and connections were not
limited: 300 half-sent requests held 300 sockets, and past the process's file limit nobody could
connect.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import threading
from collections.abc import Iterator

from conftest import wait_for

from kinect_occlusion.bus import Proxy
from kinect_occlusion.viewer.hub import ViewerHub, ViewOptions
from kinect_occlusion.viewer.server import ViewerServer, serve

HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # headers never finished


@contextlib.contextmanager
def running_viewer(endpoints: tuple[str, str], **limits) -> Iterator[tuple[ViewerServer, int]]:
    """A viewer served on a free loopback port (its server and port) until the block ends."""
    with Proxy(*endpoints, hwm=64):
        hub = ViewerHub([endpoints[1]], "*", ViewOptions(), idle_close_s=0.2)
        hub.start()
        server, stop, ports = ViewerServer(hub, None, **limits), threading.Event(), []
        thread = threading.Thread(
            target=lambda: asyncio.run(serve(server, "127.0.0.1", 0, stop, ports.append))
        )
        thread.start()
        try:
            assert wait_for(lambda: ports), "viewer did not start"
            yield server, ports[0]
        finally:
            stop.set()
            thread.join(10)
            hub.stop()


def half_request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(HALF_REQUEST)
    sock.setblocking(False)  # polled by closed_by_server
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed or reset ``sock`` (it never sends these anything else)."""
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def get_page(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return sock.recv(64)


def open_page_socket(port: int) -> socket.socket:
    """A WebSocket for every camera, handshake done (its frames are left to read)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws?camera=* HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_a_request_never_finished_is_closed_after_the_request_timeout(endpoints):
    with running_viewer(endpoints, request_timeout_s=1.0) as (server, port):
        page = open_page_socket(port)
        held = [half_request(port) for _ in range(5)]
        assert wait_for(lambda: server.connections == 6)
        assert wait_for(lambda: all(closed_by_server(s) for s in held), timeout=6)
        assert server.connections == 1 and get_page(port).startswith(b"HTTP/1.1 200")
        # A page streaming for longer than the timeout is not cut
        page.settimeout(3)
        page.recv(65536)
        assert page.recv(65536) and server.connections == 1
        for sock in [page, *held]:
            sock.close()


def test_connections_past_the_limit_are_dropped_at_once_and_an_open_page_keeps_streaming(endpoints):
    with running_viewer(endpoints, max_connections=8, request_timeout_s=60.0) as (server, port):
        page = open_page_socket(port)
        held = []
        for i in range(30):  # one at a time, each seen by the server before the next
            held.append(half_request(port))
            assert wait_for(lambda n=i + 2: server.connections + server.dropped == n)
        assert server.connections == 8 and server.dropped == 23
        assert wait_for(lambda: sum(closed_by_server(s) for s in held) == 23, timeout=3)
        assert not any(closed_by_server(s) for s in held[:7])  # within the limit: still waited for
        page.settimeout(3)
        page.recv(65536)  # what was queued
        assert page.recv(65536), "the open page stopped receiving its status messages"
        for sock in [page, *held]:
            sock.close()
