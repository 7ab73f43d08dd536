"""Bus over real ZeroMQ sockets: proxy, ordering, latest-wins, garbage, CURVE, ipc permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest
import zmq
from conftest import ROOT, free_port, wait_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher, Subscriber, load_curve
from kinect_occlusion.commands.keys import generate


def color(i: int, shape=(48, 64, 3)) -> m.ColorFrame:
    img = np.full(shape, i % 256, np.uint8)
    return m.ColorFrame(camera="bed1", frame_id=i, ts_us=i * 33_333, image=img)


def sync(pub: Publisher, sub: Subscriber, timeout: float = 5.0) -> None:
    """Publish probes until the subscription has reached the publisher (slow-joiner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(color(0))
        if sub.recv(50) is not None:
            while sub.recv(50) is not None:
                pass
            return
    raise AssertionError("subscription never reached the publisher")


@contextmanager
def color_bus(endpoints, hwm: int):
    """Proxy + publisher + a bed1 colour subscriber, all with ``hwm``, subscription in place."""
    front, back = endpoints
    with (
        Proxy(front, back, hwm=hwm),
        Publisher(front, hwm) as pub,
        Subscriber(back, "bed1", [m.TOPIC_COLOR], rcvhwm=hwm) as sub,
    ):
        sync(pub, sub)
        yield pub, sub


def test_messages_flow_in_order_through_the_proxy(endpoints):
    with color_bus(endpoints, hwm=1000) as (pub, sub):
        for i in range(100):
            pub.publish(color(i))
        got = [sub.recv(1000) for _ in range(100)]
    assert [g.frame_id for g in got] == list(range(100))
    assert all(int(g.image[0, 0, 0]) == i % 256 for i, g in enumerate(got))


def test_other_cameras_and_topics_are_filtered(endpoints):
    with color_bus(endpoints, hwm=100) as (pub, sub):
        other = color(5)
        other.camera = "bed2"
        pub.publish(other)
        pub.publish(m.Status(camera="bed1", frame_id=0, ts_us=0, worker="x", pid=1, state="s"))
        pub.publish(color(6))
        got = sub.recv(1000)
        assert got.frame_id == 6 and got.camera == "bed1"


def test_latest_wins_drains_to_the_newest_and_counts_drops(endpoints):
    with color_bus(endpoints, hwm=50) as (pub, sub):
        for i in range(30):
            pub.publish(color(i))
        time.sleep(0.3)
        newest = sub.recv_latest(1000)
    assert newest[m.TOPIC_COLOR].frame_id == 29
    assert sub.stats.stale >= 20


def test_garbage_is_counted_and_dropped(endpoints):
    front = endpoints[0]
    with color_bus(endpoints, hwm=100) as (pub, sub):
        raw = zmq.Context.instance().socket(zmq.PUB)
        raw.connect(front)
        good = [bytes(f) for f in m.encode(color(1))]
        # wait until the raw socket's subscriptions have arrived (a valid message gets through)
        assert wait_for(lambda: raw.send_multipart(good) or sub.recv(50), timeout=5) is not None
        while sub.recv(100) is not None:
            pass
        rng = np.random.default_rng(0)
        for _ in range(20):
            raw.send_multipart([b"frame.color/bed1/", rng.bytes(int(rng.integers(0, 64)))])
        raw.send_multipart([good[0], good[1], good[2][:-1]])  # lying shape
        raw.send_multipart([good[0], good[1], good[2], b"extra"])
        raw.close(linger=2000)
        pub.publish(color(7))
        got, deadline = None, time.monotonic() + 5
        while time.monotonic() < deadline and (got is None or sub.stats.invalid < 22):
            got = sub.recv(100) or got
        assert got is not None and got.frame_id == 7
        assert sub.stats.invalid == 22


def test_ipc_sockets_are_owner_only(endpoints):
    front, back = endpoints
    with Proxy(front, back):
        for ep in endpoints:
            mode = stat.S_IMODE(os.stat(ep[len("ipc://") :]).st_mode)
            assert mode == 0o600


def test_curve_rejects_unauthorised_subscribers(tmp_path):
    keys = tmp_path / "keys"
    generate(keys, ["client"])
    intruder = tmp_path / "intruder"
    generate(intruder, ["client"])  # a valid key pair, but not in keys/authorized
    port1, port2 = free_port(), free_port()
    front, back = f"tcp://127.0.0.1:{port1}", f"tcp://127.0.0.1:{port2}"
    server = load_curve(str(keys), "server.key_secret", "client.key_secret", "authorized", server=True)
    client = load_curve(str(keys), "server.key_secret", "client.key_secret", "authorized", server=False)
    bad = load_curve(str(intruder), "server.key_secret", "client.key_secret", "authorized", server=False)
    bad = type(bad)(client.server_public, None, bad.client_public, bad.client_secret)
    with (
        Proxy(front, back, hwm=100, curve=server),
        Publisher(front, 100, client) as pub,
        Subscriber(back, "bed1", [m.TOPIC_COLOR], 100, bad) as spy,
        Subscriber(back, "bed1", [m.TOPIC_COLOR], 100, client) as sub,
    ):
        sync(pub, sub)
        for i in range(20):
            pub.publish(color(i))
        assert wait_for(lambda: sub.recv(100), timeout=5) is not None
        assert spy.recv(1000) is None and spy.stats.received == 0


def test_late_publisher_learns_every_subscription_despite_a_small_hwm(endpoints):
    """More subscriptions than the HWM must all reach a publisher that connects later."""
    front, back = endpoints
    topics = [m.TOPIC_COLOR, m.TOPIC_DEPTH, m.TOPIC_COARSE, m.TOPIC_PARTITION, m.TOPIC_OCCLUSION]
    with Proxy(front, back, hwm=1):
        subs = [Subscriber(back, f"bed{i}", topics, rcvhwm=1) for i in range(4)]
        status = Subscriber(back, "bed1", [m.TOPIC_STATUS], rcvhwm=10)
        time.sleep(0.5)  # all 21 subscriptions are at the proxy before the publisher exists
        with Publisher(front, 10) as pub:
            got = wait_for(
                lambda: (
                    pub.publish(m.Status(camera="bed1", frame_id=0, ts_us=0, worker="w", pid=1, state="s"))
                    and status.recv(100)
                ),
                timeout=5,
            )
        for s in [*subs, status]:
            s.close()
    assert got is not None and got.worker == "w"


def test_a_second_proxy_on_the_same_ipc_endpoint_is_refused(endpoints):
    import pytest

    from kinect_occlusion.errors import UserError

    with Proxy(*endpoints):
        with pytest.raises(UserError, match="another pipeline"):
            Proxy(*endpoints).start()
    with Proxy(*endpoints):  # released on stop
        pass


def test_client_every_message_and_latest_only_modes(endpoints):
    from kinect_occlusion.client import OcclusionSubscriber

    front, back = endpoints
    mask = np.zeros((12, 16), np.uint8)

    def occ(i: int) -> m.OcclusionMask:
        return m.OcclusionMask(camera="bed1", frame_id=i, ts_us=i, mask=mask)

    with (
        Proxy(front, back, hwm=100),
        Publisher(front, 100) as pub,
        OcclusionSubscriber(back, "bed1", latest_only=False, rcvhwm=100) as every,
        OcclusionSubscriber(back, "bed1", latest_only=True, rcvhwm=100) as latest,
    ):
        assert wait_for(lambda: pub.publish(occ(0)) and every.receive(0.05), timeout=5) is not None
        while every.receive(0.2) is not None or latest.receive(0.2) is not None:
            pass
        for i in range(10):
            pub.publish(occ(i))
        time.sleep(0.3)
        assert [msg.frame_id for msg in every.iter(timeout_s=0.5)] == list(range(10))
        newest = latest.receive(1.0)
        assert newest.frame_id == 9 and latest.dropped >= 9
        assert latest.receive(0.2) is None


def _publish_and_exit(front: str, sub: Subscriber) -> tuple[int, str]:
    """Run tests/integration/publish_and_exit.py once: 15 raw 720p frames, then exit."""
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "integration" / "publish_and_exit.py"), front, "15"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's package, not an installed one
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # its probe frames arrive once the subscription has reached it: then let it publish
    assert wait_for(lambda: sub.recv(50) or child.poll() is not None, timeout=10)
    out, _ = child.communicate("go\n", timeout=30)
    return child.returncode, out


