"""Fine-tune a registry classifier on a dataset split; resumable epoch by epoch, with the same numbers.

:func:`finetune` trains on the ``train`` subset of a split and validates (top-1, one centre clip) on ``test``
after every epoch. Videos are decoded in DataLoader worker processes; one that does not decode is logged with
its path and reason and left out, never ending the run. Mixed precision (bf16/fp16 with a GradScaler) on the
device, AdamW or SGD, a cosine learning rate after a linear warmup, stepped per batch.

Files in ``output_dir``: ``last.pt`` and ``best.pt`` (videopure classifier checkpoints, for
:func:`~videopure.models.load_classifier`), ``resume.pt`` (weights, optimizer, scheduler, scaler, epoch, best
accuracy: written last, atomically, so it always names a complete epoch), ``metrics.jsonl`` (one row per epoch)
and ``config.json``.

Determinism: every random choice derives from ``config.seed``: the model's fresh head, the shuffling and each
clip's augmentation (per epoch and clip id), dropout and the adversarial starts (the global RNG is seeded per epoch
inside ``torch.random.fork_rng``, so the caller's RNG state is untouched). A run stopped after any epoch and resumed
ends with the same weights and metrics as one that ran through, whatever the number of loader workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional

import torch
from torch.nn import functional as F
from tqdm import tqdm

from videopure.checkpoints import load_strict, read_checkpoint
from videopure.config import to_dict
from videopure.data import DatasetSplit, load_split
from videopure.devices import resolve_device
from videopure.manifest import Manifest, atomic_write
from videopure.models.checkpoint import load_classifier, load_zoo_weights, save_classifier
from videopure.models.classifier import VideoClassifier
from videopure.models.clip_dataset import (
    Batch,
    ClipDataset,
    ClipSampling,
    EpochShuffle,
    EvalViews,
    SkippedVideo,
    TrainView,
    derive_seed,
    make_loader,
)
from videopure.models.evaluate import AccuracyMeter, Precision, autocast, evaluate_batches
from videopure.models.registry import create_classifier
from videopure.models.smooth_adversarial import SmoothAdversarialConfig, smooth_pgd

logger = logging.getLogger(__name__)

__all__ = [
    "DataConfig",
    "EpochMetrics",
    "FinetuneConfig",
    "FinetuneResult",
    "ModelConfig",
    "OptimConfig",
    "finetune",
]


@dataclass(frozen=True)
class ModelConfig:
    """The classifier and its initial weights: pytorchvideo zoo weights, a videopure checkpoint, or none (scratch).

    Attributes:
        name: registry name (``videopure.models.list_classifiers()``).
        zoo_weights: a pytorchvideo model-zoo ``.pyth`` file (Kinetics-400); its head is replaced.
        checkpoint: a videopure classifier checkpoint with as many classes as the dataset.
        overrides: ``create_classifier`` overrides (input spec fields, builder arguments such as ``dropout_rate``).
    """

    name: str
    zoo_weights: Optional[Path] = None
    checkpoint: Optional[Path] = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.zoo_weights is not None and self.checkpoint is not None:
            raise ValueError("'zoo_weights' and 'checkpoint' are both set: initialise from one of them")
        if self.checkpoint is not None and self.overrides:
            raise ValueError("'overrides' cannot change a model loaded from 'checkpoint' (it records its own build)")


@dataclass(frozen=True)
class DataConfig:
    """The dataset: training on the ``train`` subset of ``split``, validation on ``test``.

    Attributes:
        root: dataset root.
        layout: ``ucf101`` / ``hmdb51`` (official split files), or ``list`` (mmaction2-style list files).
        split: official split, 1-3.
        annotations: the split-file folder (default: found in or beside ``root``); ``list``: the training list.
        val_annotations: ``list`` layout: the validation list.
        num_frames, stride: frames per clip and their spacing (default: the model's input spec).
        scale: training short side = the model's ``short_side`` × a factor drawn from this range.
        hflip: random horizontal flips in training (off when left/right is part of the class).
        field_amplitude: in training, add to every frame a random smooth colour field of this amplitude on the
            [0, 1] scale (0: off); smooth changes are what a diffusion purifier lets through, so a classifier
            meant to sit behind one learns to ignore them.
        field_cells: grid sizes, one drawn per clip: a field is ``cells × cells`` random values bilinearly
            enlarged to the crop (the crop size itself gives per-pixel noise).
        backend: video decoder.
        decode_timeout: seconds allowed per video in a killable worker process (``None``: in-process).
        num_workers: DataLoader processes decoding videos (0: decode in the training process).
    """

    root: Path
    layout: Literal["ucf101", "hmdb51", "list"] = "ucf101"
    split: int = 1
    annotations: Optional[Path] = None
    val_annotations: Optional[Path] = None
    num_frames: Optional[int] = None
    stride: Optional[int] = None
    scale: tuple[float, float] = (1.0, 1.25)
    hflip: bool = True
    field_amplitude: float = 0.0
    field_cells: tuple[int, ...] = (8,)
    backend: Literal["auto", "decord", "pyav"] = "auto"
    decode_timeout: Optional[float] = 60.0
    num_workers: int = 4

    def __post_init__(self) -> None:
        if self.layout == "list" and (self.annotations is None or self.val_annotations is None):
            raise ValueError("layout 'list' needs 'annotations' (training list) and 'val_annotations' (validation list)")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"'scale' must be a range (low, high) with 0 < low <= high, got {list(self.scale)}")
        if not 0.0 <= self.field_amplitude <= 1.0 or not self.field_cells or min(self.field_cells) < 1:
            raise ValueError(
                f"'field_amplitude' must lie in [0, 1] and 'field_cells' be grid sizes >= 1, "
                f"got {self.field_amplitude} and {list(self.field_cells)}"
            )
        if self.num_workers < 0:
            raise ValueError(f"'num_workers' must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and schedule. Norm weights and biases get no weight decay.

    Attributes:
        name: ``sgd`` (with momentum) or ``adamw``.
        lr: peak learning rate, reached after the warmup; then a cosine to 0 at the end of the last epoch.
        warmup_epochs: linear warmup from ``lr / warmup steps`` (may be fractional; 0: none).
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, warmup_epochs >= 0; got {self.lr}, {self.weight_decay}, {self.warmup_epochs}"
            )


@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning run (``configs/finetune_*.yaml``); with ``adversarial``, every training batch is first moved
    by a smooth adversarial perturbation (:mod:`videopure.models.smooth_adversarial`)."""

    model: ModelConfig
    data: DataConfig
    output_dir: Path
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    batch_size: int = 8
    precision: Precision = "float32"
    channels_last: bool = False
    device: str = "auto"
    seed: int = 0
    adversarial: Optional[SmoothAdversarialConfig] = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.seed < 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, seed >= 0; got {self.epochs}, {self.batch_size}, {self.seed}")


@dataclass(frozen=True)
class EpochMetrics:
    """One row of ``metrics.jsonl``."""

    epoch: int
    lr: float  # at the end of the epoch
    train_loss: float
    train_top1: float
    val_top1: float
    val_top5: float
    train_skipped: int
    val_skipped: int
    seconds: float


@dataclass(frozen=True)
class FinetuneResult:
    output_dir: Path
    best_epoch: int
    best_top1: float
    history: tuple[EpochMetrics, ...]
    skipped: tuple[SkippedVideo, ...]  # videos left out in this call (train or validation)

    @property
    def best_checkpoint(self) -> Path:
        return self.output_dir / BEST

    @property
    def last_checkpoint(self) -> Path:
        return self.output_dir / LAST

    def to_dict(self) -> dict[str, Any]:
        return {**to_dict(self), "best_checkpoint": str(self.best_checkpoint), "last_checkpoint": str(self.last_checkpoint)}


LAST, BEST, STATE, METRICS = "last.pt", "best.pt", "resume.pt", "metrics.jsonl"


@dataclass
class _Training:
    """Everything that changes during training; ``epoch`` is the last completed one."""

    model: VideoClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    epoch: int = 0
    best_top1: float = -1.0
    best_epoch: int = 0


def finetune(
    config: FinetuneConfig,
    *,
    resume: bool = False,
    on_epoch_end: Callable[[EpochMetrics], None] | None = None,
) -> FinetuneResult:
    """Train as ``config`` says, or with ``resume`` continue the run in ``config.output_dir`` after its last epoch.

    ``on_epoch_end`` is called with each epoch's metrics once its checkpoint is written (an exception there stops
    the run; it resumes from that epoch).
    """
    out = config.output_dir
    train_split, val_split = _load_splits(config.data)
    if len(train_split.records) < config.batch_size or not val_split.records:
        raise ValueError(
            f"{config.data.root}: {len(train_split.records)} training and {len(val_split.records)} validation videos; "
            f"need at least batch_size={config.batch_size} and 1"
        )
    device = resolve_device(config.device)
    class_names = train_split.class_names
    model = _load_model(config, out / LAST) if resume else _new_model(config, class_names, out)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    sampling = ClipSampling.from_spec(model.spec, config.data.num_frames, config.data.stride)
    data = config.data
    common = {"backend": data.backend, "decode_timeout": data.decode_timeout}
    train_set = ClipDataset(train_split.records, sampling, TrainView(data.scale, data.hflip, data.field_amplitude, data.field_cells), seed=config.seed, **common)
    val_set = ClipDataset(val_split.records, sampling, EvalViews(), **common)
    sampler = EpochShuffle(len(train_set), config.seed)
    loader_options = {"num_workers": data.num_workers, "seed": config.seed, "pin_memory": device.type == "cuda"}
    train_loader = make_loader(train_set, batch_size=config.batch_size, sampler=sampler, drop_last=True, **loader_options)
    val_loader = make_loader(val_set, batch_size=config.batch_size, **loader_options)

    state = _new_training(model, config, device, len(train_loader))
    history: list[EpochMetrics] = []
    if resume:
        history = _restore(state, out, config)
    skip_log = _SkipLog()
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            with _seeded(derive_seed(config.seed, epoch), device):
                loss, train_top1, train_skipped = _train_epoch(state, train_loader, config, device, epoch)
            val = evaluate_batches(
                model, val_loader, class_names, device=device, precision=config.precision,
                channels_last=config.channels_last, desc="validate",
            )
            metrics = EpochMetrics(
                epoch=epoch,
                lr=state.scheduler.get_last_lr()[0],
                train_loss=loss,
                train_top1=train_top1,
                val_top1=val.top1,
                val_top5=val.top5,
                train_skipped=skip_log.add(train_skipped, "training"),
                val_skipped=skip_log.add(val.skipped, "validation"),
                seconds=round(time.perf_counter() - started, 3),
            )
            _save_epoch(state, metrics, config, train_split)
            history.append(metrics)
            logger.info(
                "epoch %d/%d: train loss %.4f top-1 %.4f, val top-1 %.4f top-5 %.4f, lr %.3g, %.1f s",
                epoch, config.epochs, loss, train_top1, val.top1, val.top5, metrics.lr, metrics.seconds,
            )
            if on_epoch_end is not None:
                on_epoch_end(metrics)
    finally:
        train_set.close()
        val_set.close()
    return FinetuneResult(out, state.best_epoch, state.best_top1, tuple(history), skip_log.videos())


def _load_splits(data: DataConfig) -> tuple[DatasetSplit, DatasetSplit]:
    if data.layout == "list":
        train = load_split(data.root, "list", annotations=data.annotations)
        return train, load_split(data.root, "list", annotations=data.val_annotations, class_names=train.class_names)
    train, val = (load_split(data.root, data.layout, data.split, s, annotations=data.annotations) for s in ("train", "test"))
    return train, val


def _new_model(config: FinetuneConfig, class_names: tuple[str, ...], out: Path) -> VideoClassifier:
    """The initial classifier, in a fresh output folder (a folder holding a run needs ``resume``)."""
    if (out / STATE).exists() or (out / LAST).exists():
        raise ValueError(f"{out} already holds a fine-tuning run: resume it (--resume) or choose another output_dir")
    spec = config.model
    if spec.checkpoint is not None:
        model = load_classifier(spec.checkpoint)
        if model.name != spec.name or model.num_classes != len(class_names):
            raise ValueError(
                f"model.checkpoint {spec.checkpoint} holds a {model.num_classes}-class '{model.name}'; the config asks "
                f"for '{spec.name}' with the dataset's {len(class_names)} classes"
            )
        if model.class_names not in (None, class_names):
            logger.warning("%s was trained with other class names; they are replaced by the dataset's", spec.checkpoint)
    else:
        with _seeded(derive_seed(config.seed), torch.device("cpu")):  # the fresh head (or net) from the seed
            model = create_classifier(spec.name, len(class_names), **spec.overrides)
        if spec.zoo_weights is not None:
            load_zoo_weights(model, spec.zoo_weights)
        else:
            logger.info("%s: training from scratch (no zoo_weights or checkpoint)", spec.name)
    model.class_names = class_names
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "config.json", lambda p: p.write_text(json.dumps(to_dict(config), indent=2) + "\n"))
    return model


