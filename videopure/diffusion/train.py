"""Train a guided-diffusion ADM ε-model on the frames of a video dataset, as a purifier for that domain.

DDPM training on guided-diffusion's discrete schedule (:meth:`VPSchedule.discrete_alpha_bar`, 1000 linear-β
steps): a frame x0 in [-1, 1], a step t uniform in {0, ..., 999} and noise ε give x_t = sqrt(ᾱ_t) x0 +
sqrt(1 − ᾱ_t) ε; the loss is the mean squared error between ε and the first 3 output channels of ``net(x_t, t)``.
That is exactly what :class:`~videopure.diffusion.ADMScore` reads at purification time (step floor(1000 τ),
score −ε / sqrt(1 − ᾱ)), so the trained network purifies unchanged.

Learned variance: with ``learn_sigma`` the network has 3 more output channels, and they are *left untrained*.
The purifier (DiffPure's reverse SDE) uses only ε, so guided-diffusion's hybrid L_vlb term would cost compute
and buy the purifier nothing. The output convolution is zero-initialised and the variance channels get no
gradient, so they stay exactly 0, which guided-diffusion reads as the log-space midpoint between β_t and the
posterior variance β̃_t: a valid variance for its own ancestral sampler, not a learned one.

Data: ``frames_per_video`` frames of every training video, resized (short side) and centre-cropped to the
model's ``image_size``, decoded once in DataLoader workers (each with a killable decode worker) and cached as
one uint8 tensor in memory; a video that does not decode is logged with its path and reason and left out.
A held-out set of frames from ``validation.videos`` test videos gives the denoising loss of the EMA weights on
a fixed grid of steps with fixed noise, at every checkpoint.

Determinism and resume: the data order (a permutation per epoch), each step's t, ε and flips, and dropout come
from generators seeded by ``(seed, step)``, never from global state. ``resume.pt`` (weights, EMA, optimizer,
grad scaler, step) is written last at every checkpoint, atomically; a run stopped anywhere and resumed ends with
the same weights as one that ran through.

Files in ``output_dir``: ``ema.pt`` (plain state dict of the EMA weights: ``load_network(model, "ema.pt")``),
``model.pt`` (raw weights, same layout), ``resume.pt``, ``metrics.jsonl`` (``kind`` ``train`` rows every
``log_every`` steps, ``val`` rows at every checkpoint), ``config.json`` (this run's config), ``network.json``
(the ``create_adm`` arguments), and at the end ``purified.png`` (validation frames purified with
:class:`~videopure.purify.DiffusionPurifier`) and ``samples.png`` (ancestral samples).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional

import torch
from torch import Tensor, nn
from tqdm import tqdm

from videopure.checkpoints import load_strict, read_checkpoint
from videopure.config import to_dict
from videopure.data import ClipRecord, load_split, to_float_clip
from videopure.devices import resolve_device
from videopure.diffusion.adm import UNetModel, create_adm
from videopure.diffusion.checkpoint import load_weights
from videopure.diffusion.presets import PRESETS, get_preset
from videopure.diffusion.schedule import VPSchedule
from videopure.figures import save_frame_grid
from videopure.manifest import Manifest, atomic_write
from videopure.models.clip_dataset import ClipDataset, ClipSampling, EvalViews, SkippedVideo, derive_seed, make_loader
from videopure.models.evaluate import Precision, autocast
from videopure.purify import DiffusionPurifier

logger = logging.getLogger(__name__)

__all__ = [
    "FrameDataConfig",
    "FrameSet",
    "OptimConfig",
    "PreviewConfig",
    "TrainDiffusionConfig",
    "TrainDiffusionResult",
    "ValidationConfig",
    "adm_arguments",
    "batch_indices",
    "ema_update",
    "epsilon_loss",
    "load_frames",
    "q_sample",
    "sample_ddpm",
    "train_diffusion",
    "validation_loss",
]

EMA, MODEL, STATE, METRICS, CONFIG, NETWORK = "ema.pt", "model.pt", "resume.pt", "metrics.jsonl", "config.json", "network.json"
PURIFIED_PNG, SAMPLES_PNG = "purified.png", "samples.png"
# Independent random streams under one run seed.
_INIT, _ORDER, _STEP, _DROPOUT, _VAL, _SAMPLES = range(6)


@dataclass(frozen=True)
class FrameDataConfig:
    """The frames: training videos of ``split``'s ``train`` subset, validation videos of its ``test`` subset.

    Attributes:
        root: dataset root.
        layout: ``ucf101`` / ``hmdb51`` (official split files) or ``list`` (mmaction2-style list files).
        split: official split, 1-3.
        annotations: the split-file folder (default: found in or beside ``root``); ``list``: the training list.
        val_annotations: ``list`` layout: the validation list.
        frames_per_video: frames taken from each video (a centred window ``frame_stride`` apart; a video too
            short for the window is sampled uniformly, one shorter than ``frames_per_video`` is skipped).
        frame_stride: spacing of those frames.
        hflip: flip each training frame horizontally with probability ½ (off where left/right is the class).
        backend: video decoder.
        decode_timeout: seconds allowed per video in a killable worker process (``None``: in-process).
        num_workers: DataLoader processes decoding videos for the cache (0: in this process).
    """

    root: Path
    layout: Literal["ucf101", "hmdb51", "list"] = "ucf101"
    split: int = 1
    annotations: Optional[Path] = None
    val_annotations: Optional[Path] = None
    frames_per_video: int = 16
    frame_stride: int = 1
    hflip: bool = False
    backend: Literal["auto", "decord", "pyav"] = "auto"
    decode_timeout: Optional[float] = 60.0
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.layout == "list" and (self.annotations is None or self.val_annotations is None):
            raise ValueError("layout 'list' needs 'annotations' (training list) and 'val_annotations' (validation list)")
        if self.frames_per_video < 1 or self.frame_stride < 1 or self.num_workers < 0:
            raise ValueError(
                f"need frames_per_video >= 1, frame_stride >= 1, num_workers >= 0; "
                f"got {self.frames_per_video}, {self.frame_stride}, {self.num_workers}"
            )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warmup to ``lr`` over ``warmup_steps``, then constant (as DDPM), and gradient clipping.

    Attributes:
        grad_clip: maximum global gradient norm (``None``: no clipping; the norm is logged either way).
    """

    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 500
    grad_clip: Optional[float] = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, warmup_steps >= 0, grad_clip > 0 or null; "
                f"got {self.lr}, {self.weight_decay}, {self.warmup_steps}, {self.grad_clip}"
            )


