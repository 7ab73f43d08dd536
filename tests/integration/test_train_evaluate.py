"""train → best/last/log, --resume, evaluate table and outputs, augment-preview, through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kinect_occlusion.cli import main
from kinect_occlusion.deeplab.model import load_checkpoint

SIZE = 64


def make_dataset(folder: Path, n: int = 8, seed: int = 0) -> Path:
    """n textured 64×48 images with 1–2 bright polygons each, as a Label Studio export."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    tasks = []
    for i in range(n):
        img = rng.integers(0, 90, (48, 64, 3), dtype=np.uint8)
        regions = []
        for j in range(1 + i % 2):
            x, y = rng.integers(4, 40), rng.integers(4, 28)
            poly = np.array([[x, y], [x + 18, y + 2], [x + 10, y + 16]])
            cv2.fillPoly(img, [poly.astype(np.int32)], (230, 230, 240))
            pts = [[px / 64 * 100, py / 48 * 100] for px, py in poly.tolist()]
            regions.append(
                {
                    "id": f"r{j}",
                    "type": "polygonlabels",
                    "original_width": 64,
                    "original_height": 48,
                    "value": {"points": pts, "polygonlabels": ["tube"]},
                }
            )
        name = f"scene_{i:04d}.png"
        cv2.imwrite(str(folder / "images" / name), img)
        tasks.append(
            {
                "id": i,
                "data": {"image": f"/data/upload/1/{i:08x}-{name}"},
                "annotations": [{"id": 100 + i, "result": regions}],
            }
        )
    path = folder / "annotations.json"
    path.write_text(json.dumps(tasks))
    return path


def train_args(data: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--backbone",
        "mobilenet_v3_large",
        "--input-size",
        str(SIZE),
        "--device",
        "cpu",
        *extra,
    ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    data = make_dataset(root / "data")
    torch.set_num_threads(2)
    assert main(train_args(data, root / "run", 2)) == 0
    return data, root / "run"


def test_train_writes_loadable_checkpoints_and_logs(run_dir) -> None:
    data, run = run_dir
    for name in ("best.pt", "last.pt", "log.csv", "log.jsonl", "config.json", "split.json"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"lr", "train_loss", "val_loss", "iou", "auc", "seconds"} <= set(rows[0])
    assert float(rows[0]["lr"]) == pytest.approx(1e-2)
    loaded = load_checkpoint(run / "best.pt")
    assert loaded.backbone == "mobilenet_v3_large" and loaded.input_size == SIZE
    assert loaded.meta["trained"] and len(loaded.meta["split"]["test"]) == 1
    assert load_checkpoint(run / "last.pt").meta["train_state"]["run"]["epoch"] == 2
    config = json.loads((run / "config.json").read_text())
    assert config["data_summary"]["images"] == 8 and config["backbone"] == "mobilenet_v3_large"


def test_resume_continues_at_next_epoch_and_refuses_overwrite(run_dir, tmp_path: Path) -> None:
    data, run = run_dir
    resumed = tmp_path / "run"
    resumed.mkdir()
    for name in ("last.pt", "best.pt", "log.csv", "log.jsonl"):
        (resumed / name).write_bytes((run / name).read_bytes())
    # Without --resume an existing run is refused (exit 2, one line)
    assert main(train_args(data, resumed, 3)) == 2
    assert main(train_args(data, resumed, 3, "--resume")) == 0
    epochs = [json.loads(line)["epoch"] for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    last = torch.load(resumed / "last.pt", weights_only=True)
    assert last["meta"]["train_state"]["run"]["epoch"] == 3
    assert last["meta"]["train_state"]["scheduler"]["last_epoch"] == 3
    before = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    key = next(k for k in before if k.endswith("weight"))
    assert not torch.equal(before[key], last["state_dict"][key])


def test_evaluate_prints_six_metrics_for_coarse_and_fused(run_dir, tmp_path: Path, capsys) -> None:
    data, run = run_dir
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--data",
        str(data),
        "--checkpoint",
        str(run / "best.pt"),
        "--split",
        "all",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--n-segments",
        "40",
        "--panels",
        "3",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert all(h in lines[0] for h in ("Accuracy", "Precision", "Recall", "F1", "IOU", "AUC"))
    assert lines[1].startswith("Coarse") and lines[2].startswith("Fused") and lines[3].startswith("Delta")
    assert all(len(line.split()) >= 7 for line in lines[1:4])
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_images"] == 8 and set(summary["coarse"]) == set(summary["fused"])
    assert len(summary["coarse"]) == 6
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 8 and "fused_iou" in rows[0]
    assert sorted(p.name for p in (out / "panels").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert cv2.imread(str(out / "panels" / "0000.png")).shape[1] > 4 * 48


def test_evaluate_uses_checkpoint_test_split(run_dir, capsys) -> None:
    data, run = run_dir
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(data),
                "--checkpoint",
                str(run / "best.pt"),
                "--device",
                "cpu",
                "--n-segments",
                "40",
            ]
        )
        == 0
    )
    assert "(1 images" in capsys.readouterr().out


def test_augment_preview_writes_grid(run_dir, tmp_path: Path) -> None:
    data, _ = run_dir
    assert (
        main(
            [
                "augment-preview",
                str(data),
                "--out",
                str(tmp_path),
                "--n",
                "4",
                "--size",
                "64",
                "--copy-paste",
                "0.5",
            ]
        )
        == 0
    )
    grid = cv2.imread(str(tmp_path / "augment_preview.png"))
    assert grid is not None and grid.shape[0] >= 2 * 64 and grid.shape[1] >= 2 * 64


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.json" in err[0]
    assert main(["evaluate", "--data", str(tmp_path / "x.json"), "--checkpoint", str(tmp_path / "c.pt")]) == 2
