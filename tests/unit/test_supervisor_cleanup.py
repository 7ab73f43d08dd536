"""The supervisor's per-run log sink folder is removed on every path, a start that fails included."""

from __future__ import annotations

import logging
import tempfile
import threading

import pytest
import zmq

from kinect_occlusion.bus import Proxy
from kinect_occlusion.config import Config
from kinect_occlusion.errors import UserError
from kinect_occlusion.runtime import logs
from kinect_occlusion.runtime.supervisor import Supervisor


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """tempfile's folder for this test only (where the sink makes its ``ko-logs-*`` folder); the
    root logger as it was afterwards (the supervisor configures it)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield tmp_path
    root.handlers[:] = handlers
    root.setLevel(level)


def sink_folders(root) -> list:
    return sorted(root.glob("ko-logs-*"))


def test_run_that_fails_at_its_bind_leaves_no_log_folder(temp_root, endpoints):
    front, back = endpoints
    cfg = Config(bus={"frontend": front, "backend": back})
    with Proxy(front, back):  # another pipeline holds the endpoints: the bind fails
        sup = Supervisor(cfg, threading.Event())
        with pytest.raises(UserError, match="in use|another pipeline|already"):
            sup.run()
    assert sup.log_sink is None
    assert sink_folders(temp_root) == []


def test_a_sink_started_by_the_caller_survives_a_failed_run_and_goes_with_stop_logging(temp_root, endpoints):
    front, back = endpoints
    cfg = Config(bus={"frontend": front, "backend": back})
    sup = Supervisor(cfg, threading.Event())
    sup.start_logging()  # as run_pipeline does (the viewer logs there too)
    assert len(sink_folders(temp_root)) == 1
    with Proxy(front, back), pytest.raises(UserError):
        sup.run()
    assert len(sink_folders(temp_root)) == 1  # still the caller's
    sup.stop_logging()
    assert sink_folders(temp_root) == []


def test_a_sink_whose_bind_fails_removes_its_folder(temp_root, monkeypatch):
    def refuse(self, endpoint):
        raise zmq.ZMQError(zmq.EADDRINUSE)

    monkeypatch.setattr(zmq.Socket, "bind", refuse)
    with pytest.raises(zmq.ZMQError):
        logs.LogSink([])
    assert sink_folders(temp_root) == []


def test_the_proxy_is_gone_before_this_process_own_bus_sockets_close(endpoints, monkeypatch):
    # libzmq 4.3.5 aborts the process (session_base.cpp:233) when a peer leaves while the proxy's
    # session toward it is half-way through a multipart message and already closing: the supervisor
    # closed its own subscriber just before its proxy, and a `run` stopped under traffic died of
    # SIGABRT (CI, exit -6). tools/zmq_close_race.py shows the race; this pins the order.
    from contextlib import ExitStack

    from kinect_occlusion import bus

    events: list[str] = []
    for cls, name in ((bus.Proxy, "stop"), (bus.Subscriber, "close"), (bus.Publisher, "close")):
        real = getattr(cls, name)

        def recording(self, _real=real, _what=f"{cls.__name__}.{name}"):
            _real(self)
            events.append(_what)

        monkeypatch.setattr(cls, name, recording)
    front, back = endpoints
    sup = Supervisor(Config(bus={"frontend": front, "backend": back}), threading.Event())
    with ExitStack() as closing:
        pub, sub = sup._open_bus(closing)
        assert isinstance(pub, bus.Publisher) and isinstance(sub, bus.Subscriber)
    assert events[0] == "Proxy.stop"  # returns once every session of the proxy is gone
    assert sorted(events[1:]) == ["Proxy.stop", "Publisher.close", "Subscriber.close"]  # 2nd stop: no-op


def test_a_bedside_opens_no_proxy_of_its_own(endpoints, monkeypatch):
    from contextlib import ExitStack

    from kinect_occlusion import bus

    def refuse(self):
        raise AssertionError("a bedside started a proxy")

    monkeypatch.setattr(bus.Proxy, "start", refuse)
    front, back = endpoints
    sup = Supervisor(Config(bus={"frontend": front, "backend": back}), threading.Event(), role="bedside")
    with ExitStack() as closing:
        pub, sub = sup._open_bus(closing)
    assert pub.sock.closed and sub.sock.closed
