"""deeplab.onnx_cache: a (re)started onnx worker runs the kept export without importing torch, and a
cache entry that lies (its card, its graph, a folder open to others) is never run: exported again."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
from harness import tiny_checkpoint

from kinect_occlusion.config import DeepLabConfig
from kinect_occlusion.deeplab.onnx_cache import cache_key, lookup
from kinect_occlusion.deeplab.worker import build_predictor

CHILD = """
import sys, numpy as np
from kinect_occlusion.config import DeepLabConfig
from kinect_occlusion.deeplab.worker import build_predictor
dl = DeepLabConfig(checkpoint=sys.argv[1], onnx_cache=sys.argv[2])  # runtime and device: auto
predictor, card = build_predictor(dl)
np.save(sys.argv[3], predictor.predict(np.load(sys.argv[4]), None))
print("torch imported" if "torch" in sys.modules else "no torch", card.backbone, card.input_size)
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One export for the module: (checkpoint, its cache folder, a frame, that frame's mask)."""
    folder = tmp_path_factory.mktemp("pristine")
    ckpt = tiny_checkpoint(folder / "model.pt")
    rgb = np.random.default_rng(0).integers(0, 256, (48, 80, 3), np.uint8)
    predictor, _ = build_predictor(config(ckpt, folder / "cache"))  # exports (torch) and keeps it
    return ckpt, folder / "cache", rgb, predictor.predict(rgb, None)


@pytest.fixture
def setup(pristine, tmp_path):
    """(checkpoint, a copy of the pristine cache folder, the frame, its mask) for one test."""
    ckpt, folder, rgb, expected = pristine
    shutil.copytree(folder, tmp_path / "cache")
    np.save(tmp_path / "rgb.npy", rgb)
    return ckpt, tmp_path / "cache", rgb, expected


def config(ckpt, folder, **kw) -> DeepLabConfig:
    return DeepLabConfig(checkpoint=str(ckpt), onnx_cache=str(folder), runtime="onnx", **kw)


def entry(folder, ckpt):
    key = cache_key(ckpt)
    return folder / f"{key}.json", folder / f"{key}.onnx"


def test_a_second_start_runs_the_kept_export_without_torch(pristine, tmp_path):
    ckpt, folder, rgb, expected = pristine  # the first start exported and kept it
    card_file, graph = entry(folder, ckpt)
    assert card_file.is_file() and graph.is_file()
    assert (folder.stat().st_mode & 0o777) == 0o700
    np.save(tmp_path / "rgb.npy", rgb)
    args = [str(ckpt), str(folder), str(tmp_path / "out.npy"), str(tmp_path / "rgb.npy")]
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["no", "torch", "resnet18", "64"]
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)  # the same graph, bit for bit


def test_another_checkpoint_is_another_entry(pristine, tmp_path):
    ckpt = pristine[0]
    other = tmp_path / "other.pt"
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    assert cache_key(other) != cache_key(ckpt)


LIES = {
    "input size out of bounds": lambda card, graph: card.update(input_size=10**6),
    "NaN mean": lambda card, graph: card.update(mean=[float("nan"), 0.5, 0.5]),
    "zero std": lambda card, graph: card.update(std=[0.0, 0.2, 0.2]),
    "another backbone": lambda card, graph: card.update(backbone="resnet50"),
    "a cut graph": lambda card, graph: graph.write_bytes(graph.read_bytes()[:100]),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_an_entry_that_lies_is_exported_again_and_replaced(setup, lie, caplog):
    ckpt, folder, rgb, expected = setup
    dl = config(ckpt, folder, backbone="resnet18")
    card_file, graph = entry(folder, ckpt)
    card = json.loads(card_file.read_text())
    LIES[lie](card, graph)
    card_file.write_text(json.dumps(card))
    with caplog.at_level(logging.WARNING):
        predictor, got = build_predictor(dl)
    assert (got.backbone, got.input_size) == ("resnet18", 64)
    assert np.array_equal(predictor.predict(rgb, None), expected)
    kept = lookup(folder, cache_key(ckpt))  # the entry was written again, true this time
    assert kept is not None and kept[1] == got
    if lie != "another backbone":  # that one is a miss for this config only: nothing to warn
        assert "exporting again" in caplog.text


def test_a_folder_others_can_write_is_never_read(setup, caplog):
    ckpt, folder, rgb, _ = setup
    folder.chmod(0o777)
    with caplog.at_level(logging.WARNING):
        assert lookup(folder, cache_key(ckpt)) is None
        predictor, _ = build_predictor(config(ckpt, folder))  # still runs: exported again
    assert "group/world-writable" in caplog.text
    assert predictor.predict(rgb, None).shape == rgb.shape[:2]


def test_null_keeps_nothing_and_auto_keeps_it_under_xdg_cache_home(pristine, tmp_path, monkeypatch):
    ckpt = pristine[0]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    build_predictor(DeepLabConfig(checkpoint=str(ckpt), onnx_cache=None, runtime="onnx"))
    assert not (tmp_path / "xdg").exists()
    build_predictor(DeepLabConfig(checkpoint=str(ckpt), runtime="onnx"))  # onnx_cache: auto
    card_file, graph = entry(tmp_path / "xdg" / "kinect-occlusion" / "onnx", ckpt)
    assert card_file.is_file() and graph.is_file()
