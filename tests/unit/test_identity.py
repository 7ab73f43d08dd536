"""Frame identity ``(epoch, frame_id)`` across capture restarts and against forged ids (issue #10, defect 3).

Workers order frames by arrival and skip only the exact identity they already processed; a
partition from another capture run is never paired.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import msgpack
import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion.capture.worker import next_epoch
from kinect_occlusion.config import FuserConfig, SamConfig
from kinect_occlusion.fuser.pairing import pair
from kinect_occlusion.fuser.worker import Holder, fuse
from kinect_occlusion.sam.partitioner import PartitionResult
from kinect_occlusion.sam.worker import FrameRing, Refresher, partition_message, take_input

OLD, NEW = 1_700_000_000_000_000, 1_700_000_009_000_000  # two capture runs' epochs
FORGED = 2**62


def frame(i: int, epoch: int = OLD, value: int = 100) -> m.ColorFrame:
    return m.ColorFrame(
        camera="bed1",
        epoch=epoch,
        frame_id=i,
        ts_us=i * 100_000,
        image=np.full((24, 32, 3), value, np.uint8),
    )


def coarse(i: int, epoch: int = OLD) -> m.CoarseMask:
    prob = np.zeros((24, 32), np.uint8)
    prob[5:10, 5:10] = 255
    return m.CoarseMask(
        camera="bed1", epoch=epoch, frame_id=i, ts_us=i * 100_000, prob=prob, roi=(0, 0, 32, 24)
    )


def partition(i: int, epoch: int = OLD) -> m.Partition:
    return m.Partition(
        camera="bed1", epoch=epoch, frame_id=i, ts_us=i * 100_000, labels=np.ones((24, 32), np.int32)
    )


class Loop:
    """The SAM worker's input policy driven message by message (no sockets, no sleeps)."""

    def __init__(self, need_coarse: bool = True) -> None:
        self.ring, self.coarse, self.need_coarse = FrameRing(), None, need_coarse
        self.done: tuple[int, int] | None = None
        self.processed: list[tuple[int, int]] = []

    def receive(self, *msgs: m.Message) -> tuple[int, int] | None:
        """Deliver ``msgs``, then run one loop step; the identity partitioned, if any."""
        for msg in msgs:
            if isinstance(msg, m.ColorFrame):
                self.ring.add(msg)
            else:
                self.coarse = msg  # type: ignore[assignment]
        chosen, _ = take_input(self.ring, self.coarse, self.need_coarse, self.done)
        if chosen is None:
            return None
        self.done = chosen.identity
        self.processed.append(chosen.identity)
        return chosen.identity


# ----------------------------------------------------------------------------- wire


def test_epoch_travels_and_schema_1_peers_get_the_clear_rejection():
    msg = frame(3, epoch=NEW)
    out = m.decode(m.encode(msg))
    assert out.epoch == NEW and out.identity == (NEW, 3)
    header = msgpack.unpackb(m.encode(msg)[1])
    assert m.SCHEMA_VERSION == 2 and header["schema"] == 2 and header["epoch"] == NEW
    header["schema"] = 1
    frames = m.encode(msg)
    with pytest.raises(m.MessageError, match="schema version 1 .this build speaks 2"):
        m.decode([frames[0], msgpack.packb(header), *frames[2:]])


def test_results_carry_the_epoch_of_their_source_frame():
    from kinect_occlusion.deeplab.worker import coarse_message

    cm = coarse_message(frame(5, NEW), np.zeros((24, 32), np.float32), (0, 0, 32, 24), "x", 1.0)
    assert cm.identity == (NEW, 5)
    result = PartitionResult(labels=np.ones((24, 32), np.int32), name="fake")
    assert partition_message(frame(5, NEW), result).identity == (NEW, 5)
    out = fuse(coarse(5, NEW), partition(5, NEW), FuserConfig())
    assert out.identity == (NEW, 5) and out.fused


# ----------------------------------------------------------------------------- sam worker


def test_capture_restart_to_frame_0_is_processed_at_once():
    loop = Loop()
    for i in range(200, 219):
        assert loop.receive(frame(i), coarse(i)) == (OLD, i)
    # capture killed at 218 and restarted: a new epoch, ids from 0 again
    assert loop.receive(frame(0, NEW), coarse(0, NEW)) == (NEW, 0)
    assert loop.receive(frame(1, NEW), coarse(1, NEW)) == (NEW, 1)