@dataclass(frozen=True)
class ValidationConfig:
    """The held-out denoising loss: ``frames`` frames (evenly spaced) of ``videos`` test videos (evenly spaced),
    each noised to every step of ``timesteps`` with noise fixed by the run seed; computed at every checkpoint."""

    videos: int = 16
    frames: int = 64
    timesteps: tuple[int, ...] = (10, 50, 100, 200, 400, 700)
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.videos < 1 or self.frames < 1 or self.batch_size < 1 or not self.timesteps:
            raise ValueError("need videos >= 1, frames >= 1, batch_size >= 1 and at least one timestep")


@dataclass(frozen=True)
class PreviewConfig:
    """The figures written at the end: ``clips`` validation clips (``frames`` frames each) purified at ``t_star``
    with step ``dt`` (``purified.png``), and ``samples`` ancestral samples in ``sample_steps`` steps (``samples.png``).
    0 clips or 0 samples leaves that figure out."""

    clips: int = 2
    frames: int = 4
    t_star: float = 0.1
    dt: float = 1e-3
    samples: int = 8
    sample_steps: int = 50

    def __post_init__(self) -> None:
        if self.clips < 0 or self.frames < 1 or self.samples < 0 or self.sample_steps < 1:
            raise ValueError("need clips >= 0, frames >= 1, samples >= 0, sample_steps >= 1")