@pytest.mark.parametrize("scheme", ["ipc", "tcp"])
def test_a_process_that_publishes_big_frames_and_exits_does_not_crash(scheme, endpoints):
    """Regression (issue #10, defect 5): zero-copy buffers were freed before ZeroMQ had sent them.

    Before the fix the child aborted ("Bad address (src/tcp.cpp:227)") or segfaulted in most runs.
    """
    if scheme == "tcp":
        endpoints = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    front, back = endpoints
    # Large HWMs: the proxy and subscriber drain at full speed while the child exits
    with Proxy(front, back, hwm=100), Subscriber(back, "bed1", [m.TOPIC_COLOR], rcvhwm=100) as sub:
        for _ in range(10):
            code, out = _publish_and_exit(front, sub)
            assert code == 0, out
            while sub.recv(100) is not None:  # frames of this run
                pass


def _client(keys_dir, name: str, server_keys_dir=None):
    """Client keys ``name`` of ``keys_dir``, talking to the server of ``server_keys_dir``."""
    own = load_curve(str(keys_dir), "server.key_secret", f"{name}.key_secret", "authorized", server=False)
    server = load_curve(str(server_keys_dir or keys_dir), "server.key_secret", "x", "authorized", server=True)
    return type(own)(server.server_public, None, own.client_public, own.client_secret)


