"""runtime.every_frame's pure parts: capture credit, exact pairing, the partition queue, the mask folder."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion.capture.credit import Credits
from kinect_occlusion.config import Config, SamConfig, validate
from kinect_occlusion.errors import UserError
from kinect_occlusion.fuser.pairing import OwnPartitions
from kinect_occlusion.runtime.mask_saver import (
    COLUMNS,
    CSV_NAME,
    Provenance,
    encode_png,
    mask_row,
    missing_rows,
    prepare_folder,
)
from kinect_occlusion.sam.worker import FrameRing, every_frame_config, next_pair

PROV = Provenance("model.pt", "ab" * 32, "superpixel/seeds")


def coarse(frame_id: int, epoch: int = 7) -> m.CoarseMask:
    return m.CoarseMask(
        camera="bed1",
        epoch=epoch,
        frame_id=frame_id,
        ts_us=frame_id * 1000,
        prob=np.zeros((4, 4), np.uint8),
        roi=(0, 0, 4, 4),
    )


def partition(frame_id: int, epoch: int = 7) -> m.Partition:
    return m.Partition(
        camera="bed1",
        epoch=epoch,
        frame_id=frame_id,
        ts_us=frame_id * 1000,
        labels=np.ones((4, 4), np.int32),
        scores=np.zeros((1, 2), np.float32),
    )


def test_credits_hold_capture_at_the_limit_and_return_on_the_frames_own_mask():
    c = Credits(limit=2, timeout_s=10)
    c.take((7, 0), 0.0)
    c.take((7, 1), 0.0)
    assert not c.available()
    assert not c.give_back((6, 0))  # another capture run's frame 0: not ours
    assert c.give_back((7, 1)) and c.available() and not c.idle()
    assert not c.give_back((7, 1))  # a repeated mask does not free a second credit
    assert c.give_back((7, 0)) and c.idle() and c.finished == 2


def test_a_frame_without_a_mask_gives_its_credit_back_after_the_timeout():
    c = Credits(limit=1, timeout_s=5)
    c.take((1, 0), 100.0)
    assert c.expire(104.9) == [] and not c.available()
    assert c.expire(105.0) == [(1, 0)] and c.available() and c.lost == [(1, 0)]


def test_each_coarse_mask_is_fused_with_its_own_partition_only():
    pairs = OwnPartitions(wait_s=1.0)
    pairs.add(coarse(1), 0.0)
    pairs.add(coarse(2), 0.0)
    pairs.add(partition(2), 0.1)
    pairs.add(partition(1, epoch=6), 0.1)  # same id, another run: not frame 1's
    assert [(c.frame_id, p.frame_id if p else None) for c, p in pairs.ready(0.2)] == [(2, 2)]
    assert pairs.waiting()
    pairs.add(partition(1), 0.3)
    assert [(c.frame_id, p.identity if p else None) for c, p in pairs.ready(0.3)] == [(1, (7, 1))]
    assert not pairs.waiting()


def test_a_coarse_mask_whose_partition_never_comes_is_released_alone_when_late():
    pairs = OwnPartitions(wait_s=1.0)
    pairs.add(coarse(3), 0.0)
    assert pairs.ready(0.99) == []
    [(c, p)] = pairs.ready(1.0)
    assert c.frame_id == 3 and p is None


def test_pairing_memory_is_bounded():
    pairs = OwnPartitions(wait_s=100.0, limit=3)
    for i in range(5):
        pairs.add(coarse(i), 0.0)
        pairs.add(partition(100 + i), 0.0)
    released = pairs.ready(0.0)
    assert [c.frame_id for c, _ in released] == [0, 1] and len(pairs.coarse) == 3
    assert len(pairs.partitions) == 3


def test_the_partition_worker_takes_each_coarse_mask_with_its_own_frame_in_order():
    ring = FrameRing()
    for i in (1, 2):
        ring.add(
            m.ColorFrame(camera="bed1", epoch=7, frame_id=i, ts_us=i, image=np.zeros((4, 4, 3), np.uint8))
        )
    queue = deque([(coarse(2), 0.0), (coarse(1), 0.0), (coarse(9), 0.0)])
    assert [f.frame_id for f, _ in (next_pair(ring, queue, 0.0, 2.0), next_pair(ring, queue, 0.0, 2.0))] == [
        2,
        1,
    ]
    assert next_pair(ring, queue, 1.0, 2.0) == (None, None)  # frame 9 may still come
    frame, late = next_pair(ring, queue, 2.0, 2.0)
    assert frame is None and late.frame_id == 9 and not queue


def test_every_frame_partitions_are_fresh():
    cfg = every_frame_config(SamConfig(rate_hz=2, reuse_threshold=3, warp=True, skip_when_no_occlusion=True))
    assert (cfg.rate_hz, cfg.reuse_threshold, cfg.warp, cfg.skip_when_no_occlusion) == (0, 0, False, False)


def test_every_frame_is_refused_for_a_live_camera_and_an_in_flight_over_the_hwm():
    with pytest.raises(UserError, match="not a live Kinect"):
        validate({"camera": {"source": "kinect"}, "runtime": {"every_frame": True}})
    with pytest.raises(UserError, match="in_flight must not exceed"):
        validate({"bus": {"sndhwm": 2}, "runtime": {"every_frame": True, "in_flight": 3}})
    with pytest.raises(UserError, match="not a ward"):
        validate({"cameras": [{"id": "a"}, {"id": "b"}], "runtime": {"every_frame": True}})
    assert Config().runtime.every_frame is False


def test_csv_rows_say_fused_fallback_and_missing_frames():
    fused = m.OcclusionMask(
        camera="bed1",
        frame_id=4,
        ts_us=99,
        mask=np.zeros((2, 2), np.uint8),
        votes=np.ones((2, 2), np.float32),
        fused=True,
        partition_frame_id=4,
        partition_age_ms=0.0,
        partitioner="superpixel/slic",
    )
    alone = m.OcclusionMask(camera="bed1", frame_id=5, ts_us=100, mask=np.zeros((2, 2), np.uint8))
    row = mask_row(fused, PROV)
    assert set(row) == set(COLUMNS)
    assert (row["result"], row["partition_frame_id"], row["partitioner"], row["png"]) == (
        "fused",
        4,
        "superpixel/slic",
        "000004.png",
    )
    row = mask_row(alone, PROV)
    assert (row["result"], row["partition_frame_id"], row["partition_age_ms"]) == ("fallback", "", "")
    gaps = missing_rows({0, 2}, 0, 4, "lost", PROV)
    assert [(r["frame_id"], r["result"], r["png"]) for r in gaps] == [(1, "lost", ""), (3, "lost", "")]
    assert len(missing_rows(set(), 0, 2**62, "dropped", PROV)) == 100_000  # a forged id stays bounded


def test_masks_are_0_255_pngs_with_the_same_bytes_each_time():
    import cv2

    mask = np.zeros((6, 8), np.uint8)
    mask[2:4, 3:6] = 1
    png = encode_png(mask)
    assert png == encode_png(mask.copy())
    back = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and set(np.unique(back)) == {0, 255} and ((back > 0) == mask).all()


def test_a_folder_with_masks_is_refused_unless_overwrite_which_clears_them(tmp_path):
    (tmp_path / "000001.png").write_bytes(b"old")
    (tmp_path / CSV_NAME).write_text("old")
    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="already holds masks"):
        prepare_folder(tmp_path, overwrite=False)
    assert prepare_folder(tmp_path, overwrite=True) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert prepare_folder(tmp_path / "new" / "dir", overwrite=False).is_dir()


def test_the_saver_writes_masks_from_the_bus_and_a_row_for_every_frame_without_one(
    tmp_path, endpoints, monkeypatch
):
    import csv

    from conftest import wait_for

    from kinect_occlusion.bus import Proxy, Publisher
    from kinect_occlusion.runtime import mask_saver

    monkeypatch.setattr(mask_saver, "WINDOW", 3)  # frames 3 behind the newest mask are settled
    front, back = endpoints
    with Proxy(front, back, hwm=64), Publisher(front, 64) as pub:
        saver = mask_saver.MaskSaver(tmp_path, back, "bed1", PROV, every_frame=False)
        saver.start()

        def status(last: int) -> m.Status:
            info = {"last_frame_id": last}
            return m.Status(camera="bed1", frame_id=0, ts_us=1, worker="capture", pid=1, state="s", info=info)

        assert wait_for(lambda: pub.publish(status(0)) and saver.last_frame_id == 0, timeout=10)
        mask = np.eye(4, dtype=np.uint8)
        for fid in (0, 8):
            pub.publish(m.OcclusionMask(camera="bed1", frame_id=fid, ts_us=fid, mask=mask))
        assert wait_for(lambda: saver.gap_from == 5, timeout=10)  # 1-4 settled while running
        assert saver.written == {8}  # memory: only ids not yet settled
        pub.publish(status(9))
        assert wait_for(lambda: saver.last_frame_id == 9, timeout=10)
        saver.stop()
    with (tmp_path / CSV_NAME).open(newline="") as f:
        table = [(r["frame_id"], r["result"]) for r in csv.DictReader(f)]
    assert sorted(table, key=lambda r: int(r[0])) == [
        ("0", "fallback"),
        *((str(i), "dropped") for i in range(1, 8)),
        ("8", "fallback"),
        ("9", "dropped"),
    ]
    assert (tmp_path / "000008.png").read_bytes() == encode_png(mask) and saver.error is None


def test_a_mask_that_cannot_be_written_stops_the_saver_with_one_error(tmp_path, endpoints):
    from conftest import wait_for

    from kinect_occlusion.bus import Proxy, Publisher
    from kinect_occlusion.runtime.mask_saver import MaskSaver

    (tmp_path / "000000.png.part").mkdir()  # the PNG's temporary name is taken: writing fails
    front, back = endpoints
    with Proxy(front, back, hwm=64), Publisher(front, 64) as pub:
        saver = MaskSaver(tmp_path, back, "bed1", PROV, every_frame=True)
        saver.start()
        mask = m.OcclusionMask(camera="bed1", frame_id=0, ts_us=0, mask=np.zeros((4, 4), np.uint8))
        assert wait_for(lambda: pub.publish(mask) and saver.error is not None, timeout=10)
        saver.stop()  # it accounts for the frames still coming until the run stops
    assert not saver.is_alive()
    assert saver.error.startswith(f"--save-masks {tmp_path}: ") and "Is a directory" in saver.error