@dataclass(frozen=True)
class TrainDiffusionConfig:
    """A diffusion training run (``configs/train_diffusion_*.yaml``).

    Attributes:
        model: an ADM preset name or a JSON file of ``create_adm`` arguments (``configs/diffusion/*.json``).
        init_checkpoint: start from these weights (e.g. an official checkpoint, to adapt it to a new domain);
            ``None``: guided-diffusion's random initialisation from ``seed``.
        steps: optimizer steps in all.
        ema_rate: EMA decay per step; with ``ema_warmup`` the decay is min(ema_rate, (1 + step) / (10 + step))
            (Score-SDE's ``ExponentialMovingAverage``), so a short run's EMA does not stay near the initialisation.
        checkpoint_every: steps between checkpoints (weights, validation loss, ``resume.pt``); the last step is one.
        log_every: steps between ``train`` rows of ``metrics.jsonl``; divides ``checkpoint_every``.
        precision: autocast dtype on the device (``float32``: none; ``float16`` adds a gradient scaler).
    """

    model: str
    data: FrameDataConfig
    output_dir: Path
    init_checkpoint: Optional[Path] = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    steps: int = 10000
    batch_size: int = 64
    ema_rate: float = 0.999
    ema_warmup: bool = True
    checkpoint_every: int = 1000
    log_every: int = 50
    precision: Precision = "float32"
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.seed < 0:
            raise ValueError(f"need steps >= 1, batch_size >= 1, seed >= 0; got {self.steps}, {self.batch_size}, {self.seed}")
        if not 0.0 <= self.ema_rate < 1.0:
            raise ValueError(f"'ema_rate' must lie in [0, 1), got {self.ema_rate}")
        if self.log_every < 1 or self.checkpoint_every < 1 or self.checkpoint_every % self.log_every:
            raise ValueError(
                f"'checkpoint_every' ({self.checkpoint_every}) must be a positive multiple of 'log_every' ({self.log_every})"
            )


@dataclass(frozen=True)
class FrameSet:
    """Decoded frames: training frames uint8 ``(N, S, S, C)``, validation clips uint8 ``(V, T, S, S, C)``."""

    train: Tensor
    val: Tensor
    val_ids: tuple[str, ...]
    skipped: tuple[SkippedVideo, ...]


@dataclass(frozen=True)
class TrainDiffusionResult:
    output_dir: Path
    step: int
    train_frames: int
    val_loss: Optional[float]  # EMA weights, at the last checkpoint
    skipped: tuple[SkippedVideo, ...]

    @property
    def ema_checkpoint(self) -> Path:
        return self.output_dir / EMA

    def to_dict(self) -> dict[str, Any]:
        return {**to_dict(self), "ema_checkpoint": str(self.ema_checkpoint)}


@dataclass
class _Training:
    """Everything that changes during training; ``step`` counts the completed optimizer steps."""

    net: UNetModel
    ema: UNetModel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int = 0