def test_forged_future_ids_do_not_freeze_the_partition():
    loop = Loop()
    assert loop.receive(frame(10), coarse(10)) == (OLD, 10)
    for _ in range(3):  # three forged frames, same identity each time
        loop.receive(frame(FORGED), coarse(FORGED))
    assert loop.processed.count((OLD, FORGED)) == 1  # the exact identity is done once
    for i in range(11, 15):
        assert loop.receive(frame(i), coarse(i)) == (OLD, i)


def test_forged_frames_from_a_future_epoch_do_not_freeze_it_either():
    loop = Loop(need_coarse=False)
    assert loop.receive(frame(1)) == (OLD, 1)
    loop.receive(frame(FORGED, epoch=FORGED))
    assert loop.receive(frame(2)) == (OLD, 2)


def test_only_the_exact_identity_is_skipped_and_time_never_runs_backwards():
    loop = Loop(need_coarse=False)
    assert loop.receive(frame(7)) == (OLD, 7)
    assert loop.receive(frame(7)) is None  # a repeat of the frame just done
    assert loop.receive(frame(7, NEW)) == (NEW, 7)  # same id, other run: a new frame
    # a coarse mask for a frame that arrived before the one just done is not gone back to
    assert loop.receive(frame(8, NEW), frame(9, NEW)) == (NEW, 9)
    assert loop.receive(coarse(8, NEW)) is None


def test_the_coarse_masks_own_frame_is_found_by_identity():
    ring = FrameRing(size=4)
    ring.add(frame(3, OLD))
    ring.add(frame(3, NEW))
    chosen, used = take_input(ring, coarse(3, OLD), True, None)
    assert chosen.identity == (OLD, 3) and used.identity == (OLD, 3)


def test_a_partition_is_not_reused_across_capture_runs():
    calls = []

    def part(rgb, prob=None, roi=None):
        calls.append(1)
        return PartitionResult(labels=np.ones(rgb.shape[:2], np.int32), name="fake")

    r = Refresher(SamConfig(reuse_threshold=2.0), part)
    r.refresh(frame(218), coarse(218))
    result, source = r.refresh(frame(0, NEW), coarse(0, NEW))  # same pixels, new run
    assert len(calls) == 2 and source is None
    assert partition_message(frame(0, NEW), result, source).identity == (NEW, 0)


# ----------------------------------------------------------------------------- fuser


def test_a_partition_from_another_capture_run_is_never_paired():
    # equal device timestamps: only the epoch tells the runs apart
    choice = pair(coarse(3, NEW), partition(3, OLD), max_age_ms=2000)
    assert choice.partition is None and "another capture run" in choice.reason
    assert not fuse(coarse(3, NEW), partition(3, OLD), FuserConfig()).fused
    assert pair(coarse(3, NEW), partition(3, NEW), max_age_ms=2000).partition is not None


def test_holder_waits_for_its_own_runs_partition_and_never_past_wait_ms():
    holder = Holder(wait_ms=100)
    holder.push(coarse(0, NEW), now=0.0)
    assert holder.release(partition(500, OLD), now=0.01) is None  # old run's bigger id: no match
    assert holder.release(partition(0, NEW), now=0.02).identity == (NEW, 0)
    holder.push(coarse(1, NEW), now=1.0)
    assert holder.release(partition(FORGED, FORGED), now=1.01) is None
    assert holder.release(partition(FORGED, FORGED), now=1.1).identity == (NEW, 1)  # bounded


# ----------------------------------------------------------------------------- capture epoch


def test_epochs_strictly_increase_even_when_the_clock_steps_back(tmp_path):
    path = tmp_path / "bed1.epoch"
    first = next_epoch(path, now_us=OLD)
    assert first == OLD
    assert next_epoch(path, now_us=OLD - 5_000_000) == OLD + 1  # clock went back 5 s
    assert next_epoch(path, now_us=NEW) == NEW
    assert os.stat(path).st_mode & 0o077 == 0


def test_a_planted_or_corrupt_epoch_file_cannot_break_the_epoch(tmp_path):
    path = tmp_path / "bed1.epoch"
    path.write_text(str(2**64))
    assert next_epoch(path, now_us=NEW) == NEW
    path.write_text("garbage")
    assert next_epoch(path, now_us=NEW) == NEW
    assert next_epoch(tmp_path / "missing" / "x.epoch", now_us=NEW) == NEW  # unusable: the clock


def test_runs_starting_together_get_distinct_epochs(tmp_path):
    path = tmp_path / "bed1.epoch"
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("fork")) as pool:
        epochs = sorted(pool.map(next_epoch, [path] * 8, [OLD] * 8))
    assert epochs == [OLD + k for k in range(8)]
