"""Bad recordings end in one clear SourceError line, never a traceback from FFmpeg."""

from __future__ import annotations

import numpy as np
import pytest

from kinect_occlusion.errors import SourceError
from kinect_occlusion.sources.mkv import MkvSource, probe_mkv
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter


def good_recording(path):
    rng = np.random.default_rng(0)
    with K4AMkvWriter(path, color_mode="MJPG_720P", depth_mode="NFOV_2X2BINNED", start_offset_ns=None) as w:
        for i in range(3):
            w.write(
                rng.integers(0, 255, (720, 1280, 3), np.uint8),
                rng.integers(0, 4000, (288, 320), np.uint16),
                None,
                1000 + i * 33_333,
            )
    return path


def assert_source_error(path, match):
    for open_it in (probe_mkv, lambda p: list(MkvSource(p))):
        with pytest.raises(SourceError, match=match) as info:
            open_it(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message


def test_missing_file(tmp_path):
    assert_source_error(tmp_path / "nope.mkv", "no such recording")


def test_empty_file(tmp_path):
    (tmp_path / "empty.mkv").write_bytes(b"")
    assert_source_error(tmp_path / "empty.mkv", "empty")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mkv"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 10_000, np.uint8).tobytes())
    assert_source_error(path, "not a Matroska")


@pytest.mark.parametrize("keep", [30, 300])
def test_file_cut_before_its_tracks(tmp_path, keep):
    data = good_recording(tmp_path / "full.mkv").read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[:keep])
    assert_source_error(path, "truncated")


def damage_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "damaged recording" in r.getMessage()]


def test_truncated_file_plays_its_intact_frames_then_says_where_it_stopped(tmp_path, caplog):
    data = good_recording(tmp_path / "full.mkv").read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: int(len(data) * 0.8)])  # the third capture is cut
    assert probe_mkv(path).frame_count == 2
    caplog.clear()
    frames = list(MkvSource(path))
    assert len(frames) == 2 and frames[1].depth is not None
    [line] = damage_warnings(caplog)
    assert f"stopped at byte {len(data) * 8 // 10}" in line and "after frame 1" in line and "cut.mkv" in line


def test_plain_matroska_without_kinect_tracks(tmp_path):
    import av

    path = tmp_path / "plain.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert_source_error(path, "not an Azure Kinect recording")


def test_not_a_file_but_a_folder(tmp_path):
    assert_source_error(tmp_path, "no such recording")


def test_unfinished_recording_still_replays(tmp_path):
    # A recorder that died before close(): unknown Segment size, no Cues — every written capture is readable
    rng = np.random.default_rng(0)
    w = K4AMkvWriter(tmp_path / "live.mkv", color_mode="MJPG_720P", depth_mode="NFOV_2X2BINNED")
    depths = [rng.integers(0, 4000, (288, 320), np.uint16) for _ in range(3)]
    for i, d in enumerate(depths):
        w.write(np.zeros((720, 1280, 3), np.uint8), d, None, i * 33_333)
    w._file.flush()
    (tmp_path / "crashed.mkv").write_bytes((tmp_path / "live.mkv").read_bytes())
    w.close()
    frames = list(MkvSource(tmp_path / "crashed.mkv"))
    assert len(frames) == 3 and all(np.array_equal(f.depth, d) for f, d in zip(frames, depths, strict=True))
    assert [int(f.depth[0, 0]) for f in MkvSource(tmp_path / "crashed.mkv", start_s=0.05)] == [
        int(d[0, 0]) for d in depths[2:]
    ]


def test_unfinished_recording_warns_once_that_it_was_not_closed(tmp_path, caplog):
    w = K4AMkvWriter(tmp_path / "live.mkv", color_mode="MJPG_720P", depth_mode="NFOV_2X2BINNED")
    for i in range(3):
        w.write(np.zeros((720, 1280, 3), np.uint8), np.zeros((288, 320), np.uint16), None, i * 33_333)
    w._file.flush()
    (tmp_path / "crashed.mkv").write_bytes((tmp_path / "live.mkv").read_bytes())
    w.close()
    assert len(list(MkvSource(tmp_path / "crashed.mkv", loop=True, max_frames=7))) == 7
    [line] = damage_warnings(caplog)  # once, though the loop read the file three times
    assert "not closed" in line and "3 frames played" in line
    caplog.clear()
    assert len(list(MkvSource(tmp_path / "live.mkv"))) == 3 and not damage_warnings(caplog)


def test_lost_block_is_counted_from_the_timestamp_gap(tmp_path, caplog):
    data = good_recording(tmp_path / "full.mkv").read_bytes()
    second_jpeg = data.index(b"\xff\xd8\xff", data.index(b"\xff\xd8\xff") + 1)
    path = tmp_path / "hole.mkv"
    # Zero the second capture's colour block header: the demuxer drops it without a word
    path.write_bytes(data[: second_jpeg - 8] + b"\x00" * 8 + data[second_jpeg:])
    caplog.clear()
    assert len(list(MkvSource(path, depth=False))) == 2
    [line] = damage_warnings(caplog)
    assert "1 capture(s) missing" in line
