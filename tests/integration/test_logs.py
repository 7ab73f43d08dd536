"""The children's log records reach the supervisor's sink, whatever happens to a sibling."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time

import msgpack
import zmq
from conftest import wait_for

from kinect_occlusion.runtime import logs


def chatter(endpoint: str) -> None:
    """Logs long records as fast as it can (to be SIGKILLed in the middle of one)."""
    logs.setup_child("INFO", endpoint)
    text = "x" * 200_000  # cut to MAX_MESSAGE_CHARS
    while True:
        logging.getLogger("chatter").info("%s", text)


def witness(endpoint: str) -> None:
    """A numbered beat every 10 ms."""
    logs.setup_child("INFO", endpoint)
    for i in range(100_000):
        logging.getLogger("witness").info("beat %d", i)
        time.sleep(0.01)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.beat, self.chatter = -1, 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "witness":
            self.beat = int(record.getMessage().split()[1])
        elif record.name == "chatter":
            self.chatter += 1
            assert len(record.getMessage()) == logs.MAX_MESSAGE_CHARS


def test_a_child_killed_mid_record_blocks_neither_its_siblings_nor_the_sink():
    got = Collect()
    sink = logs.LogSink([got])
    ctx = mp.get_context("spawn")
    w = ctx.Process(target=witness, args=(sink.endpoint,), name="witness")
    w.start()
    try:
        assert wait_for(lambda: got.beat >= 0, 30)
        for _ in range(8):
            c = ctx.Process(target=chatter, args=(sink.endpoint,), name="chatter")
            c.start()
            seen = got.chatter
            assert wait_for(lambda seen=seen: got.chatter > seen + 2, 30)  # in full flow
            os.kill(c.pid, signal.SIGKILL)
            c.join(10)
            beat = got.beat
            assert wait_for(lambda beat=beat: got.beat > beat + 3, 10), "the witness went silent"
        assert sink.invalid == 0
    finally:
        w.kill()
        w.join(10)
        sink.stop()


def test_what_is_not_a_record_is_counted_and_dropped():
    got = Collect()
    sink = logs.LogSink([got])
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(sink.endpoint)
    good = logging.makeLogRecord({"name": "witness", "msg": "beat 7", "levelno": 20, "levelname": "INFO"})
    fields = msgpack.unpackb(logs.encode(good, "beat 7"))
    bad = [
        b"\xc1garbage",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({**fields, "levelno": "20"}),
        msgpack.packb({**fields, "created": float("nan")}),
        msgpack.packb({**fields, "extra": 1}),
        b"\x00" * (logs.MAX_RECORD_BYTES + 1),  # refused by the socket itself (MAXMSGSIZE)
    ]
    try:
        for data in [*bad, logs.encode(good, "beat 7")]:
            push.send(data)
        assert wait_for(lambda: got.beat == 7, 10)
        assert wait_for(lambda: sink.invalid == 5, 5), sink.invalid
    finally:
        push.close(linger=0)
        ctx.term()
        sink.stop()