def train_diffusion(
    config: TrainDiffusionConfig,
    *,
    resume: bool = False,
    on_checkpoint: Callable[[int], None] | None = None,
) -> TrainDiffusionResult:
    """Train as ``config`` says, or with ``resume`` continue the run in ``config.output_dir`` from its last checkpoint.

    ``on_checkpoint`` is called with the step after each checkpoint is written (an exception there stops the run;
    it resumes from that checkpoint).
    """
    out = config.output_dir
    _check_output_dir(out, resume)
    arguments = adm_arguments(config.model)
    device = resolve_device(config.device)
    state = _new_training(config, arguments, device)
    frames = load_frames(config.data, arguments["image_size"], config.validation.videos)
    if frames.train.shape[0] < config.batch_size or frames.val.shape[0] == 0:
        raise ValueError(
            f"{config.data.root}: {frames.train.shape[0]} training frames and {frames.val.shape[0]} validation videos "
            f"decoded; need at least batch_size={config.batch_size} and 1"
        )
    val_frames = _validation_frames(frames.val, config.validation.frames)
    alpha_bar = VPSchedule().discrete_alpha_bar().to(device)
    if resume:
        _restore(state, config)
    else:
        _write_run_files(config, arguments)
        _log_validation(state, val_frames, alpha_bar, config, device)
    _train(state, frames.train, alpha_bar, val_frames, config, device, on_checkpoint)
    with torch.no_grad():
        if config.preview.clips:
            _write_purified(state.ema, frames, config, device)
        if config.preview.samples:
            _write_samples(state.ema, config)
    val_rows = [row for row in Manifest(out / METRICS).rows() if row["kind"] == "val"]
    val_loss = val_rows[-1]["val_loss"] if val_rows else None
    return TrainDiffusionResult(out, state.step, frames.train.shape[0], val_loss, frames.skipped)


# -- the network ------------------------------------------------------------------------------------------------------


def adm_arguments(model: str) -> dict[str, Any]:
    """The ``create_adm`` arguments of an ADM preset name or a JSON file; checked to be an unconditional ADM."""
    if model in PRESETS:
        preset = get_preset(model)
        if preset.family != "adm":
            raise ValueError(f"model '{model}' is a {preset.family} preset; train-diffusion trains ADM networks")
        arguments = dict(preset.config)
    else:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model {model!r} is neither an ADM preset nor a JSON file of create_adm arguments")
        arguments = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(arguments, dict) or "model" in arguments:
            raise ValueError(f"{path}: expected a JSON object of create_adm arguments (Score-SDE configs are not trained here)")
    if arguments.get("class_cond") or arguments.get("use_fp16"):
        raise ValueError(
            f"model {model!r}: class_cond and use_fp16 must be false (the purifier is unconditional; "
            "mixed precision is the run's 'precision' setting)"
        )
    return arguments


def _initial_network(config: TrainDiffusionConfig, arguments: dict[str, Any]) -> UNetModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, _INIT))
        net = create_adm(**arguments)
    if config.init_checkpoint is not None:
        load_weights(net, config.init_checkpoint, f"initial weights for {config.model}")
    return net


def _new_training(config: TrainDiffusionConfig, arguments: dict[str, Any], device: torch.device) -> _Training:
    net = _initial_network(config, arguments).to(device).train()
    ema = copy.deepcopy(net).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "float16")
    return _Training(net, ema, optimizer, scaler)


# -- data -------------------------------------------------------------------------------------------------------------


def load_frames(data: FrameDataConfig, image_size: int, val_videos: int) -> FrameSet:
    """Decode the training frames and ``val_videos`` validation videos (evenly spaced over the test subset)."""
    if data.layout == "list":
        train = load_split(data.root, "list", annotations=data.annotations)
        test = load_split(data.root, "list", annotations=data.val_annotations, class_names=train.class_names)
    else:
        train, test = (load_split(data.root, data.layout, data.split, s, annotations=data.annotations) for s in ("train", "test"))
    picks = _evenly_spaced(len(test.records), val_videos)
    train_clips, _, train_skipped = _decode(train.records, data, image_size, "training")
    val_clips, val_ids, val_skipped = _decode([test.records[i] for i in picks.tolist()], data, image_size, "validation")
    frames = FrameSet(train_clips.flatten(0, 1), val_clips, val_ids, train_skipped + val_skipped)
    logger.info(
        "cached %d training frames (%.1f MB) and %d validation videos at %dx%d; %d videos skipped",
        frames.train.shape[0], frames.train.numel() / 2**20, frames.val.shape[0], image_size, image_size, len(frames.skipped),
    )
    return frames