def _load_model(config: FinetuneConfig, last: Path) -> VideoClassifier:
    """The architecture of an existing run (its weights come from ``resume.pt``)."""
    if not (last.parent / STATE).exists():
        raise ValueError(f"nothing to resume: {last.parent / STATE} does not exist (run without --resume first)")
    return load_classifier(last)


def _new_training(model: VideoClassifier, config: FinetuneConfig, device: torch.device, steps_per_epoch: int) -> _Training:
    optim = config.optim
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if optim.name == "sgd":
        optimizer = torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum)
    else:
        optimizer = torch.optim.AdamW(groups, lr=optim.lr)
    warmup = round(optim.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup, config.epochs * steps_per_epoch))
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "float16")
    return _Training(model, optimizer, scheduler, scaler)


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR factor at a step: linear up to 1 over ``warmup`` steps, then a cosine down to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """The global RNGs (CPU and ``device``) seeded inside, restored after: for dropout and weight init."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(seed)
        yield


def _train_epoch(
    state: _Training, loader: Any, config: FinetuneConfig, device: torch.device, epoch: int
) -> tuple[float, float, list[SkippedVideo]]:
    """One pass over ``loader``: mean loss, top-1 on the training clips, the videos skipped."""
    model = state.model
    model.train()
    meter = AccuracyMeter(model.class_names)
    loss_sum, skipped = 0.0, []
    bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False, disable=None)
    for batch in bar:
        skipped.extend(batch.skipped)
        if batch.ids:
            logits, loss = _train_step(state, batch, config, device)
            meter.update(logits, batch.labels, batch.ids)
            loss_sum += loss * len(batch.ids)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{state.scheduler.get_last_lr()[0]:.3g}")
        state.scheduler.step()
    return (loss_sum / meter.total if meter.total else math.nan), meter.top1, skipped


def _train_step(state: _Training, batch: Batch, config: FinetuneConfig, device: torch.device) -> tuple[torch.Tensor, float]:
    labels = batch.labels.to(device, non_blocking=True)
    clips = batch.clips(device, config.channels_last)
    with autocast(device, config.precision):
        if config.adversarial is not None:
            clips = _smooth_adversarial(state.model, clips, labels, config.adversarial)
        logits = state.model(clips)
    loss = F.cross_entropy(logits.float(), labels)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    return logits.detach(), float(loss.detach())


def _smooth_adversarial(model: VideoClassifier, clips: torch.Tensor, labels: torch.Tensor, adversarial: SmoothAdversarialConfig) -> torch.Tensor:
    """The batch moved by :func:`smooth_pgd` at a grid size drawn from ``adversarial.cells``."""
    cells = adversarial.cells[int(torch.randint(len(adversarial.cells), ()))]
    return smooth_pgd(model, clips, labels, budget=adversarial.radius, cells=cells, steps=adversarial.steps)


def _save_epoch(state: _Training, metrics: EpochMetrics, config: FinetuneConfig, split: DatasetSplit) -> None:
    """best.pt (when better), last.pt, the metrics row, then resume.pt: the commit point of the epoch."""
    out = config.output_dir
    state.epoch = metrics.epoch
    extra = {"epoch": metrics.epoch, "val_top1": metrics.val_top1, "val_top5": metrics.val_top5, "config": to_dict(config)}
    where = {"dataset": Path(split.root).name, "split": split.split, "extra": extra}
    if metrics.val_top1 > state.best_top1:
        state.best_top1, state.best_epoch = metrics.val_top1, metrics.epoch
        save_classifier(state.model, out / BEST, **where)
    save_classifier(state.model, out / LAST, **where)
    Manifest(out / METRICS).append(asdict(metrics))
    record = {
        "epoch": state.epoch,
        "best_top1": state.best_top1,
        "best_epoch": state.best_epoch,
        "model": {k: v.detach().cpu() for k, v in state.model.net.state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict(),
        "config": to_dict(config),
    }
    atomic_write(out / STATE, lambda p: torch.save(record, p))


def _restore(state: _Training, out: Path, config: FinetuneConfig) -> list[EpochMetrics]:
    """Load ``resume.pt`` into ``state``; keep the metrics rows up to its epoch; return them."""
    record = read_checkpoint(out / STATE)
    changed = _changed_fields(record["config"], to_dict(config))
    if changed:
        logger.warning("resuming %s with a changed config (%s): the result will differ from an uninterrupted run", out, ", ".join(changed))
    load_strict(state.model.net, record["model"], f"{out / STATE} (model '{state.model.name}')")
    state.optimizer.load_state_dict(record["optimizer"])
    state.scheduler.load_state_dict(record["scheduler"])
    state.scaler.load_state_dict(record["scaler"])
    state.epoch, state.best_top1, state.best_epoch = record["epoch"], record["best_top1"], record["best_epoch"]
    rows = [row for row in Manifest(out / METRICS).rows() if row["epoch"] <= state.epoch]
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    atomic_write(out / METRICS, lambda p: p.write_text(text))
    logger.info("resuming %s after epoch %d of %d (best val top-1 %.4f at epoch %d)", out, state.epoch, config.epochs, state.best_top1, state.best_epoch)
    return [EpochMetrics(**row) for row in rows]


def _changed_fields(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two ``to_dict`` configs."""
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = sorted(set(saved) | set(current))
        return [name for key in keys for name in _changed_fields(saved.get(key), current.get(key), f"{prefix}{key}.")]
    return [] if saved == current else [prefix.rstrip(".")]


class _SkipLog:
    """The videos skipped in this call: each logged (path and reason) the first time it is skipped."""

    def __init__(self) -> None:
        self._videos: dict[str, SkippedVideo] = {}

    def add(self, videos: list[SkippedVideo] | tuple[SkippedVideo, ...], subset: str) -> int:
        for video in videos:
            if video.id not in self._videos:
                logger.warning("skipped %s video %s (%s): %s", subset, video.id, video.path, video.reason)
                self._videos[video.id] = video
        return len(videos)

    def videos(self) -> tuple[SkippedVideo, ...]:
        return tuple(self._videos.values())