def test_curve_roles_a_subscriber_key_cannot_publish(tmp_path):
    """Regression (issue #10, defect 8): one authorised set guarded both sides of the proxy.

    A monitoring app's key could publish: its fake masks reached every other subscriber.
    """
    keys, intruder = tmp_path / "keys", tmp_path / "intruder"
    generate(keys, ["worker"], ["monitor", "viewer"])
    generate(intruder, ["worker"])
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    server = load_curve(str(keys), "server.key_secret", "x", "authorized", server=True)
    worker, monitor, viewer = (_client(keys, n) for n in ("worker", "monitor", "viewer"))
    unknown = _client(intruder, "worker", keys)
    mask = np.zeros((12, 16), np.uint8)

    def occ(i: int) -> m.OcclusionMask:
        return m.OcclusionMask(camera="bed1", frame_id=i, ts_us=i, mask=mask)

    with (
        Proxy(front, back, hwm=1000, curve=server),
        Publisher(front, 1000, worker) as real,
        Publisher(front, 1000, monitor) as fake,
        Publisher(front, 1000, unknown) as stranger,
        Subscriber(back, "bed1", [m.TOPIC_OCCLUSION], 1000, viewer) as sub,
        Subscriber(back, "bed1", [m.TOPIC_OCCLUSION], 1000, unknown) as spy,
    ):
        # the subscriber key subscribes and receives what a publisher key publishes
        assert wait_for(lambda: real.publish(occ(0)) and sub.recv(50), timeout=5) is not None
        # 100 fake masks from the subscriber key (and 100 from an unknown key), between real ones
        got = []
        for i in range(1, 101):
            fake.publish(occ(100_000 + i))
            stranger.publish(occ(200_000 + i))
            real.publish(occ(i))
            got += sub.drain(10)
        wait_for(lambda: got.extend(sub.drain(50)) or any(g.frame_id == 100 for g in got), timeout=5)
        ids = {g.frame_id for g in got}
        assert 100 in ids and max(ids) == 100  # every real mask came, no fake one
        assert spy.recv(500) is None and spy.stats.received == 0  # an unknown key gets nothing


