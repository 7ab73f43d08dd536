"""ZeroMQ transport: an XSUB/XPUB proxy, publishers and latest-wins subscribers.

Workers only connect; the supervisor's proxy binds both ends. Every receive has a timeout,
a malformed message is counted and dropped, and nothing here ever blocks a publisher.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from . import messages as m
from .errors import UserError

log = logging.getLogger(__name__)

# Publisher: at most this many trackers of in-flight zero-copy buffers before a full prune
MAX_TRACKED = 256
# One drain reads at most this many messages, for at most this long (then returns; the rest stays
# queued for the next call): a peer sending faster than we decode can never keep a loop in it
MAX_DRAIN = 1024
DRAIN_BUDGET_S = 0.1
# Publisher.close: time for ZeroMQ to release discarded buffers once the socket is closed
CLOSE_RELEASE_S = 2.0
# Proxy.stop: forwarding has stopped; how long its sockets stay open before they close
CLOSE_QUIET_S = 0.05


# ----------------------------------------------------------------------------- security


# CURVE roles: the ZAP domain of each proxy side, also the folder (under authorized_dir) of the
# public keys allowed there. Publisher keys (workers, bedside captures) may publish and subscribe;
# subscriber keys (monitoring apps) may only subscribe.
ROLE_PUBLISHERS = "publishers"
ROLE_SUBSCRIBERS = "subscribers"


@dataclass(frozen=True)
class AuthorizedKeys:
    """Public keys (Z85) allowed per role; the proxy authenticator's ZAP callback."""

    publishers: frozenset[bytes]
    subscribers: frozenset[bytes]

    def callback(self, domain: str, client_key: bytes) -> bool:
        """Whether ``client_key`` may connect to the proxy side whose ZAP domain is ``domain``."""
        if domain == ROLE_PUBLISHERS:
            return client_key in self.publishers
        if domain == ROLE_SUBSCRIBERS:
            return client_key in self.subscribers or client_key in self.publishers
        return False


@dataclass(frozen=True)
class CurveKeys:
    """CURVE key material for tcp:// endpoints (None fields: plain text)."""

    server_public: bytes
    server_secret: bytes | None = None
    client_public: bytes | None = None
    client_secret: bytes | None = None
    authorized: AuthorizedKeys | None = None


def _public_keys(folder: Path) -> frozenset[bytes]:
    """Z85 public keys of the ``*.key`` files in ``folder`` (empty when it does not exist)."""
    import zmq.auth

    if not folder.is_dir():
        return frozenset()
    try:
        return frozenset(zmq.auth.load_certificates(str(folder)))
    except (OSError, ValueError) as exc:
        raise UserError(f"bus.curve: cannot read the public keys in {folder} ({exc})") from None


def load_authorized(folder: str) -> AuthorizedKeys:
    """Read ``publishers/`` and ``subscribers/`` under ``folder``; one clear line for the old layout."""
    base = Path(folder)
    flat = sorted(p.name for p in base.glob("*.key"))
    if flat:
        raise UserError(
            f"bus.curve: {base} holds keys without a role ({', '.join(flat[:3])}): move the public keys "
            f"of publishers (workers, bedside captures) into {base / ROLE_PUBLISHERS}/ and those of "
            f"subscribe-only apps into {base / ROLE_SUBSCRIBERS}/"
        )
    if not (base / ROLE_PUBLISHERS).is_dir():
        raise UserError(
            f"bus.curve: {base / ROLE_PUBLISHERS} is missing; run "
            f"'kinect-occlusion keys generate {base.parent} --publishers client …'"
        )
    return AuthorizedKeys(_public_keys(base / ROLE_PUBLISHERS), _public_keys(base / ROLE_SUBSCRIBERS))


