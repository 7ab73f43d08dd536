"""Azure Kinect .mkv writer → reader round trips, on real files written by K4AMkvWriter."""

from __future__ import annotations

import json
import logging
import struct
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from kinect_occlusion.sources import ebml as e
from kinect_occlusion.sources.mkv import MkvSource, probe_mkv
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter, bitmap_info_header, synthetic_calibration_json

W, H = 1280, 720
DW, DH = 320, 288  # NFOV_2X2BINNED
T0 = 5_000_000  # first device timestamp (µs)
PERIOD = 33_333


def color_image(i: int) -> np.ndarray:
    """Smooth, 2×2-block-constant RGB image (chroma subsampling is then nearly lossless)."""
    y, x = np.mgrid[0 : H // 2, 0 : W // 2]
    rgb = np.stack([(x * 255 // (W // 2)), (y * 255 // (H // 2)), np.full_like(x, 40 * i % 256)], axis=2)
    return np.repeat(np.repeat(rgb.astype(np.uint8), 2, axis=0), 2, axis=1)


def depth_image(i: int, shape=(DH, DW)) -> np.ndarray:
    rng = np.random.default_rng(i)
    d = rng.integers(0, 65536, shape, dtype=np.uint16)
    d[0, 0], d[0, 1], d[0, 2] = 0, 65535, 0x1234  # extremes and a byte-order probe
    return d


def write_recording(path, n=4, color_mode="MJPG_720P", ir=True, start_offset_ns=None, **kw):
    """n captures at 30 fps from T0; returns (colors, depths, irs)."""
    colors = [color_image(i) for i in range(n)]
    depths = [depth_image(i) for i in range(n)]
    irs = [depth_image(100 + i) for i in range(n)]
    with K4AMkvWriter(
        path,
        color_mode=color_mode,
        depth_mode="NFOV_2X2BINNED",
        ir=ir,
        fps=30,
        calibration_json=kw.pop("calibration_json", synthetic_calibration_json("123456789012")),
        serial="123456789012",
        start_offset_ns=start_offset_ns,
        **kw,
    ) as w:
        for i in range(n):
            w.write(colors[i], depths[i], irs[i] if ir else None, T0 + i * PERIOD)
    return colors, depths, irs


@pytest.fixture
def rec(tmp_path):
    path = tmp_path / "rec.mkv"
    return path, *write_recording(path)


def test_mjpg_round_trip_color_close_depth_and_ir_bit_exact(rec):
    path, colors, depths, irs = rec
    with MkvSource(path, ir=True) as src:
        frames = list(src)
    assert [f.frame_id for f in frames] == [0, 1, 2, 3]
    for f, c, d, ir in zip(frames, colors, depths, irs, strict=True):
        assert f.color.dtype == np.uint8 and f.color.shape == (H, W, 3)
        assert np.abs(f.color.astype(int) - c).mean() < 2.0  # JPEG q90 on a smooth image
        assert f.depth.dtype == np.uint16 and np.array_equal(f.depth, d)
        assert np.array_equal(f.ir, ir)


@pytest.mark.parametrize("fmt,tolerance", [("BGRA32", 0), ("NV12", 3), ("YUY2", 3)])
def test_raw_color_formats_round_trip(tmp_path, fmt, tolerance):
    path = tmp_path / f"{fmt}.mkv"
    colors, depths, _ = write_recording(path, n=2, color_mode=f"{fmt}_720P", ir=False)
    info = probe_mkv(path)
    assert info.color_mode == ("BGRA_720P" if fmt == "BGRA32" else f"{fmt}_720P")  # as k4arecord names it
    assert info.tracks[0].fourcc == ("BGRA" if fmt == "BGRA32" else fmt)
    with MkvSource(path) as src:
        frames = list(src)
    for f, c, d in zip(frames, colors, depths, strict=True):
        assert np.abs(f.color.astype(int) - c).max() <= tolerance
        assert np.array_equal(f.depth, d)


def test_timestamps_are_device_timestamps(tmp_path):
    # SDK behaviour (offset = first capture) and an explicit offset give the same device timestamps
    for offset in (None, 0, 1_000_000_000):
        path = tmp_path / f"ts{offset}.mkv"
        write_recording(path, n=3, start_offset_ns=offset)
        with MkvSource(path) as src:
            assert [f.ts_us for f in src] == [T0, T0 + PERIOD, T0 + 2 * PERIOD]
        assert probe_mkv(path).start_offset_ns == (T0 * 1000 if offset is None else offset)


def test_calibration_and_tags(rec):
    path = rec[0]
    with MkvSource(path) as src:
        assert json.loads(src.calibration) == json.loads(synthetic_calibration_json("123456789012"))
        tags = src.tags
    assert tags["K4A_DEVICE_SERIAL_NUMBER"] == "123456789012"
    assert tags["K4A_COLOR_MODE"] == "MJPG_720P" and tags["K4A_DEPTH_MODE"] == "NFOV_2X2BINNED"
    assert tags["K4A_IR_MODE"] == "ACTIVE" and tags["K4A_WIRED_SYNC_MODE"] == "STANDALONE"
    assert tags["K4A_DEPTH_DELAY_NS"] == "0" and tags["K4A_START_OFFSET_NS"] == str(T0 * 1000)
    assert {
        "K4A_COLOR_FIRMWARE_VERSION",
        "K4A_DEPTH_FIRMWARE_VERSION",
        "K4A_COLOR_TRACK",
        "K4A_DEPTH_TRACK",
        "K4A_IR_TRACK",
    } <= set(tags)


def test_probe_mkv(rec):
    info = probe_mkv(rec[0])
    assert [(t.name, t.fourcc, t.width, t.height) for t in info.tracks] == [
        ("COLOR", "MJPG", W, H),
        ("DEPTH", "b16g", DW, DH),
        ("IR", "b16g", DW, DH),
    ]
    assert (info.fps, info.frame_count, info.serial, info.has_calibration) == (30, 4, "123456789012", True)
    assert info.duration_s == pytest.approx(4 * PERIOD / 1e6, abs=1e-3)
    assert json.loads(json.dumps(info.to_dict()))["tracks"][1]["name"] == "DEPTH"


def test_no_calibration(tmp_path):
    path = tmp_path / "nocal.mkv"
    write_recording(path, n=1, calibration_json=None)
    assert not probe_mkv(path).has_calibration
    with MkvSource(path) as src:
        assert src.calibration is None


def test_seek_by_time(tmp_path):
    path = tmp_path / "long.mkv"
    write_recording(path, n=12, ir=False)
    with MkvSource(path, start_s=0.2, depth=False) as src:
        frames = list(src)
    # Captures at 0, 33.3, … ms: the first one at or after 200 ms is number 6
    assert frames[0].ts_us == T0 + 6 * PERIOD and len(frames) == 6
    assert frames[0].frame_id == 0 and frames[0].depth is None
    assert np.abs(frames[0].color.astype(int) - color_image(6)).mean() < 2.0


def test_loop_keeps_ids_and_timestamps_increasing(rec):
    with MkvSource(rec[0], loop=True, max_frames=10) as src:
        frames = list(src)
    ts = [f.ts_us for f in frames]
    assert [f.frame_id for f in frames] == list(range(10))
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert ts[4] == T0 + 4 * PERIOD  # the second pass continues one frame period later
    assert np.array_equal(frames[5].depth, rec[2][1])


def test_realtime_pacing(rec):
    start = time.monotonic()
    with MkvSource(rec[0], realtime=True) as src:
        n = sum(1 for _ in src)
    assert n == 4 and time.monotonic() - start >= 3 * PERIOD / 1e6 * 0.9


def test_capture_may_lack_a_track_and_corrupt_packet_is_skipped(tmp_path, caplog):
    path = tmp_path / "holes.mkv"
    d = [depth_image(i) for i in range(4)]
    with K4AMkvWriter(path, color_mode="MJPG_720P", depth_mode="NFOV_2X2BINNED", ir=False) as w:
        w.write(color_image(0), d[0], None, 0)
        w.write_encoded(PERIOD, color=b"\xff\xd8 this is not a jpeg", depth=d[1].astype(">u2").tobytes())
        w.write(None, d[2], None, 2 * PERIOD)  # depth only
        w.write_encoded(3 * PERIOD, color=b"garbage")  # nothing decodable: no frame
        w.write(color_image(4), None, None, 4 * PERIOD)  # colour only
    with caplog.at_level(logging.WARNING), MkvSource(path) as src:
        frames = list(src)
    assert [f.ts_us for f in frames] == [0, PERIOD, 2 * PERIOD, 4 * PERIOD]
    assert frames[1].color is None and np.array_equal(frames[1].depth, d[1])
    assert frames[2].color is None and frames[3].depth is None and frames[3].color is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("frame 1" in m and "COLOR" in m for m in warnings)
    assert any("frame 3" in m for m in warnings)


def test_depth_off_writes_color_only(tmp_path):
    path = tmp_path / "color.mkv"
    with K4AMkvWriter(path, color_mode="MJPG_720P", depth_mode="OFF") as w:
        w.write(color_image(0), None, None, 0)
    info = probe_mkv(path)
    assert [t.name for t in info.tracks] == ["COLOR"] and info.depth_mode == "OFF"


def test_writer_rejects_bad_input(tmp_path):
    with K4AMkvWriter(tmp_path / "x.mkv", depth_mode="NFOV_2X2BINNED") as w:
        with pytest.raises(ValueError, match="depth_mm"):
            w.write(None, np.zeros((DH, DW), np.float32), None, 0)
        with pytest.raises(ValueError, match="color_rgb"):
            w.write(np.zeros((10, 10, 3), np.uint8), None, None, 0)
        w.write(None, depth_image(0), None, 100)
        with pytest.raises(ValueError, match="backwards"):
            w.write(None, depth_image(0), None, 50)
    with pytest.raises(ValueError, match="colour mode"):
        K4AMkvWriter(tmp_path / "y.mkv", color_mode="RGB_720P")


def test_deterministic_output(tmp_path):
    date = datetime(2024, 1, 1, tzinfo=timezone.utc)
    write_recording(tmp_path / "a.mkv", n=2, uid_seed=7, date_utc=date)
    write_recording(tmp_path / "b.mkv", n=2, uid_seed=7, date_utc=date)
    assert (tmp_path / "a.mkv").read_bytes() == (tmp_path / "b.mkv").read_bytes()


def test_bitmap_info_header():
    hdr = bitmap_info_header(640, 576, b"b16g", 16)
    size, w, h, planes, bits, fourcc, size_image = struct.unpack("<IiiHHII", hdr[:24])
    assert len(hdr) == 40 and (size, w, h, planes, bits) == (40, 640, 576, 1, 16)
    assert fourcc == 0x67363162 and size_image == 640 * 576 * 2  # k4arecord's b16g constant
    assert struct.unpack("<I", bitmap_info_header(1280, 720, b"MJPG", 24)[16:20])[0] == 0x47504A4D


# -- layout checks with an independent EBML walk (what the SDK's parser relies on) -----------------


def walk(buf: bytes, start: int, end: int):
    """(id, payload start, payload end) of each element in buf[start:end]."""
    pos = start
    while pos < end:
        _, eid, n_id = e.read_vint(buf, pos)
        size, _, n_size = e.read_vint(buf, pos + n_id)
        yield eid, pos + n_id + n_size, pos + n_id + n_size + size
        pos += n_id + n_size + size


def children(buf, parent):
    return list(walk(buf, parent[1], parent[2]))


def test_file_layout_matches_k4arecord(rec):
    buf = rec[0].read_bytes()
    head = e.check_matroska(rec[0])
    assert head.segment_start + head.segment_size == len(buf)  # size patched on close
    top = list(walk(buf, head.segment_start, len(buf)))
    ids = [t[0] for t in top]
    assert ids[:2] == [e.SEEK_HEAD, e.VOID] and ids.count(e.CLUSTER) == 4 and ids[-1] == e.CUES
    assert ids.index(e.TAGS) < ids.index(e.CLUSTER)
    # Every SeekHead entry points at the element it names
    for seek in children(buf, top[0]):
        fields = {c[0]: buf[c[1] : c[2]] for c in children(buf, seek)}
        pos = head.segment_start + int.from_bytes(fields[e.SEEK_POSITION], "big")
        assert buf[pos : pos + 4] == fields[e.SEEK_ID]
    assert {e.INFO, e.TRACKS, e.ATTACHMENTS, e.TAGS, e.CUES} <= {
        int.from_bytes(buf[c[1] : c[2]], "big")
        for s in children(buf, top[0])
        for c in children(buf, s)
        if c[0] == e.SEEK_ID
    }
    info = {c[0]: buf[c[1] : c[2]] for c in children(buf, top[ids.index(e.INFO)])}
    assert int.from_bytes(info[e.TIMESTAMP_SCALE], "big") == 1000 and info[e.TITLE] == b"Azure Kinect"
    tracks = [
        {c[0]: buf[c[1] : c[2]] for c in children(buf, t)} for t in children(buf, top[ids.index(e.TRACKS)])
    ]
    assert [t[e.NAME] for t in tracks] == [b"COLOR", b"DEPTH", b"IR"]
    assert all(t[e.CODEC_ID] == b"V_MS/VFW/FOURCC" and len(t[e.CODEC_PRIVATE]) == 40 for t in tracks)
    # Second cluster: timestamp in µs relative to the start offset, SimpleBlocks big-endian b16g depth
    cluster = top[[i for i, t in enumerate(ids) if t == e.CLUSTER][1]]
    parts = children(buf, cluster)
    assert int.from_bytes(buf[parts[0][1] : parts[0][2]], "big") == PERIOD
    block = buf[parts[2][1] : parts[2][2]]
    assert block[:4] == b"\x82\x00\x00\x80"
    assert np.array_equal(np.frombuffer(block[4:], ">u2").reshape(DH, DW), rec[2][1])