def _decode(
    records: list[ClipRecord], data: FrameDataConfig, size: int, subset: str
) -> tuple[Tensor, tuple[str, ...], tuple[SkippedVideo, ...]]:
    """uint8 ``(V, T, S, S, C)`` of the videos that decode, their ids, and the skipped ones (each logged)."""
    sampling = ClipSampling(data.frames_per_video, data.frame_stride, crop_size=size, short_side=size)
    dataset = ClipDataset(records, sampling, EvalViews(), backend=data.backend, decode_timeout=data.decode_timeout)
    clips, ids, skipped = [], [], []
    try:
        loader = make_loader(dataset, batch_size=8, num_workers=data.num_workers)
        for batch in tqdm(loader, desc=f"decode {subset} videos", unit="batch", leave=False, disable=None):
            for video in batch.skipped:
                logger.warning("skipped %s video %s (%s): %s", subset, video.id, video.path, video.reason)
            if batch.ids:
                clips.append(batch.frames[:, 0])
            ids.extend(batch.ids)
            skipped.extend(batch.skipped)
    finally:
        dataset.close()
    empty = torch.empty((0, data.frames_per_video, size, size, 3), dtype=torch.uint8)
    return (torch.cat(clips) if clips else empty), tuple(ids), tuple(skipped)


def _validation_frames(clips: Tensor, count: int) -> Tensor:
    """``count`` frames evenly spaced over the validation clips ``(V, T, S, S, C)`` → ``(count, S, S, C)``."""
    frames = clips.flatten(0, 1)
    return frames[_evenly_spaced(frames.shape[0], count)]


def _evenly_spaced(size: int, count: int) -> Tensor:
    """``min(count, size)`` distinct indices spread evenly over ``range(size)``, first and last included."""
    return torch.linspace(0, size - 1, min(count, size)).round().long().unique()


def _to_model_range(frames: Tensor) -> Tensor:
    """uint8 frames ``(N, S, S, C)`` → float ``(N, C, S, S)`` in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


@functools.lru_cache(maxsize=2)
def _epoch_order(size: int, seed: int, epoch: int) -> Tensor:
    generator = torch.Generator().manual_seed(derive_seed(seed, _ORDER, epoch))
    return torch.randperm(size, generator=generator)


def batch_indices(size: int, batch_size: int, seed: int, step: int) -> Tensor:
    """Frame indices of ``step`` (1-based): consecutive slices of one permutation of the ``size`` frames per epoch."""
    positions = torch.arange((step - 1) * batch_size, step * batch_size)
    epochs = positions // size
    return torch.cat([_epoch_order(size, seed, int(e))[positions[epochs == e] % size] for e in epochs.unique()])


# -- the objective ----------------------------------------------------------------------------------------------------


def q_sample(x0: Tensor, t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε for frames ``(N, C, H, W)`` at integer steps ``t`` ``(N,)``."""
    a = alpha_bar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * eps


def epsilon_loss(net: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """Per-frame mean squared error ``(N,)`` between ε and the network's first C output channels at x_t."""
    predicted = net(q_sample(x0, t, eps, alpha_bar), t)[:, : x0.shape[1]]
    return (predicted.float() - eps).pow(2).flatten(1).mean(1)


def ema_update(ema: nn.Module, net: nn.Module, rate: float) -> None:
    """ema ← rate · ema + (1 − rate) · net for every parameter; buffers are copied."""
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1.0 - rate)
        for target, source in zip(ema.buffers(), net.buffers()):
            target.copy_(source)


def _ema_rate(config: TrainDiffusionConfig, step: int) -> float:
    return min(config.ema_rate, (1 + step) / (10 + step)) if config.ema_warmup else config.ema_rate


def _learning_rate(optim: OptimConfig, step: int) -> float:
    return optim.lr * min(1.0, step / optim.warmup_steps) if optim.warmup_steps else optim.lr


