"""``export-triton`` with the SAM encoder: bad input is one clear line and exit 2 (no server needed)."""

from __future__ import annotations

import torch
from harness import cli

from kinect_occlusion.sam.partition import build_tiny_sam


def one_line_error(done, code: int = 2) -> str:
    """stderr of a failed command: exactly one line, no traceback, exit ``code``."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


def test_no_model_is_one_line(tmp_path):
    err = one_line_error(cli("export-triton", "--out", str(tmp_path / "repo")))
    assert "give --checkpoint (coarse model), --sam-checkpoint (SAM encoder) or both" in err


def test_missing_sam_checkpoint_is_one_line(tmp_path):
    missing = tmp_path / "nope.pth"
    err = one_line_error(
        cli("export-triton", "--sam-checkpoint", str(missing), "--out", str(tmp_path / "repo"))
    )
    assert f"SAM checkpoint not found: {missing}" in err and "--sam-checkpoint" in err


def test_checkpoint_of_another_model_is_one_line(tmp_path):
    other = tmp_path / "other.pth"
    torch.save(build_tiny_sam(0, embed_dim=16).state_dict(), other)  # not the tiny architecture
    args = ("--sam-checkpoint", str(other), "--sam-model", "tiny", "--out", str(tmp_path / "repo"))
    err = one_line_error(cli("export-triton", *args))
    assert "does not match --sam-model=tiny" in err and "check --sam-checkpoint and --sam-model" in err
    assert not (tmp_path / "repo" / "sam_encoder").exists()


def test_one_name_for_both_models_is_one_line(tmp_path):
    args = (
        "--checkpoint",
        "a.pt",
        "--sam-checkpoint",
        "b.pth",
        "--sam-name",
        "deeplab",
        "--out",
        str(tmp_path),
    )
    err = one_line_error(cli("export-triton", *args))
    assert "--name and --sam-name are both 'deeplab'" in err
