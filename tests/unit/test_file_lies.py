"""Files that look valid on the surface but lie inside: each is refused in one line, cheaply.

Real .mkv recordings written with our writer, real checkpoint files; only their contents are hostile.
"""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch

from kinect_occlusion.deeplab.model import build_model, load_checkpoint, save_checkpoint
from kinect_occlusion.depth.calibration import CalibrationError, parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration
from kinect_occlusion.errors import CheckpointError, SourceError
from kinect_occlusion.sam.partition import build_sam, build_tiny_sam
from kinect_occlusion.sources.k4a_formats import bitmap_info_header, encode_color
from kinect_occlusion.sources.mkv import MkvSource
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter
from kinect_occlusion.training.data import load_dataset

DEPTH = np.full((288, 320), 1800, np.uint16)
GREY_720P = encode_color(np.full((720, 1280, 3), 90, np.uint8), "MJPG")


def _recording(path, calibration: str, color: list[bytes] | None = None):
    """Two captures at 15 fps (NFOV binned depth; MJPG 720p colour payloads ``color`` when given)."""
    color_mode = "OFF" if color is None else "MJPG_720P"
    with K4AMkvWriter(
        path, color_mode=color_mode, depth_mode="NFOV_2X2BINNED", fps=15, calibration_json=calibration
    ) as w:
        for i in range(2):
            jpeg = None if color is None else color[i]
            w.write_encoded(1_000_000 + i * 66_666, color=jpeg, depth=DEPTH.astype(">u2").tobytes())
    return path


# ---------------------------------------------------------------- calibration attachment


def _calibration(edit) -> str:
    """The device calibration as JSON text after ``edit(text)`` (Python's json writes Infinity/NaN)."""
    return edit(json.dumps(device_calibration()))


def _infinite_sensor(text: str) -> str:
    return text.replace('"SensorWidth": 1024', '"SensorWidth": Infinity', 1)


def _huge_integer(text: str) -> str:
    doc = json.loads(text)
    doc["CalibrationInformation"]["Cameras"][1]["Intrinsics"]["ModelParameters"][2] = 10**400
    return json.dumps(doc)


@pytest.mark.parametrize("edit", [_infinite_sensor, _huge_integer])
def test_a_calibration_with_numbers_beyond_float_is_one_line(edit):
    text = _calibration(edit)
    with pytest.raises(CalibrationError) as info:
        parse_calibration(text, "NFOV_2X2BINNED", "720P", source="rec.mkv")
    assert str(info.value).startswith("rec.mkv: unusable calibration: ") and "\n" not in str(info.value)


