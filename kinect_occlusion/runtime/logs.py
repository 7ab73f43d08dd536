"""One log stream for every process: children push their records to the supervisor's log sink.

Each child has its own ZeroMQ PUSH socket to the supervisor's PULL socket (ipc, in a folder only
this user can open). No lock or pipe is shared between children: a child SIGKILLed in the middle
of a record cannot block its siblings' logging nor the supervisor's reading (a
``multiprocessing.Queue`` shares a write lock and a pipe, and a record cut in half blocks its
reader for good). A child never waits on the sink: past ``SNDHWM`` queued records it drops and
counts. A record is a msgpack map of a few typed fields, checked on arrival like any message.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import os
import shutil
import sys
import tempfile
import threading
import time

import msgpack
import zmq

from ..config import LoggingConfig
from ..errors import one_line

FORMAT = "%(asctime)s %(processName)-10s %(levelname)-7s %(name)s: %(message)s"
MAX_MESSAGE_CHARS = 32_768  # a longer message (a traceback, say) is cut to this
MAX_RECORD_BYTES = 4 * MAX_MESSAGE_CHARS + 4096
SNDHWM = 1000  # records a child queues for the sink before it drops
REPORT_EVERY_S = 60.0  # a log file that cannot be written is said at most this often
LINGER_MS = 1000  # how long a closing child tries to deliver its last records
# The fields a record carries, with their types
FIELDS: dict[str, type] = {
    "name": str,
    "levelno": int,
    "levelname": str,
    "msg": str,
    "processName": str,
    "process": int,
    "created": float,
}


class LogFile(logging.handlers.RotatingFileHandler):
    """``logging.file``: rotated at ``max_bytes``, and safe under an outside rotation or a full disk.

    logrotate's default renames the file while we hold it open: like ``WatchedFileHandler``, each
    record first checks that the path still names the open file and reopens the path otherwise
    (``copytruncate`` needs nothing: the file is open for appending). A record that cannot be
    written (full disk, folder gone) is counted; the first failure is one line on stderr, then at
    most one per ``REPORT_EVERY_S``, never logging's traceback per record; the first success after a
    failure said is one line too (a flapping disk: at most two lines a period). Records still reach
    stderr.
    """

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups)
        self.failed = 0  # records not written to the file
        self.unsaid = 0  # failure lines stderr could not take either
        self.unflushed = 0  # files left behind whose buffer could not be written (records counted)
        self._said_failing = False  # a failure was said and no success since
        self._reported_at = -math.inf
        self._ident = self._identify()

    def _identify(self) -> tuple[int, int] | None:
        """(device, inode) of the open file."""
        if self.stream is None:
            return None
        st = os.fstat(self.stream.fileno())
        return st.st_dev, st.st_ino

    def _reopen_if_moved(self) -> None:
        try:
            st = os.stat(self.baseFilename)
            now: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            now = None
        if now is not None and now == self._ident:
            return
        old, self.stream = self.stream, self._open()  # the old one stays if this fails
        self._ident = self._identify()
        if old is not None:
            try:
                old.close()
            except OSError:  # bytes it could not write (a full disk): their records are counted
                self.unflushed += 1

    def doRollover(self) -> None:  # noqa: N802 (logging's name)
        super().doRollover()
        self._ident = self._identify()

    def emit(self, record: logging.LogRecord) -> None:
        failed = self.failed
        try:
            self._reopen_if_moved()
        except OSError:
            self.handleError(record)
            return
        super().emit(record)  # calls handleError on a failure
        if self._said_failing and self.failed == failed:
            self._said_failing = False
            self._say(
                f"logging.file: writing {self.baseFilename} again ({self.failed} record(s) lost so far)"
            )

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        """Count the record; one line now and then instead of logging's traceback per record."""
        self.failed += 1
        now = time.monotonic()
        if now - self._reported_at < REPORT_EVERY_S:
            return
        self._reported_at, self._said_failing = now, True
        why = one_line(sys.exc_info()[1] or "unknown error")
        self._say(
            f"logging.file: cannot write {self.baseFilename} ({why}); {self.failed} record(s) lost so far "
            f"(records still go to stderr; said again at most every {REPORT_EVERY_S:.0f} s)"
        )

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:  # its last buffered records cannot be written either (full disk)
            self._say(
                f"logging.file: closing {self.baseFilename}: {one_line(exc)}; its last records are lost"
            )

    def _say(self, line: str) -> None:
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr itself is gone: nowhere left to say it
            self.unsaid += 1