# -- training ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StepInputs:
    """What one step draws from its generator (on the CPU, so every device sees the same numbers)."""

    indices: Tensor
    t: Tensor
    eps: Tensor
    flip: Tensor

    @classmethod
    def draw(cls, frames: Tensor, config: TrainDiffusionConfig, step: int, num_steps: int) -> _StepInputs:
        generator = torch.Generator().manual_seed(derive_seed(config.seed, _STEP, step))
        n, size, _, channels = frames.shape
        t = torch.randint(0, num_steps, (config.batch_size,), generator=generator)
        eps = torch.randn((config.batch_size, channels, size, size), generator=generator)
        flip = torch.rand(config.batch_size, generator=generator) < 0.5
        return cls(batch_indices(n, config.batch_size, config.seed, step), t, eps, flip & config.data.hflip)

    def x0(self, frames: Tensor, device: torch.device) -> Tensor:
        x0 = _to_model_range(frames[self.indices].to(device, non_blocking=True))
        return torch.where(self.flip.to(device).view(-1, 1, 1, 1), x0.flip(-1), x0)


def _train(
    state: _Training,
    frames: Tensor,
    alpha_bar: Tensor,
    val_frames: Tensor,
    config: TrainDiffusionConfig,
    device: torch.device,
    on_checkpoint: Callable[[int], None] | None,
) -> None:
    """Steps ``state.step + 1 .. config.steps``: a ``train`` row every ``log_every``, a checkpoint every ``checkpoint_every``."""
    window = _Window()
    steps = range(state.step + 1, config.steps + 1)
    bar = tqdm(steps, desc="train", unit="step", initial=state.step, total=config.steps, disable=None)
    with _private_rng(device):
        for step in bar:
            inputs = _StepInputs.draw(frames, config, step, alpha_bar.shape[0])
            torch.manual_seed(derive_seed(config.seed, _DROPOUT, step))
            loss, grad_norm = _train_step(state, inputs, frames, alpha_bar, config, device)
            window.add(loss, grad_norm)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{_learning_rate(config.optim, step):.2g}")
            if step % config.log_every == 0 or step == config.steps:
                Manifest(config.output_dir / METRICS).append(window.row(step, _learning_rate(config.optim, step)))
            if step % config.checkpoint_every == 0 or step == config.steps:
                _log_validation(state, val_frames, alpha_bar, config, device)
                _save_checkpoint(state, config)
                if on_checkpoint is not None:
                    on_checkpoint(step)


def _train_step(
    state: _Training, inputs: _StepInputs, frames: Tensor, alpha_bar: Tensor, config: TrainDiffusionConfig, device: torch.device
) -> tuple[float, float]:
    """One AdamW step on the ε loss, then the EMA update; returns the loss and the gradient norm before clipping."""
    state.step += 1
    for group in state.optimizer.param_groups:
        group["lr"] = _learning_rate(config.optim, state.step)
    with autocast(device, config.precision):
        loss = epsilon_loss(state.net, inputs.x0(frames, device), inputs.t.to(device), inputs.eps.to(device), alpha_bar).mean()
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.unscale_(state.optimizer)
    grad_norm = nn.utils.clip_grad_norm_(state.net.parameters(), config.optim.grad_clip or math.inf)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    ema_update(state.ema, state.net, _ema_rate(config, state.step))
    return float(loss.detach()), float(grad_norm)


class _Window:
    """Mean loss and gradient norm, and the speed, since the last ``train`` row."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.started = time.perf_counter()

    def add(self, loss: float, grad_norm: float) -> None:
        self.losses.append(loss)
        self.grad_norms.append(grad_norm)

    def row(self, step: int, lr: float) -> dict[str, Any]:
        seconds = time.perf_counter() - self.started
        row = {
            "kind": "train",
            "step": step,
            "loss": sum(self.losses) / len(self.losses),
            "grad_norm": sum(self.grad_norms) / len(self.grad_norms),
            "lr": lr,
            "steps_per_s": round(len(self.losses) / seconds, 4),
        }
        self.__init__()
        return row


@contextlib.contextmanager
def _private_rng(device: torch.device) -> Iterator[None]:
    """The global RNGs (CPU and ``device``) may be reseeded inside (dropout); the caller's state is restored after."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        yield


