"""Fine-tune the DeepLabV3+ coarse branch (SOSS recipe), resumable, with early stopping.

Recipe: SGD (lr 1e-2, momentum 0.9, weight decay 1e-4), CosineAnnealingWarmRestarts (T_0=50,
T_mult=1, eta_min=5e-4) stepped once per epoch, cross-entropy (letterbox padding ignored), shuffled
batches, nothing frozen, early stopping on validation IoU.

Run folder: ``config.json`` (options + data summary), ``split.json``, ``log.csv`` / ``log.jsonl``
(one row per epoch), ``best.pt`` (best validation IoU) and ``last.pt`` (end of the last complete
epoch, plus optimizer/scheduler/epoch/best-so-far/RNG for ``--resume``), both in the deeplab
checkpoint format and written atomically. Ctrl-C writes ``interrupted.pt`` (the weights of the
unfinished epoch) and returns; ``--resume`` restarts that epoch from ``last.pt``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..deeplab import model as dl
from ..errors import UserError, one_line
from ..geometry import resolve_device
from .augment import IGNORE_INDEX, OcclusionDataset
from .data import Prepared, load_dataset, prepare_sample, split_samples
from .metrics import BinaryMetrics

log = logging.getLogger(__name__)
LOG_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "iou",
    "auc",
    "seconds",
)


@dataclass
class TrainOptions:
    """Everything a training run depends on (saved as the run's config.json)."""

    data: Path
    out: Path
    images: Path | None = None
    split_file: Path | None = None
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 1e-4
    t0: int = 50
    eta_min: float = 5e-4
    device: str = "auto"
    backbone: str = "resnet50"
    head: str = "standard"  # standard (paper) | lite (separable ASPP/decoder, small checkpoints)
    init: Path | None = None
    resume: bool = False
    patience: int = 10
    input_size: int = 512
    roi: str | tuple[int, int, int, int] = "full"
    copy_paste: float = 0.1
    max_paste: int = 8
    bn_momentum: float | None = None  # None: the backbone's own (MobileNetV3: 0.01, slow for short runs)
    workers: int = 0
    seed: int = 0


@dataclass
class TrainResult:
    """How a run ended."""

    epochs_run: int
    best_epoch: int
    best_iou: float
    stopped_early: bool = False
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def prepare_splits(opts: TrainOptions) -> tuple[list[Prepared], list[Prepared], dict[str, list[str]], dict]:
    """Import, split and letterbox the data: (train, val, split names, data summary)."""
    ds = load_dataset(opts.data, opts.images)
    parts = split_samples(ds.samples, seed=opts.seed, split_file=opts.split_file)
    names = {k: [s.name for s in v] for k, v in parts.items()}
    if len(parts["train"]) < 2:
        raise UserError(
            f"{opts.data}: {len(parts['train'])} training images after the split; need at least 2"
        )
    prep = {
        k: [
            prepare_sample(s, opts.input_size, opts.roi)
            for s in tqdm(parts[k], desc=f"prepare {k}", leave=False)
        ]
        for k in ("train", "val")
    }
    if not prep["val"]:
        log.warning("no validation images: early stopping uses the training images")
        prep["val"] = prep["train"]
    summary = {
        "format": ds.format,
        "images": len(ds.samples),
        "skipped": ds.report.skipped,
        "unsupported": dict(ds.report.unsupported),
        "not_annotated": ds.report.not_annotated,
        "split": {k: len(v) for k, v in names.items()},
    }
    return prep["train"], prep["val"], names, summary


def initialise(opts: TrainOptions) -> dl.DeepLabV3Plus:
    """A model from scratch, from our checkpoint, or backbone+ASPP from a torchvision state dict."""
    model = _initial_weights(opts)
    if opts.bn_momentum is not None:
        # Faster-moving BatchNorm statistics (eval-mode outputs lag far behind with 0.01 on short runs)
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.momentum = opts.bn_momentum
    return model


def _initial_weights(opts: TrainOptions) -> dl.DeepLabV3Plus:
    torch.manual_seed(opts.seed)
    if opts.init is None:
        return dl.build_model(opts.backbone, head=opts.head)
    try:
        payload = torch.load(opts.init, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"--init {opts.init}: not a readable torch file ({type(exc).__name__})") from exc
    if isinstance(payload, dict) and payload.get("format") == dl.FORMAT:
        loaded = dl.load_checkpoint(opts.init, expected_backbone=opts.backbone, config_key="--init")
        return loaded.model
    model = dl.build_model(opts.backbone, head=opts.head)
    dl.init_from_torchvision(model, opts.init)
    return model


def make_optimizer(model: nn.Module, opts: TrainOptions):
    """SGD + CosineAnnealingWarmRestarts (stepped per epoch)."""
    opt = torch.optim.SGD(
        model.parameters(), lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=opts.t0, T_mult=1, eta_min=opts.eta_min
    )
    return opt, sched


def train_one_epoch(
    model: nn.Module, loader: DataLoader, opt, loss_fn, device: torch.device, desc: str
) -> float:
    """One pass over the training batches; the mean loss."""
    model.train()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, unit="batch")
    for images, targets in bar:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        loss = loss_fn(model(images), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        total, n = total + value * len(images), n + len(images)
        bar.set_postfix(loss=f"{value:.4f}")
    return total / max(n, 1)


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, loss_fn, device: torch.device) -> tuple[float, dict]:
    """Mean loss and the six metrics (occlusion class, padding excluded) over the validation set."""
    model.eval()
    acc, total, n = BinaryMetrics(), 0.0, 0
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        logits = model(images)
        total, n = total + float(loss_fn(logits, targets)) * len(images), n + len(images)
        prob = torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy()
        tgt = targets.cpu().numpy()
        acc.update(prob, tgt == 1, valid=tgt != IGNORE_INDEX)
    return total / max(n, 1), acc.compute()