def test_a_recording_whose_calibration_overflows_plays_unaligned_after_one_line(tmp_path, caplog):
    rec = _recording(tmp_path / "inf.mkv", _calibration(_infinite_sensor), [GREY_720P] * 2)
    with caplog.at_level(logging.WARNING), MkvSource(rec, align_depth=True) as src:
        frames = list(src)
    lines = [r.getMessage() for r in caplog.records if "align" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("inf.mkv: cannot align depth to colour: unusable"), lines
    assert len(frames) == 2 and all(f.depth.shape == (288, 320) for f in frames)


# ---------------------------------------------------------------- colour packets


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real 720p JPEG whose frame header (SOF0) claims ``width``×``height``."""
    data = bytearray(GREY_720P)
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_a_jpeg_whose_header_claims_another_size_is_refused_before_decoding(tmp_path, caplog):
    # Claiming 30000×30000 made OpenCV allocate and decode ~2.7 GB (10 s, 5 GB peak here) per packet;
    # 8000×8000 keeps a regression cheap. The header is checked against the track instead.
    liar = _jpeg_claiming(8000, 8000)
    rec = _recording(tmp_path / "liar.mkv", json.dumps(device_calibration()), [liar, GREY_720P])
    with caplog.at_level(logging.DEBUG, logger="kinect_occlusion.sources.mkv"), MkvSource(rec) as src:
        frames = list(src)
    assert [f.color is None for f in frames] == [True, False] and frames[1].color.shape == (720, 1280, 3)
    assert all(f.depth.shape == (288, 320) for f in frames)  # the capture's depth still plays
    assert "JPEG header says 8000×8000, the track is 1280×720" in caplog.text
    assert "1 corrupt frame(s) skipped or incomplete (frame 0: COLOR)" in caplog.text


def test_a_colour_track_claiming_images_larger_than_the_camera_is_refused(tmp_path):
    # Packets of ~10 kB whose JPEG headers agree with a 9000×9000 track decoded to 243 MB each
    side = 9000
    rec = _recording(
        tmp_path / "huge.mkv", json.dumps(device_calibration()), [_jpeg_claiming(side, side)] * 2
    )
    data = rec.read_bytes()
    header = bitmap_info_header(1280, 720, b"MJPG", 24)  # CodecPrivate, then Video's PixelWidth/Height
    pixels = b"\xb0\x82" + (1280).to_bytes(2, "big") + b"\xba\x82" + (720).to_bytes(2, "big")
    assert data.count(header) == 1 and data.count(pixels) == 1
    big = b"\xb0\x82" + side.to_bytes(2, "big") + b"\xba\x82" + side.to_bytes(2, "big")
    rec.write_bytes(data.replace(header, bitmap_info_header(side, side, b"MJPG", 24)).replace(pixels, big))
    with pytest.raises(SourceError) as info:
        MkvSource(rec).open()
    assert str(info.value) == (
        f"{rec}: COLOR track claims 9000×9000 images, larger than any Azure Kinect mode (4096×3072)"
        " — not a Kinect recording"
    )


# ---------------------------------------------------------------- DeepLab checkpoints


@pytest.fixture(scope="module")
def checkpoint_payload(tmp_path_factory):
    """A real checkpoint (random weights), as the dict a hostile file would alter."""
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "good.pt", build_model("resnet18").eval())
    return torch.load(path, weights_only=True)


def _nan_weight(payload):
    state = dict(payload["state_dict"])
    state["decoder.classifier.weight"] = torch.full_like(state["decoder.classifier.weight"], float("nan"))
    return {"state_dict": state}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"input_size": 10**6}, "input_size 1000000: expected an integer 32…4096"),  # 10¹² pixels a frame
        ({"input_size": -5}, "input_size -5"),
        ({"input_size": "512"}, "input_size '512'"),
        ({"mean": [float("nan")] * 3}, "mean must be 3 finite numbers"),  # every pixel NaN
        ({"mean": ["a", "b", "c"]}, "mean must be 3 finite numbers"),
        ({"std": [0.0, 0.0, 0.0]}, "std [0.0, 0.0, 0.0] must be positive"),  # division by zero
        ({"meta": "abc"}, "meta of type str"),
        (_nan_weight, "weights hold NaN or infinity (decoder.classifier.weight)"),
    ],
)
def test_a_checkpoint_with_the_right_keys_but_absurd_values_is_one_line(
    tmp_path, checkpoint_payload, change, expected
):
    path = tmp_path / "liar.pt"
    torch.save({**checkpoint_payload, **(change(checkpoint_payload) if callable(change) else change)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"deeplab.checkpoint: {path} ") and expected in message and "\n" not in message


# ---------------------------------------------------------------- COCO run-length masks


@pytest.mark.parametrize(
    "counts, why",
    [
        ("`", "cut inside a count"),  # continuation bit on the last character
        ("o" * 100_000 + "0", "count too long"),  # one count of 500,000 bits, built as a big int
        ([10**30, 2], "not run lengths"),  # beyond int64
        ([[1, 2], [3, 4]], "not a flat list"),
    ],
)
def test_a_coco_rle_mask_that_lies_skips_its_annotation_only(tmp_path, counts, why):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    good = {"image_id": 1, "segmentation": {"size": [4, 4], "counts": [5, 6, 5]}}
    bad = {"id": 7, "image_id": 1, "segmentation": {"size": [4, 4], "counts": counts}}
    coco = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [bad, good]}
    (tmp_path / "data.json").write_text(json.dumps(coco))
    ds = load_dataset(tmp_path / "data.json")
    assert len(ds.samples) == 1 and len(ds.samples[0].instances) == 1
    assert ds.samples[0].instances[0].rasterise(4, 4).sum() == 6
    assert len(ds.report.skipped) == 1 and "annotation 7: RLE" in ds.report.skipped[0]
    assert why in ds.report.skipped[0]


def test_a_sam_checkpoint_with_nan_weights_is_one_line(tmp_path):
    # Loaded silently before (a diverged fine-tune, a damaged download)
    state = build_tiny_sam(seed=0).state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    torch.save(state, tmp_path / "sam.pth")
    with pytest.raises(CheckpointError) as info:
        build_sam("tiny", str(tmp_path / "sam.pth"))
    assert (
        str(info.value)
        == f"SAM checkpoint {tmp_path / 'sam.pth'} holds NaN or infinity ({key}); check sam.checkpoint"
    )