def validation_loss(
    net: nn.Module, frames: Tensor, config: TrainDiffusionConfig, alpha_bar: Tensor, device: torch.device
) -> dict[int, float]:
    """Mean ε loss of ``net`` on uint8 ``frames`` at each step of the grid, with noise fixed by (seed, step)."""
    x0 = _to_model_range(frames)
    losses = {}
    with torch.no_grad():
        for t in config.validation.timesteps:
            generator = torch.Generator().manual_seed(derive_seed(config.seed, _VAL, t))
            eps = torch.randn(x0.shape, generator=generator)
            total = 0.0
            for start in range(0, x0.shape[0], config.validation.batch_size):
                chunk = slice(start, start + config.validation.batch_size)
                steps = torch.full((x0[chunk].shape[0],), t, device=device)
                with autocast(device, config.precision):
                    total += float(epsilon_loss(net, x0[chunk].to(device), steps, eps[chunk].to(device), alpha_bar).sum())
            losses[t] = total / x0.shape[0]
    return losses


def _log_validation(state: _Training, frames: Tensor, alpha_bar: Tensor, config: TrainDiffusionConfig, device: torch.device) -> None:
    by_step = validation_loss(state.ema, frames, config, alpha_bar, device)
    mean = sum(by_step.values()) / len(by_step)
    row = {"kind": "val", "step": state.step, "val_loss": mean, "val_loss_by_t": {str(t): v for t, v in by_step.items()}}
    Manifest(config.output_dir / METRICS).append(row)
    logger.info("step %d: validation ε loss (EMA) %.4f; by step %s", state.step, mean, {t: round(v, 4) for t, v in by_step.items()})


# -- checkpoints ------------------------------------------------------------------------------------------------------


def _check_output_dir(out: Path, resume: bool) -> None:
    if resume and not (out / STATE).exists():
        raise ValueError(f"nothing to resume: {out / STATE} does not exist (run without --resume first)")
    if not resume and ((out / STATE).exists() or (out / METRICS).exists()):
        raise ValueError(f"{out} already holds a diffusion training run: resume it (--resume) or choose another output_dir")


def _write_run_files(config: TrainDiffusionConfig, arguments: dict[str, Any]) -> None:
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / CONFIG, lambda p: p.write_text(json.dumps(to_dict(config), indent=2) + "\n"))
    atomic_write(out / NETWORK, lambda p: p.write_text(json.dumps(arguments, indent=1) + "\n"))


def _cpu_state(net: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


def _save_checkpoint(state: _Training, config: TrainDiffusionConfig) -> None:
    """model.pt and ema.pt (plain state dicts), then resume.pt: the commit point of the step."""
    out = config.output_dir
    atomic_write(out / MODEL, lambda p: torch.save(_cpu_state(state.net), p))
    atomic_write(out / EMA, lambda p: torch.save(_cpu_state(state.ema), p))
    record = {
        "step": state.step,
        "model": _cpu_state(state.net),
        "ema": _cpu_state(state.ema),
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "config": to_dict(config),
    }
    atomic_write(out / STATE, lambda p: torch.save(record, p))
    logger.info("step %d: checkpoint written to %s", state.step, out)


def _restore(state: _Training, config: TrainDiffusionConfig) -> None:
    """Load ``resume.pt`` into ``state``; drop the metrics rows after its step."""
    out = config.output_dir
    record = read_checkpoint(out / STATE)
    saved, current = record["config"], to_dict(config)
    changed = sorted(key for key in current if saved.get(key) != current[key])
    if changed:
        logger.warning("resuming %s with changed config sections (%s): the result will differ from an uninterrupted run", out, ", ".join(changed))
    load_strict(state.net, record["model"], f"{out / STATE} (model)")
    load_strict(state.ema, record["ema"], f"{out / STATE} (EMA)")
    state.optimizer.load_state_dict(record["optimizer"])
    state.scaler.load_state_dict(record["scaler"])
    state.step = record["step"]
    rows = [row for row in Manifest(out / METRICS).rows() if row["step"] <= state.step]
    atomic_write(out / METRICS, lambda p: p.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)))
    logger.info("resuming %s after step %d of %d", out, state.step, config.steps)