def _mask(camera: str, i: int) -> m.OcclusionMask:
    return m.OcclusionMask(camera=camera, frame_id=i, ts_us=i, mask=np.zeros((4, 6), np.uint8))


def test_a_ward_subscriber_gets_one_kind_of_every_camera_and_nothing_else(endpoints):
    """Kind-first topics: '*' selects masks of all beds on the wire, never their colour frames."""
    front, back = endpoints
    with (
        Proxy(front, back, hwm=1000),
        Publisher(front, 1000) as pub,
        Subscriber(back, "*", [m.TOPIC_OCCLUSION], rcvhwm=1000) as ward,
        Subscriber(back, "bed1", [m.TOPIC_OCCLUSION], rcvhwm=1000) as bed1,
    ):
        deadline = time.monotonic() + 5
        while ward.recv(50) is None or bed1.recv(50) is None:  # slow joiner
            pub.publish(_mask("bed1", 0))
            assert time.monotonic() < deadline, "subscriptions never arrived"
        time.sleep(0.2)
        ward.drain(50), bed1.drain(50)
        for i in range(1, 11):
            pub.publish(color(i))
            for cam in ("bed1", "bed2", "bed10"):
                pub.publish(_mask(cam, i))
        got = collect_all(ward)
        mine = collect_all(bed1)
    assert {(g.camera, g.frame_id) for g in got} == {
        (c, i) for c in ("bed1", "bed2", "bed10") for i in range(1, 11)
    }
    assert all(isinstance(g, m.OcclusionMask) for g in got)
    assert ward.stats.by_topic == {m.TOPIC_OCCLUSION: ward.stats.received}  # no colour frame decoded
    assert [g.camera for g in mine] == ["bed1"] * 10  # bed10 does not match bed1's prefix


def collect_all(sub: Subscriber, quiet_ms: int = 300) -> list[m.Message]:
    out = []
    while (msg := sub.recv(quiet_ms)) is not None:
        out.append(msg)
    return out


def test_recv_waits_until_its_deadline_past_rejected_messages(endpoints):
    """A message the subscriber rejects must not end ``recv(timeout)`` early."""
    front, back = endpoints
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.connect(front)
    try:
        with Proxy(front, back, hwm=100), Subscriber(back, "bed1", [m.TOPIC_OCCLUSION]) as sub:
            good = m.encode(_mask("bed1", 7))
            deadline = time.monotonic() + 5
            while sub.recv(50) is None:
                raw.send_multipart(good)
                assert time.monotonic() < deadline
            time.sleep(0.1)
            sub.drain(20)
            raw.send_multipart([good[0], b"\xc1 not msgpack", b""])  # rejected at once
            t0 = time.monotonic()
            timer = __import__("threading").Timer(0.3, lambda: raw.send_multipart(good))
            timer.start()
            got = sub.recv(2000)
            waited = time.monotonic() - t0
            timer.join()
        assert got is not None and got.frame_id == 7, "recv gave up after the rejected message"
        assert waited >= 0.25 and sub.stats.invalid >= 1
    finally:
        raw.close(linger=0)


def test_a_schema_1_peer_is_counted_and_named(endpoints, caplog):
    """Old layout '<camera>/<kind>': received by a one-camera subscriber, counted, warned once."""
    front, back = endpoints
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.connect(front)
    try:
        with Proxy(front, back, hwm=100), Subscriber(back, "bed1", [m.TOPIC_OCCLUSION]) as sub:
            deadline = time.monotonic() + 5
            while sub.stats.legacy == 0:
                raw.send_multipart([b"bed1/mask.occlusion", b"old header", b""])
                assert sub.recv(50) is None
                assert time.monotonic() < deadline, "the schema-1 message never arrived"
        assert sub.stats.invalid >= sub.stats.legacy >= 1
        assert "schema-1 peer" in sub.stats.last_error and "bed1/mask.occlusion" in sub.stats.last_error
        assert sum("schema-1 peer" in r.getMessage() for r in caplog.records) == 1
    finally:
        raw.close(linger=0)
