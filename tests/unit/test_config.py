"""Config: defaults valid, every error names its field path, relative paths resolve."""

import subprocess
import sys
from pathlib import Path

import pytest

from kinect_occlusion.config import Config, load_config, validate
from kinect_occlusion.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid_and_paths_resolve():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg.deeplab.checkpoint == str(ROOT / "recordings" / "demo_model.pt")
    assert cfg.sam.points_per_side == 40 and cfg.sam.pred_iou_thresh == 0.9
    assert cfg.bus.endpoints("bed1")[0].endswith("bed1-in")


def test_errors_name_the_field(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("camera: {fps: 31}\nbus: {frontend: 'http://x'}\nsam: {nope: 1}\n")
    with pytest.raises(UserError) as exc:
        load_config(p)
    text = str(exc.value)
    assert "camera.fps" in text and "bus.frontend" in text and "sam.nope" in text


def test_malformed_yaml_is_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("camera: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(p)


def test_roi_resolution_clips_to_frame():
    cfg = Config.model_validate({"roi": {"mode": "fixed", "box": [600, 400, 1000, 1000]}})
    assert cfg.roi.resolve(1280, 720) == (600, 400, 680, 320)


def test_validate_config_command(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fuser: {max_partition_age_ms: -1}\n")
    run = [sys.executable, "-m", "kinect_occlusion", "validate-config"]
    ok = subprocess.run([*run, str(ROOT / "config.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout
    res = subprocess.run([*run, str(bad)], capture_output=True, text=True)
    assert res.returncode == 2  # README: 2 = bad input
    assert "fuser.max_partition_age_ms" in res.stderr and "Traceback" not in res.stderr
    missing = subprocess.run([*run, str(tmp_path / "none.yaml")], capture_output=True, text=True)
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_config_of_random_bytes_is_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"camera:\n  id: \xff\xfe\x00bed\n")
    with pytest.raises(UserError, match=r"not a text file \(byte 14 is not UTF-8\)"):
        load_config(p)


def test_section_that_is_not_a_mapping_is_reported_even_with_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    for text in ("camera: 5\n", "camera: [1, 2]\n"):
        p.write_text(text)
        # replay merges {camera: {source: mkv, ...}} into the file's camera section
        with pytest.raises(UserError, match="camera: Input should be a valid dictionary"):
            load_config(p, {"camera": {"source": "mkv", "mkv_path": "x.mkv"}})


@pytest.mark.parametrize(
    "section, match",
    [
        ({"camera": {"synthetic_size": [0, 0]}}, "camera.synthetic_size"),
        ({"camera": {"synthetic_size": [32, 24]}}, "camera.synthetic_size"),
        ({"camera": {"reconnect_backoff_s": [5, 1]}}, "camera.reconnect_backoff_s"),
        ({"camera": {"source": "mkv", "mkv_path": None}}, "camera.mkv_path must name a recording"),
        ({"logging": {"file": "logs/"}}, "logging.file"),
        ({"logging": {"file": ""}}, "logging.file"),
    ],
)
def test_camera_and_logging_values_that_cannot_work_are_refused(section, match):
    with pytest.raises(UserError, match=match):
        validate(section)


@pytest.mark.parametrize("box", [[0, 0, 32, 24], [0, 0, 16, 12], [10, 10, 1, 1], [0, 0, 0, 100]])
def test_roi_too_small_to_partition_is_one_clear_line(tmp_path, box):
    p = tmp_path / "c.yaml"
    p.write_text(f"roi: {{mode: fixed, box: {box}}}\nsam: {{skip_when_no_occlusion: false}}\n")
    with pytest.raises(UserError) as exc:
        load_config(p)
    text = str(exc.value)
    assert "roi" in text and "at least 32 pixels" in text and "\n" not in text


def test_smallest_roi_fits_the_superpixel_minimum_at_the_default_work_scale():
    from kinect_occlusion.config import MIN_ROI_SIDE, SuperpixelConfig
    from kinect_occlusion.sam.superpixel import MIN_SIDE

    assert MIN_ROI_SIDE * SuperpixelConfig().work_scale >= MIN_SIDE
    cfg = Config.model_validate({"roi": {"mode": "fixed", "box": [0, 0, MIN_ROI_SIDE, MIN_ROI_SIDE]}})
    assert cfg.roi.resolve(1280, 720) == (0, 0, 32, 32)