def _warn_if_shared(path: Path) -> None:
    """A warning when a secret key file is readable or writable by others (``keys generate`` makes
    it 0600): anyone who can read it can join the bus as that key's owner."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # reading it just worked; a race with its removal is no news here
    if mode & 0o077:
        log.warning(
            "bus.curve: secret key %s is open to others (mode %03o): anyone who reads it can join the "
            "bus as its owner; chmod 600 %s",
            path,
            mode & 0o777,
            path,
        )


def load_curve(
    keys_dir: str, server_key: str, client_key: str, authorized_dir: str, *, server: bool
) -> CurveKeys:
    """Read key files made by ``kinect-occlusion keys generate``; one clear error when missing."""
    import zmq.auth

    base = Path(keys_dir)

    def read(name: str) -> tuple[bytes, bytes | None]:
        path = base / name
        try:
            return zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as exc:
            raise UserError(
                f"bus.curve: cannot read key {path} ({exc}); run 'kinect-occlusion keys generate {base}'"
            ) from None

    def read_secret(name: str) -> tuple[bytes, bytes]:
        public, secret = read(name)
        if secret is None:  # a public key under the secret's name: sockets would fail later, off-thread
            raise UserError(
                f"bus.curve: {base / name} holds no secret key (a public key file?); "
                f"run 'kinect-occlusion keys generate {base}'"
            )
        _warn_if_shared(base / name)
        return public, secret

    if not server:
        client_pub, client_sec = read_secret(client_key)
        return CurveKeys(read(server_key.replace("_secret", ""))[0], None, client_pub, client_sec)
    server_pub, server_sec = read_secret(server_key)
    return CurveKeys(server_pub, server_sec, None, None, load_authorized(str(base / authorized_dir)))


def curve_keys(curve_cfg: Any, *, server: bool) -> CurveKeys | None:
    """The keys named by a ``bus.curve`` config section, or None when CURVE is disabled."""
    if not curve_cfg.enabled:
        return None
    c = curve_cfg
    return load_curve(c.keys_dir, c.server_key, c.client_key, c.authorized_dir, server=server)


def _secure_client(sock: zmq.Socket, endpoint: str, keys: CurveKeys | None) -> None:
    if keys is None or not endpoint.startswith("tcp://"):
        return
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.client_public
    sock.curve_secretkey = keys.client_secret


def _bound_kernel_buffer(sock: zmq.Socket, endpoint: str, option: int, kb: int) -> None:
    """Cap a tcp:// socket's kernel buffer (``zmq.SNDBUF``/``zmq.RCVBUF``) at ``kb`` KiB; 0 keeps the
    OS default. Linux autotunes loopback buffers to several MB: ~8 raw frames that wait there, out of
    reach of a latest-wins drain (measured on a ward server, issue #12)."""
    if kb > 0 and endpoint.startswith("tcp://"):
        sock.setsockopt(option, kb * 1024)


def _prepare_ipc(endpoint: str) -> str | None:
    """Create the folder of an ipc:// endpoint owner-only; return the socket path.

    A folder that already exists must be ours and not group/world-writable: others could have
    planted a socket or a lock there already, which fixing the mode now would not undo.
    """
    if not endpoint.startswith("ipc://"):
        return None
    path = Path(endpoint[len("ipc://") :])
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = path.parent.stat()
    except OSError as exc:
        raise UserError(f"bus: cannot create the folder of {endpoint} ({exc.strerror or exc})") from None
    why = open_to_others(st)
    if why is not None:
        raise UserError(
            f"bus: folder {path.parent} of {endpoint} is {why} — use a private folder "
            f"(mkdir -m 700) or 'chmod go-w {path.parent}' if it is yours and holds nothing else"
        )
    return str(path)


def open_to_others(st: os.stat_result) -> str | None:
    """Why another user could write into the folder ``st`` describes (for a refusal line); None
    when it is ours and closed to group and others."""
    if st.st_uid != os.geteuid():
        return f"owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"group/world-writable (mode {st.st_mode & 0o7777:04o})"
    return None


def _lock_ipc(path: str) -> int:
    """Hold ``<path>.lock`` so a second pipeline cannot silently take over the socket file.

    (Binding an ipc:// path that exists replaces it: both pipelines would then misbehave.)
    """
    import fcntl

    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(
            f"bus: another pipeline is already serving ipc://{path} — stop it, or give this "
            "one other bus endpoints (or another camera.id)"
        ) from None
    return fd


# ----------------------------------------------------------------------------- proxy


class Proxy:
    """XSUB (frontend, publishers connect) ⇄ XPUB (backend, subscribers connect), in a thread.

    Args:
        frontend, backend: endpoints to bind.
        hwm: high-water mark of both proxy sockets (messages).
        curve: server keys; with them every tcp:// side requires CURVE: the frontend from a
            publisher key, the backend from a publisher or subscriber key.
        tcp_buffer_kb: kernel buffer of each tcp:// side (KiB; 0: the OS default).
    """

    def __init__(
        self,
        frontend: str,
        backend: str,
        hwm: int = 4,
        curve: CurveKeys | None = None,
        tcp_buffer_kb: int = 0,
    ) -> None:
        self.frontend, self.backend, self.hwm, self.curve = frontend, backend, hwm, curve
        self.tcp_buffer_kb = tcp_buffer_kb
        self._ctx = zmq.Context()
        self._thread: threading.Thread | None = None
        self._control_addr = f"inproc://proxy-control-{id(self)}"
        self._auth: Any = None
        self._locks: list[int] = []
        self._ipc_files: dict[str, tuple[int, int]] = {}  # socket path → (device, inode) once bound

    def start(self) -> Proxy:
        """Bind both sides (raising UserError if an endpoint cannot be bound) and start forwarding.

        On any failure everything opened so far (sockets, ipc locks, the authenticator, the
        context) is released before the error propagates: the endpoints are free again at once.
        """
        opened: list[zmq.Socket] = []
        try:
            if self.curve is not None:
                self._start_auth()
            opened.append(self._bind(zmq.XSUB, self.frontend))
            opened.append(self._bind(zmq.XPUB, self.backend))
            opened.append(self._ctx.socket(zmq.PAIR))
            opened[-1].bind(self._control_addr)
            self._thread = threading.Thread(target=self._run, args=tuple(opened), name="proxy", daemon=True)
            self._thread.start()
        except BaseException:
            self._thread = None
            for sock in opened:
                sock.close(linger=0)
            self._release()
            raise
        return self

    def _start_auth(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        if self.curve is None or self.curve.authorized is None:
            raise UserError("bus.curve: the proxy needs server keys with their authorised public keys")
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        # One ZAP domain per side: publisher keys on the frontend, any authorised key on the backend
        for role in (ROLE_PUBLISHERS, ROLE_SUBSCRIBERS):
            self._auth.configure_curve_callback(domain=role, credentials_provider=self.curve.authorized)

    def _bind(self, kind: int, endpoint: str) -> zmq.Socket:
        ipc_path = _prepare_ipc(endpoint)  # may refuse the folder: before any socket exists
        sock = self._ctx.socket(kind)
        try:
            self._configure(sock, kind, endpoint)
            if ipc_path is not None:
                self._locks.append(_lock_ipc(ipc_path))
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise UserError(
                f"bus: cannot bind {endpoint} ({exc.strerror}); is another pipeline running?"
            ) from None
        except BaseException:
            # Any failure: a socket left open would keep the context's term() waiting for ever
            sock.close(linger=0)
            raise
        if ipc_path is not None:
            os.chmod(ipc_path, 0o600)
            st = os.stat(ipc_path)
            self._ipc_files[ipc_path] = (st.st_dev, st.st_ino)
        return sock

    def lost_endpoints(self) -> list[str]:
        """The ipc:// socket files this proxy bound that are gone or replaced by another file (its
        folder or the files removed under a running pipeline): nothing new can connect there."""
        lost = []
        for path, ident in self._ipc_files.items():
            try:
                st = os.stat(path)
            except OSError:
                lost.append(path)
                continue
            if (st.st_dev, st.st_ino) != ident:
                lost.append(path)
        return lost

    def _configure(self, sock: zmq.Socket, kind: int, endpoint: str) -> None:
        """High-water marks, kernel buffers and (CURVE on tcp://) the server keys of one proxy side."""
        sock.linger = 0
        # Data is bounded by the HWM; subscriptions (XPUB in, XSUB out) must never be dropped, or a
        # publisher that connects late never learns some topics are wanted.
        data_hwm, subscription_hwm = self.hwm, 100_000
        if kind == zmq.XSUB:
            sock.rcvhwm, sock.sndhwm = data_hwm, subscription_hwm
        else:
            sock.sndhwm, sock.rcvhwm = data_hwm, subscription_hwm
        _bound_kernel_buffer(
            sock, endpoint, zmq.RCVBUF if kind == zmq.XSUB else zmq.SNDBUF, self.tcp_buffer_kb
        )
        if self.curve is not None and endpoint.startswith("tcp://"):
            sock.zap_domain = (ROLE_PUBLISHERS if kind == zmq.XSUB else ROLE_SUBSCRIBERS).encode()
            sock.curve_server = True
            sock.curve_secretkey = self.curve.server_secret
            sock.curve_publickey = self.curve.server_public

    def _run(self, xsub: zmq.Socket, xpub: zmq.Socket, control: zmq.Socket) -> None:
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
            # Peers that left just before stop() are let go first, while our sessions can still
            # finish a half-sent message (see stop())
            time.sleep(CLOSE_QUIET_S)
        except zmq.ContextTerminated:
            log.debug("proxy context terminated")
        finally:
            for sock in (xsub, xpub, control):
                sock.close(linger=0)

    def stop(self) -> None:
        """Stop forwarding and release both endpoints (a second call does nothing).

        Returns once every session of the proxy is gone. libzmq 4.3.5 aborts the whole process
        (session_base.cpp:233) when a peer leaves while the proxy's session toward it is half-way
        through a multipart message and already closing. So the stopped proxy waits CLOSE_QUIET_S
        before closing (peers that left just before are let go first), and a caller closes its
        own sockets on the proxy *after* this (tools/zmq_close_race.py shows the race).
        """
        if self._thread is not None:
            ctl = self._ctx.socket(zmq.PAIR)
            ctl.connect(self._control_addr)
            ctl.send(b"TERMINATE")
            self._thread.join(timeout=2.0)
            ctl.close(linger=0)
            self._thread = None
        self._release()

    def _release(self) -> None:
        """Stop the authenticator, drop the ipc locks and end the context (sockets closed first)."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        for fd in self._locks:
            os.close(fd)
        self._locks.clear()
        self._ctx.term()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------- publisher


class Publisher:
    """Publishes :mod:`messages` to the proxy frontend; never blocks (a full queue drops).

    Raw arrays go out zero-copy: ZeroMQ reads them from the caller's memory after ``publish``
    returns. Each such buffer is tracked until ZeroMQ has released it, and :meth:`close` waits
    (bounded) for that, so no buffer is freed while the I/O thread still reads it (a process that
    published and exited at once used to abort: "Bad address (src/tcp.cpp:227)").

    Args:
        endpoint: the proxy's frontend (XSUB) endpoint.
        sndhwm: send high-water mark in messages.
        curve: client keys for tcp:// endpoints.
        jpeg_quality: quality of JPEG-encoded colour frames.
        linger_s: how long :meth:`close` lets queued messages go out before dropping them.
        tcp_buffer_kb: kernel send buffer on a tcp:// endpoint (KiB; 0: the OS default).
    """

    def __init__(
        self,
        endpoint: str,
        sndhwm: int = 4,
        curve: CurveKeys | None = None,
        jpeg_quality: int = 90,
        context: zmq.Context | None = None,
        linger_s: float = 0.2,
        tcp_buffer_kb: int = 0,
    ) -> None:
        self._ctx = context or zmq.Context.instance()
        self.sock = self._ctx.socket(zmq.PUB)
        self.sock.linger = 0
        self.sock.sndhwm = sndhwm
        _bound_kernel_buffer(self.sock, endpoint, zmq.SNDBUF, tcp_buffer_kb)
        _secure_client(self.sock, endpoint, curve)
        self.sock.connect(endpoint)
        self.jpeg_quality = jpeg_quality
        self.linger_s = linger_s
        self.sent = 0
        self.dropped = 0
        self._in_flight: deque[zmq.MessageTracker] = deque()
        self._locks: list[int] = []

    def also_bind(self, endpoint: str) -> None:
        """Also serve local subscribers on ``endpoint`` (a bedside's own status while its server is
        away); an ipc:// path is guarded as the proxy's are (UserError when taken or not bindable)."""
        ipc_path = _prepare_ipc(endpoint)
        if ipc_path is not None:
            self._locks.append(_lock_ipc(ipc_path))
        try:
            self.sock.bind(endpoint)
        except zmq.ZMQError as exc:
            raise UserError(f"bus: cannot bind {endpoint} ({exc.strerror})") from None

    def publish(self, msg: m.Message) -> bool:
        """Serialise then send ``msg``; return False (and count a drop) when the queue is full."""
        frames = m.encode(msg, jpeg_quality=self.jpeg_quality)
        try:
            self._send(frames)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def _send(self, frames: list[Any]) -> None:
        """Send one multipart message; keep the trackers of its zero-copy parts."""
        # Parts under the socket's copy threshold are copied (their tracker is already done)
        last = len(frames) - 1
        for i, part in enumerate(frames):
            flags = zmq.NOBLOCK | (zmq.SNDMORE if i < last else 0)
            tracker = self.sock.send(part, flags, copy=False, track=True)
            if tracker is not None and not tracker.done:
                self._in_flight.append(tracker)
        self._forget_sent()

    def _forget_sent(self) -> None:
        """Drop the trackers of buffers ZeroMQ has released (the list stays ~HWM long)."""
        while self._in_flight and self._in_flight[0].done:
            self._in_flight.popleft()
        if len(self._in_flight) > MAX_TRACKED:
            self._in_flight = deque(t for t in self._in_flight if not t.done)

    def _wait_released(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until ZeroMQ has released every zero-copy buffer."""
        deadline = time.monotonic() + timeout_s
        while self._in_flight:
            try:
                self._in_flight[0].wait(max(0.0, deadline - time.monotonic()))
            except zmq.NotDone:
                return False
            self._in_flight.popleft()
        return True

    def close(self) -> None:
        """Let queued messages go out (up to ``linger_s``), drop the rest, close the socket.

        Returns only once ZeroMQ no longer reads any buffer handed to :meth:`publish`, so the
        caller may free them (or exit) safely.
        """
        self._wait_released(self.linger_s)
        self.sock.close(linger=0)
        for fd in self._locks:
            os.close(fd)
        self._locks.clear()
        # Closing discards what is still queued; the I/O thread releases those buffers promptly
        if not self._wait_released(CLOSE_RELEASE_S):
            log.warning("publisher: %d buffers still held by ZeroMQ after close", len(self._in_flight))

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- subscriber


@dataclass
class SubscriberStats:
    """Counters of one subscriber."""

    received: int = 0
    stale: int = 0
    invalid: int = 0
    legacy: int = 0
    last_error: str = ""
    by_topic: dict[str, int] = field(default_factory=dict)


class Subscriber:
    """Subscribes to some topics of one camera (or of every camera with ``camera='*'``).

    Args:
        endpoint: the proxy's backend (XPUB) endpoint.
        camera: camera id, or ``'*'`` for all cameras.
        topics: topic names from :mod:`messages` (e.g. ``messages.TOPIC_COARSE``).
        rcvhwm: receive high-water mark in messages.
        curve: client keys for tcp:// endpoints.
        tcp_buffer_kb: kernel receive buffer on a tcp:// endpoint (KiB; 0: the OS default).
    """

    def __init__(
        self,
        endpoint: str,
        camera: str,
        topics: Iterable[str],
        rcvhwm: int = 4,
        curve: CurveKeys | None = None,
        context: zmq.Context | None = None,
        tcp_buffer_kb: int = 0,
    ) -> None:
        self._ctx = context or zmq.Context.instance()
        self.sock = self._ctx.socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.rcvhwm = rcvhwm
        _bound_kernel_buffer(self.sock, endpoint, zmq.RCVBUF, tcp_buffer_kb)
        _secure_client(self.sock, endpoint, curve)
        self.topics = list(topics)
        for topic in self.topics:
            self.sock.subscribe(m.topic_prefix(camera, topic))
        if camera != "*":  # schema-1 peers publish "<camera>/<kind>": receive them to say so
            self.sock.subscribe(f"{camera}/".encode())
        self.camera = camera
        self.sock.connect(endpoint)
        self.stats = SubscriberStats()

    def _accept(self, msg: m.Message) -> bool:
        return msg.TOPIC in self.topics

    def _recv_one(self, flags: int = 0) -> m.Message | None:
        return self._decode(self.sock.recv_multipart(flags=flags, copy=False))

    def _decode(self, frames: list[zmq.Frame]) -> m.Message | None:
        """Validate and decode one received message; None (counted) when it is refused."""
        if m.is_legacy_topic(frames[0].bytes):
            self._legacy(frames[0].bytes)
            return None
        try:
            msg = m.decode([f.buffer for f in frames])
        except m.MessageError as exc:
            self.stats.invalid += 1
            self.stats.last_error = str(exc)
            log.debug("dropped malformed message: %s", exc)
            return None
        if not self._accept(msg):
            return None
        self.stats.received += 1
        self.stats.by_topic[msg.TOPIC] = self.stats.by_topic.get(msg.TOPIC, 0) + 1
        return msg

    def _legacy(self, topic: bytes) -> None:
        """Count a message from a schema-1 peer (old topic layout); warn about it once."""
        self.stats.invalid += 1
        self.stats.legacy += 1
        self.stats.last_error = f"schema-1 peer on the bus (topic {topic[:64]!r}): upgrade it"
        if self.stats.legacy == 1:
            log.warning("%s; its messages are dropped", self.stats.last_error)

    def recv(self, timeout_ms: int = 100) -> m.Message | None:
        """Next valid message in arrival order, or None once ``timeout_ms`` has passed.

        A rejected message does not end the wait: it goes on until the deadline.
        """
        deadline = time.monotonic() + max(1, timeout_ms) / 1000.0
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not self.sock.poll(left_ms, zmq.POLLIN):
                return None
            msg = self._recv_one()
            if msg is not None:
                return msg

    def drain(self, timeout_ms: int = 100) -> list[m.Message]:
        """Wait up to ``timeout_ms`` for traffic, then return the queued valid messages in order
        (at most ``MAX_DRAIN`` read, within ``DRAIN_BUDGET_S``; the rest stays queued)."""
        out: list[m.Message] = []
        if not self.sock.poll(max(1, timeout_ms), zmq.POLLIN):
            return out
        for _ in self._budget():
            try:
                msg = self._recv_one(zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg is not None:
                out.append(msg)
        return out

    @staticmethod
    def _budget() -> Iterator[int]:
        """Up to ``MAX_DRAIN`` reads within ``DRAIN_BUDGET_S`` (a drain's bound on time and memory)."""
        end = time.monotonic() + DRAIN_BUDGET_S
        for n in range(MAX_DRAIN):
            if n and time.monotonic() >= end:
                return
            yield n

    def recv_latest(self, timeout_ms: int = 100) -> dict[str, m.Message]:
        """Wait up to ``timeout_ms`` for traffic, then drain: the newest valid message per topic
        (per camera and topic with ``camera='*'``).

        Only the newest message of each wire topic is validated and decoded (a JPEG colour frame
        costs a decode); older ones are counted in ``stats.stale`` unread. At most ``MAX_DRAIN`` are
        read within ``DRAIN_BUDGET_S`` (under a flood, the newest of those). A newest message that is
        refused is counted as before and leaves its topic out of this round.
        """
        if not self.sock.poll(max(1, timeout_ms), zmq.POLLIN):
            return {}
        newest: dict[bytes, list[zmq.Frame]] = {}
        for _ in self._budget():
            try:
                frames = self.sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            if m.is_legacy_topic(frames[0].bytes):
                self._legacy(frames[0].bytes)
                continue
            if frames[0].bytes in newest:
                self.stats.stale += 1
            newest[frames[0].bytes] = frames
        out: dict[str, m.Message] = {}
        for frames in newest.values():
            msg = self._decode(frames)
            if msg is not None:
                out[f"{msg.camera}/{msg.TOPIC}" if self.camera == "*" else msg.TOPIC] = msg
        return out

    def close(self) -> None:
        """Close the socket."""
        self.sock.close(linger=0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