# -- figures ----------------------------------------------------------------------------------------------------------


def sample_ddpm(
    net: nn.Module, shape: tuple[int, ...], num_steps: int, generator: torch.Generator, schedule: VPSchedule = VPSchedule()
) -> Tensor:
    """Ancestral DDPM samples ``shape`` = (N, C, S, S) in [-1, 1] on ``num_steps`` evenly spaced steps of the schedule.

    As guided-diffusion samples: the steps are respaced (β'_i = 1 − ᾱ_{s_i} / ᾱ_{s_{i-1}}), the predicted x0 is
    clipped to [-1, 1], and each step draws from the posterior q(x_{s_{i-1}} | x_{s_i}, x0) with variance β̃
    (the variance channels are not used). Noise comes from ``generator`` (CPU).
    """
    device = next(net.parameters()).device
    alpha_bar = schedule.discrete_alpha_bar()
    steps = _evenly_spaced(schedule.num_steps, num_steps)
    x = torch.randn(shape, generator=generator).to(device)
    for i in reversed(range(len(steps))):
        a, a_prev = alpha_bar[steps[i]], (alpha_bar[steps[i - 1]] if i else torch.tensor(1.0))
        beta = 1.0 - a / a_prev
        eps = net(x, steps[i].expand(shape[0]).to(device))[:, : shape[1]]
        x0 = ((x - (1.0 - a).sqrt() * eps) / a.sqrt()).clamp(-1.0, 1.0)
        x = (a_prev.sqrt() * beta * x0 + (1.0 - beta).sqrt() * (1.0 - a_prev) * x) / (1.0 - a)
        if i:
            x = x + (beta * (1.0 - a_prev) / (1.0 - a)).sqrt() * torch.randn(shape, generator=generator).to(device)
    return x


def _write_purified(ema: UNetModel, frames: FrameSet, config: TrainDiffusionConfig, device: torch.device) -> None:
    """purified.png: a few validation clips, clean and purified with the EMA weights."""
    preview = config.preview
    picks = _evenly_spaced(frames.val.shape[0], preview.clips)
    clips = to_float_clip(frames.val[picks][:, _evenly_spaced(frames.val.shape[1], preview.frames)]).to(device)
    ids = [frames.val_ids[i] for i in picks.tolist()]
    purifier = DiffusionPurifier(ema, t_star=preview.t_star, dt=preview.dt, seed=config.seed, precision=config.precision)
    purified = purifier.to(device)(clips, clip_ids=ids)
    rows = {}
    for clip, clean, clip_id in zip(purified, clips, ids):
        name = clip_id.rsplit("/", 1)[-1]
        rows[f"{name}\nclean"] = clean
        rows[f"{name}\npurified t*={preview.t_star}"] = clip
    save_frame_grid(rows, config.output_dir / PURIFIED_PNG, num_frames=preview.frames, title=f"step {config.steps}: EMA weights")


def _write_samples(ema: UNetModel, config: TrainDiffusionConfig) -> None:
    """samples.png: ancestral samples of the EMA weights."""
    preview = config.preview
    generator = torch.Generator().manual_seed(derive_seed(config.seed, _SAMPLES))
    shape = (preview.samples, ema.in_channels, ema.image_size, ema.image_size)
    samples = (sample_ddpm(ema, shape, preview.sample_steps, generator) + 1.0) / 2.0
    title = f"step {config.steps}: {preview.sample_steps}-step ancestral samples"
    save_frame_grid({"samples": samples.transpose(0, 1)}, config.output_dir / SAMPLES_PNG, num_frames=preview.samples, title=title)
