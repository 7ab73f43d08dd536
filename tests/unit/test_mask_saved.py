"""``mask.saved``: the --save-masks writer acknowledges each mask once it is on disk (capture's credit
under every_frame); real sockets through a real proxy."""

from __future__ import annotations

import csv
import logging
import threading
import time
from contextlib import contextmanager

import numpy as np
from conftest import wait_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher, Subscriber
from kinect_occlusion.commands._pipeline import credit_on_save
from kinect_occlusion.config import Config
from kinect_occlusion.runtime import mask_saver
from kinect_occlusion.runtime.mask_saver import CSV_NAME, MaskSaver, Provenance, encode_png, png_name

PROV = Provenance("model.pt", "ab" * 32, "superpixel/seeds")


def mask(frame_id: int) -> m.OcclusionMask:
    return m.OcclusionMask(
        camera="bed1", epoch=5, frame_id=frame_id, ts_us=frame_id, mask=np.eye(4, dtype=np.uint8)
    )


def acks(sub: Subscriber) -> list[tuple[int, int]]:
    return [msg.identity for msg in sub.drain(50) if isinstance(msg, m.MaskSaved)]


@contextmanager
def saver_on_bus(folder, endpoints, on_error=None):
    """A running every-frame saver behind a real proxy: (publisher of masks, subscriber of its
    acknowledgements, the saver); stopped on the way out."""
    front, back = endpoints
    with (
        Proxy(front, back, hwm=64),
        Publisher(front, 64) as pub,
        Subscriber(back, "bed1", [m.TOPIC_SAVED]) as sub,
    ):
        saver = MaskSaver(folder, back, "bed1", PROV, every_frame=True, ack_endpoint=front, on_error=on_error)
        saver.start()
        try:
            yield pub, sub, saver
        finally:
            saver.stop()


def test_a_mask_is_acknowledged_only_once_its_png_and_row_are_written(tmp_path, endpoints, monkeypatch):
    write_png = MaskSaver._write_png

    def slow_write_png(self, msg):  # an acknowledgement sent before the write would come first
        time.sleep(0.3)
        write_png(self, msg)

    monkeypatch.setattr(MaskSaver, "_write_png", slow_write_png)
    with saver_on_bus(tmp_path, endpoints) as (pub, sub, saver):
        got = wait_for(lambda: pub.publish(mask(3)) and acks(sub), timeout=10)
        assert got and set(got) == {(5, 3)}  # the frame's identity, epoch included
        assert (tmp_path / png_name(3)).read_bytes() == encode_png(mask(3).mask)
        with (tmp_path / CSV_NAME).open(newline="") as f:
            assert "3" in {r["frame_id"] for r in csv.DictReader(f)}  # its row flushed before


def test_a_saver_that_cannot_write_still_acknowledges_so_the_replay_goes_on(tmp_path, endpoints):
    (tmp_path / "000000.png.part").mkdir()  # the PNG's temporary name is taken: writing fails
    with saver_on_bus(tmp_path, endpoints) as (pub, sub, saver):
        assert wait_for(lambda: pub.publish(mask(0)) and (0 in {f for _, f in acks(sub)}), timeout=10)
        assert saver.error is not None and "Is a directory" in saver.error
        assert wait_for(lambda: pub.publish(mask(1)) and (1 in {f for _, f in acks(sub)}), timeout=10)
        assert saver.is_alive() and not (tmp_path / png_name(1)).exists()  # acknowledged, not written
    assert not saver.is_alive()


def capture_status(last: int) -> m.Status:
    info = {"last_frame_id": last}
    return m.Status(camera="bed1", frame_id=0, ts_us=1, worker="capture", pid=1, state="s", info=info)


def test_a_writer_failing_of_anything_but_a_disk_error_stops_the_run_with_one_line(
    tmp_path, endpoints, monkeypatch, caplog
):
    """A bug in the writer (not an OSError) used to end its thread with a traceback and no
    acknowledgement: capture then waited one frame_timeout_s per frame, silently."""
    encode = mask_saver.encode_png

    def encode_but_a_full_mask(mask_array):  # frame 1's mask (all ones) cannot be encoded
        if mask_array.all():
            raise ValueError("cannot encode\nthis mask")
        return encode(mask_array)

    monkeypatch.setattr(mask_saver, "encode_png", encode_but_a_full_mask)
    frames = [mask(0), mask(1), mask(2)]
    frames[1].mask[:] = 1
    stopped = threading.Event()  # the replay's stop event
    caplog.set_level(logging.INFO)
    with saver_on_bus(tmp_path, endpoints, on_error=stopped.set) as (pub, sub, saver):
        got: set[int] = set()
        for msg in frames:  # each is acknowledged, written or not: capture goes on (resent until
            # heard: the first may go out before the sockets are connected)
            assert wait_for(
                lambda m_=msg: pub.publish(m_) and got.update(f for _, f in acks(sub)) or m_.frame_id in got
            )
        assert stopped.is_set() and saver.is_alive()  # the run is told to stop; the saver counts on
        assert saver.error == f"--save-masks {tmp_path}: saving failed (ValueError: cannot encode this mask)"
        assert wait_for(lambda: pub.publish(capture_status(3)) and saver.last_frame_id == 3)
    assert not saver.is_alive()
    with (tmp_path / CSV_NAME).open(newline="") as f:
        table = {(int(r["frame_id"]), r["result"]) for r in csv.DictReader(f)}  # a resent frame 0: 2 rows
    assert table == {(0, "fallback"), (1, "lost"), (2, "lost"), (3, "lost")}
    assert sorted(p.name for p in tmp_path.glob("*.png*")) == [png_name(0)]
    loud = [r for r in caplog.records if r.levelno >= logging.INFO and r.name == mask_saver.__name__]
    assert [(r.levelname, r.exc_info) for r in loud] == [("ERROR", None)]  # one line, no traceback


def test_capture_waits_for_the_written_mask_only_in_an_every_frame_replay_that_saves():
    every = Config(camera={"source": "synthetic"}, runtime={"every_frame": True})
    assert credit_on_save(every, saving=True).runtime.credit_on_save
    assert not credit_on_save(every, saving=False).runtime.credit_on_save
    assert not credit_on_save(Config(), saving=True).runtime.credit_on_save
    stray = Config(runtime={"credit_on_save": True})  # set in a file: no saver would acknowledge
    assert not credit_on_save(stray, saving=False).runtime.credit_on_save
