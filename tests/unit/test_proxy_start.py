"""A proxy whose start fails half-way releases what it had opened: the endpoints are free at once."""

from __future__ import annotations

import socket
import threading

import pytest
import zmq
from conftest import free_port

from kinect_occlusion.bus import Proxy, load_curve
from kinect_occlusion.commands.keys import generate
from kinect_occlusion.errors import UserError


def tcp() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def bind_freely(endpoint: str) -> None:
    """Bind the tcp ``endpoint`` with a plain OS socket (OSError while anything listens there;
    a ZeroMQ socket would not tell: it binds a port another ZeroMQ listener holds)."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    with socket.socket() as sock:
        sock.bind((host, int(port)))


@pytest.fixture
def held():
    """A real socket of another process-like context bound to a tcp endpoint."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    endpoint = tcp()
    sock.bind(endpoint)
    yield endpoint
    sock.close(linger=0)
    ctx.term()


def test_a_failed_backend_bind_frees_the_bound_frontend(held):
    front = tcp()
    with pytest.raises(UserError, match=held) as failure:
        Proxy(front, held).start()
    # While the caller still holds the error (its traceback keeps start()'s sockets alive, as in a
    # supervisor reporting it), the frontend must be free: OSError (in use) if XSUB stayed open
    bind_freely(front)
    assert failure.value is not None


def test_a_failed_backend_lock_frees_the_frontend_socket_and_lock(endpoints, ipc_dir):
    front, back = endpoints
    with Proxy(f"ipc://{ipc_dir}/other", back):  # another pipeline holds the backend
        with pytest.raises(UserError, match="another pipeline"):
            Proxy(front, back).start()
        with Proxy(front, f"ipc://{ipc_dir}/out2"):  # the frontend's lock was let go
            pass


def test_a_failed_start_with_curve_stops_its_authenticator(tmp_path, held):
    generate(tmp_path, ["client"])
    keys = load_curve(str(tmp_path), "server.key_secret", "client.key_secret", "authorized", server=True)
    before = set(threading.enumerate())
    front = tcp()
    with pytest.raises(UserError) as failure:
        Proxy(front, held, curve=keys).start()
    assert failure.value is not None
    assert set(threading.enumerate()) - before == set()
    bind_freely(front)


@pytest.mark.parametrize("side", [0, 1])
def test_any_failure_configuring_a_side_is_raised_at_once_not_a_hang(monkeypatch, side):
    # A socket made in _bind that failed before bind (e.g. a CURVE key of the wrong type: TypeError)
    # was never closed, so start()'s clean-up waited in the context's term() for ever: `run` hung
    import kinect_occlusion.bus as bus

    real, calls = bus._bound_kernel_buffer, []

    def breaks_on_the_chosen_side(*args) -> None:
        calls.append(args)
        if len(calls) == side + 1:
            raise TypeError("expected bytes, got: None")
        real(*args)

    monkeypatch.setattr(bus, "_bound_kernel_buffer", breaks_on_the_chosen_side)
    front, back, raised = tcp(), tcp(), []

    def start() -> None:
        try:
            Proxy(front, back).start()
        except TypeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "Proxy.start() hung after a failure configuring a socket"
    assert raised and "expected bytes" in str(raised[0])
    bind_freely(front)
    bind_freely(back)


@pytest.mark.parametrize("server, name", [(True, "server.key_secret"), (False, "client.key_secret")])
def test_a_secret_key_open_to_others_is_warned_about(tmp_path, caplog, server, name):
    generate(tmp_path, ["client"])
    args = (str(tmp_path), "server.key_secret", "client.key_secret", "authorized")
    with caplog.at_level("WARNING", logger="kinect_occlusion.bus"):
        load_curve(*args, server=server)  # as generated: 0600, nothing to say
        assert not caplog.records
        (tmp_path / name).chmod(0o644)
        load_curve(*args, server=server)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert name in caplog.text and "mode 644" in caplog.text and "chmod 600" in caplog.text