def _loader(ds: OcclusionDataset, opts: TrainOptions, shuffle_seed: int | None) -> DataLoader:
    """A DataLoader; shuffled by a generator seeded per epoch (None: in order)."""
    gen = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
    # BatchNorm cannot train on a last batch of one image: drop it
    drop = shuffle_seed is not None and len(ds) % opts.batch_size == 1
    return DataLoader(
        ds,
        batch_size=opts.batch_size,
        shuffle=gen is not None,
        generator=gen,
        drop_last=drop,
        num_workers=opts.workers,
        pin_memory=False,
    )


@dataclass
class RunState:
    """Progress saved in last.pt: completed epochs, best validation IoU so far."""

    epoch: int = 0
    best_iou: float = -1.0
    best_epoch: int = 0
    since_best: int = 0


def _meta(opts: TrainOptions, names: dict[str, list[str]], epoch: int, metrics: dict) -> dict[str, Any]:
    """Checkpoint meta: what evaluate needs to reuse the test split, and where the model came from."""
    return {
        "trained": True,
        "epoch": epoch,
        "val": {k: _finite(v) for k, v in metrics.items()},
        "data": str(opts.data),
        "roi": opts.roi,
        "seed": opts.seed,
        "split": names,
    }


def _finite(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


def save_last(
    path: Path, model, opt, sched, state: RunState, opts: TrainOptions, names: dict, metrics: dict
) -> None:
    """last.pt: weights + everything ``--resume`` needs, in the deeplab checkpoint format."""
    meta = _meta(opts, names, state.epoch, metrics)
    meta["train_state"] = {
        "run": asdict(state),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "backbone": opts.backbone,
        "input_size": opts.input_size,
    }
    dl.save_checkpoint(path, model, input_size=opts.input_size, meta=meta)


def load_last(path: Path, model, opt, sched, opts: TrainOptions) -> RunState:
    """Restore weights, optimizer, scheduler and RNG from last.pt; the saved RunState."""
    if not path.is_file():
        raise UserError(f"--resume: {path} does not exist (start without --resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding more than plain tensors
        raise UserError(
            f"--resume: {path} is unreadable ({type(exc).__name__}); start without --resume"
        ) from None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    ts = meta.get("train_state") if isinstance(meta, dict) else None
    if not isinstance(ts, dict):
        raise UserError(f"--resume: {path} holds no training state")
    if ts.get("backbone") != opts.backbone or ts.get("input_size") != opts.input_size:
        raise UserError(
            f"--resume: {path} was trained with --backbone {ts.get('backbone')} --input-size "
            f"{ts.get('input_size')}; pass the same options"
        )
    try:
        return _restore(payload, ts, model, opt, sched)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(
            f"--resume: {path} does not match this run ({type(exc).__name__}: {one_line(exc)})"
        ) from None


def _restore(payload: dict, ts: dict, model, opt, sched) -> RunState:
    """Weights, optimizer, scheduler and RNG from a last.pt payload; the saved RunState."""
    model.load_state_dict(payload["state_dict"])
    opt.load_state_dict(ts["optimizer"])
    sched.load_state_dict(ts["scheduler"])
    torch.set_rng_state(ts["torch_rng"])
    return RunState(**ts["run"])


class RunLog:
    """Appends one row per epoch to log.csv and log.jsonl."""

    def __init__(self, out: Path) -> None:
        self.csv, self.jsonl = out / "log.csv", out / "log.jsonl"

    def write(self, row: dict[str, Any]) -> None:
        """Append one epoch's row (the CSV header is written with the first row)."""
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        with self.jsonl.open("a") as f:
            f.write(json.dumps({k: _finite(v) for k, v in row.items()}) + "\n")


def _write_run_files(opts: TrainOptions, names: dict, summary: dict) -> None:
    """config.json (options + data summary) and split.json."""
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    config["data_summary"] = summary
    (opts.out / "config.json").write_text(json.dumps(config, indent=2))
    (opts.out / "split.json").write_text(json.dumps(names, indent=2))


@dataclass
class _Run:
    """What the epoch loop carries: model, optimiser, files, split names."""

    opts: TrainOptions
    model: dl.DeepLabV3Plus
    opt: torch.optim.Optimizer
    sched: Any
    names: dict[str, list[str]]
    state: RunState
    log: RunLog


def _interrupted(run: _Run, epoch: int) -> None:
    """Ctrl-C: keep the unfinished epoch's weights in interrupted.pt (last.pt stays resumable)."""
    o = run.opts
    dl.save_checkpoint(
        o.out / "interrupted.pt", run.model, input_size=o.input_size, meta=_meta(o, run.names, epoch - 1, {})
    )
    log.warning("interrupted in epoch %d: interrupted.pt written; --resume restarts the epoch", epoch)


def _end_epoch(run: _Run, row: dict[str, Any]) -> bool:
    """Best-so-far, checkpoints and the log row after one epoch; True when the epoch improved."""
    o, st, epoch = run.opts, run.state, row["epoch"]
    metrics = {k: row[k] for k in ("accuracy", "precision", "recall", "f1", "iou", "auc")}
    st.epoch = epoch
    improved = metrics["iou"] > st.best_iou
    if improved:
        st.best_iou, st.best_epoch, st.since_best = metrics["iou"], epoch, 0
        dl.save_checkpoint(
            o.out / "best.pt", run.model, input_size=o.input_size, meta=_meta(o, run.names, epoch, metrics)
        )
    else:
        st.since_best += 1
    save_last(o.out / "last.pt", run.model, run.opt, run.sched, st, o, run.names, metrics)
    run.log.write(row)
    return improved


def _setup(opts: TrainOptions) -> tuple[_Run, list[Prepared], list[Prepared], torch.device]:
    """Check the run folder, prepare the data, build (or resume) model and optimiser."""
    opts.out = Path(opts.out)
    last = opts.out / "last.pt"
    if last.exists() and not opts.resume:
        raise UserError(f"{opts.out} already holds a run (last.pt): pass --resume or choose another --out")
    opts.out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(opts.device, "--device")
    train_set, val_set, names, summary = prepare_splits(opts)
    _write_run_files(opts, names, summary)
    model = initialise(opts)
    opt, sched = make_optimizer(model, opts)
    state = load_last(last, model, opt, sched, opts) if opts.resume else RunState()
    model.to(device)
    _optimizer_to(opt, device)
    return _Run(opts, model, opt, sched, names, state, RunLog(opts.out)), train_set, val_set, device


def train(opts: TrainOptions) -> TrainResult:
    """Run (or resume) a training run into ``opts.out``; see the module docstring."""
    run, train_set, val_set, device = _setup(opts)
    st = run.state
    train_ds = OcclusionDataset(
        train_set, augment=True, copy_paste_ratio=opts.copy_paste, max_paste=opts.max_paste, seed=opts.seed
    )
    val_loader = _loader(OcclusionDataset(val_set, augment=False), opts, None)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    result = TrainResult(st.epoch, st.best_epoch, st.best_iou)
    log.info(
        "training %s on %s: %d train / %d val images, epochs %d..%d",
        opts.backbone,
        device,
        len(train_set),
        len(val_set),
        st.epoch + 1,
        opts.epochs,
    )
    for epoch in range(st.epoch + 1, opts.epochs + 1):
        t0 = time.perf_counter()
        lr = run.opt.param_groups[0]["lr"]
        train_ds.set_epoch(epoch)
        try:
            loader = _loader(train_ds, opts, opts.seed * 100003 + epoch)
            loss = train_one_epoch(
                run.model, loader, run.opt, loss_fn, device, f"epoch {epoch}/{opts.epochs}"
            )
            val_loss, metrics = validate(run.model, val_loader, loss_fn, device)
        except KeyboardInterrupt:
            _interrupted(run, epoch)
            result.interrupted = True
            return result
        run.sched.step()
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": loss,
            "val_loss": val_loss,
            **metrics,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        improved = _end_epoch(run, row)
        result.history.append(row)
        result.epochs_run, result.best_epoch, result.best_iou = epoch, st.best_epoch, st.best_iou
        log.info(
            "epoch %d: loss %.4f val_loss %.4f val IoU %.4f%s",
            epoch,
            loss,
            val_loss,
            metrics["iou"],
            " (best)" if improved else "",
        )
        if st.since_best >= opts.patience:
            log.info("early stop: no validation IoU gain for %d epochs", opts.patience)
            result.stopped_early = True
            break
    return result


def _optimizer_to(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Move a resumed optimizer's state tensors (momentum buffers) to ``device``."""
    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                st[k] = v.to(device)
