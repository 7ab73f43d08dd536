"""The training loop's bookkeeping: early stopping, Ctrl-C, refusing to overwrite (compute faked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_training_data import ls_export

from kinect_occlusion.deeplab.model import load_checkpoint
from kinect_occlusion.errors import UserError
from kinect_occlusion.training import train as tr


@pytest.fixture
def fast_epochs(monkeypatch):
    """Replace the forward/backward passes: validation IoU follows the list given, then stays flat."""
    ious: list[float] = []
    calls = {"train": 0}

    def fake_train(model, loader, opt, loss_fn, device, desc):
        calls["train"] += 1
        assert len(loader.dataset) >= 1
        return 0.5

    def fake_validate(model, loader, loss_fn, device):
        iou = ious.pop(0) if ious else 0.1
        return 0.4, {"accuracy": 0.9, "precision": 0.5, "recall": 0.5, "f1": 0.5, "iou": iou, "auc": 0.7}

    monkeypatch.setattr(tr, "train_one_epoch", fake_train)
    monkeypatch.setattr(tr, "validate", fake_validate)
    return ious, calls


def options(tmp_path: Path, **kw) -> tr.TrainOptions:
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["scene_0000.png", "scene_0001.png"], "val": ["scene_0002.png"]}))
    base = dict(
        data=ls_export(tmp_path),
        split_file=split,
        out=tmp_path / "run",
        epochs=20,
        batch_size=2,
        backbone="resnet18",
        input_size=32,
        patience=3,
        device="cpu",
        copy_paste=0.0,
    )
    base.update(kw)
    return tr.TrainOptions(**base)


def test_early_stop_keeps_best_epoch(tmp_path: Path, fast_epochs) -> None:
    ious, calls = fast_epochs
    ious += [0.2, 0.5, 0.4, 0.45, 0.3]
    result = tr.train(options(tmp_path))
    assert result.stopped_early and result.epochs_run == 5 and result.best_epoch == 2
    assert result.best_iou == 0.5 and calls["train"] == 5
    assert load_checkpoint(tmp_path / "run" / "best.pt").meta["epoch"] == 2
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    # The cosine schedule moved the learning rate every epoch
    assert rows[0]["lr"] == pytest.approx(1e-2) and rows[1]["lr"] < rows[0]["lr"]
    with pytest.raises(UserError, match="--resume"):
        tr.train(options(tmp_path))


def test_ctrl_c_writes_interrupted_and_resume_restarts_the_epoch(
    tmp_path: Path, fast_epochs, monkeypatch
) -> None:
    _, calls = fast_epochs
    real = tr.train_one_epoch

    def interrupt_in_epoch_3(*args):
        if calls["train"] == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(tr, "train_one_epoch", interrupt_in_epoch_3)
    result = tr.train(options(tmp_path, epochs=4, patience=10))
    run = tmp_path / "run"
    assert result.interrupted and result.epochs_run == 2
    assert (run / "interrupted.pt").is_file() and load_checkpoint(run / "interrupted.pt").meta["epoch"] == 2
    assert torch.load(run / "last.pt", weights_only=True)["meta"]["train_state"]["run"]["epoch"] == 2
    monkeypatch.setattr(tr, "train_one_epoch", real)
    resumed = tr.train(options(tmp_path, epochs=4, patience=10, resume=True))
    assert not resumed.interrupted and [r["epoch"] for r in resumed.history] == [3, 4]
    with pytest.raises(UserError, match="backbone"):
        tr.train(options(tmp_path, epochs=5, resume=True, backbone="mobilenet_v3_large"))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b"not a torch file"), id="garbage"),
        pytest.param(lambda p: torch.save({"meta": "no mapping"}, p), id="meta-not-a-mapping"),
        pytest.param(lambda p: _rewrite_state(p, lambda ts: ts.pop("optimizer")), id="optimizer-missing"),
        pytest.param(lambda p: _rewrite_state(p, lambda ts: ts.update(run={"nope": 1})), id="run-lies"),
    ],
)
def test_resume_from_a_damaged_last_pt_is_one_user_error(tmp_path: Path, fast_epochs, damage) -> None:
    ious, _ = fast_epochs
    ious += [0.2, 0.3]
    tr.train(options(tmp_path, epochs=2, patience=10))
    damage(tmp_path / "run" / "last.pt")
    with pytest.raises(UserError, match="--resume") as err:
        tr.train(options(tmp_path, epochs=3, patience=10, resume=True))
    assert "\n" not in str(err.value)


def _rewrite_state(path: Path, change) -> None:
    """Load last.pt, change its train_state in place, save it again."""
    payload = torch.load(path, weights_only=True)
    change(payload["meta"]["train_state"])
    torch.save(payload, path)