def handlers(cfg: LoggingConfig) -> list[logging.Handler]:
    """stderr, plus a rotating file when ``logging.file`` is set."""
    out: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if cfg.file:
        out.append(LogFile(cfg.file, cfg.max_bytes, cfg.backups))
    for h in out:
        h.setFormatter(logging.Formatter(FORMAT))
    return out


def encode(record: logging.LogRecord, message: str) -> bytes:
    """The wire form of ``record`` whose text (message and traceback) is ``message``."""
    return msgpack.packb(
        {
            "name": str(record.name),
            "levelno": int(record.levelno),
            "levelname": str(record.levelname),
            "msg": message[:MAX_MESSAGE_CHARS],
            "processName": str(record.processName),
            "process": int(record.process or 0),
            "created": float(record.created),
        }
    )


def decode(data: bytes) -> logging.LogRecord | None:
    """The record in ``data``, or None when it is not one (wrong shape, types or size)."""
    if len(data) > MAX_RECORD_BYTES:
        return None
    try:
        fields = msgpack.unpackb(data, raw=False, max_bin_len=0, max_array_len=0, max_map_len=len(FIELDS))
    except Exception:  # msgpack raises many types on garbage; the caller counts the None
        return None
    if not isinstance(fields, dict) or set(fields) != set(FIELDS):
        return None
    for key, kind in FIELDS.items():
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            return None
    if not math.isfinite(fields["created"]) or abs(fields["process"]) > 2**31:
        return None
    record = logging.makeLogRecord({**fields, "args": None})
    record.created = fields["created"]
    record.msecs = (record.created - int(record.created)) * 1000
    return record


class LogSink:
    """The supervisor's end: a PULL socket whose thread hands every record to ``handlers``.

    Args:
        handlers: where records go (their levels apply); ``endpoint`` is what children connect to.
    """

    def __init__(self, handlers: list[logging.Handler]) -> None:
        self.handlers = handlers
        self.invalid = 0  # messages that were not a record
        self._dir = tempfile.mkdtemp(prefix="ko-logs-")  # mode 0700: only this user connects
        self.endpoint = f"ipc://{self._dir}/sink"
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PULL)
        try:
            self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_RECORD_BYTES)
            self._sock.bind(self.endpoint)
        except BaseException:  # no sink: nothing of it stays behind (socket, context, folder)
            self._close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(100):
                self._handle(self._sock.recv())
        for _ in range(SNDHWM):  # then what had arrived by the stop (bounded: a child may flood)
            if not self._sock.poll(0):
                break
            self._handle(self._sock.recv())

    def _handle(self, data: bytes) -> None:
        record = decode(data)
        if record is None:
            self.invalid += 1
            return
        for h in self.handlers:
            if record.levelno >= h.level:
                h.handle(record)

    def stop(self) -> None:
        """Deliver what has arrived, then close the socket and remove its folder."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._close()

    def _close(self) -> None:
        self._sock.close(linger=0)
        self._ctx.term()
        shutil.rmtree(self._dir, ignore_errors=True)


class SinkHandler(logging.Handler):
    """A child's handler: each record, formatted with its traceback, to the sink without waiting."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.dropped = 0  # records the sink was too slow to take
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, SNDHWM)
        self._sock.setsockopt(zmq.LINGER, LINGER_MS)
        self._sock.connect(endpoint)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sock.send(encode(record, self.format(record)), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
        except Exception:  # logging's own rule: report on stderr, never raise into the caller
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if not self._sock.closed:
                self._sock.close()  # waits up to LINGER_MS for the last records
                self._ctx.term()
        finally:
            self.release()
        super().close()


def setup_main(cfg: LoggingConfig) -> list[logging.Handler]:
    """Configure the supervisor's logging; its handlers (for a :class:`LogSink` of the children)."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(cfg.level)
    hs = handlers(cfg)
    for h in hs:
        root.addHandler(h)
    return hs


def setup_child(level: str, endpoint: str | None) -> None:
    """Send every record of this process to the sink at ``endpoint`` (None: to stderr)."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if endpoint is None else SinkHandler(endpoint)
    )
    if endpoint is None:
        handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
