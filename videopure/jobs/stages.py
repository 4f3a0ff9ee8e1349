"""The three stages of dataset purification, as small callables over row dicts.

``ClipDecoder`` (CPU, one row) → ``ClipPurifier`` (GPU, a batch of rows; optionally classifies the purified clips)
→ ``ClipWriter`` (CPU, one row → its manifest row). ``videopure purify`` chains them in one process; the Ray
pipeline runs each in its own actors. A row is a plain dict of numbers, strings and numpy arrays:

- decoded: ``id, path, label, class_name, status`` ("decoded" | "decode_error"), ``error``, ``clip`` (uint8
  (T, H, W, C); empty on error), ``decode_s``
- purified: adds ``purified`` (float32 (C, T, H, W), unclamped), ``purify_s``, and with a classifier ``logits``
- written: the manifest row (JSON-serialisable; no arrays)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch

from videopure.config import to_dict
from videopure.data import ClipRecord, DecodeWorker, VideoDecodeError, read_clip, to_float_clip, write_video
from videopure.devices import resolve_device
from videopure.diffusion.presets import has_weights, load_network
from videopure.manifest import atomic_write
from videopure.purify import DiffusionPurifier

logger = logging.getLogger(__name__)

Row = dict[str, Any]
EMPTY_CLIP = np.zeros((0,), dtype=np.uint8)


@dataclass(frozen=True)
class DatasetConfig:
    root: Path
    layout: Literal["ucf101", "hmdb51", "list", "folder"] = "ucf101"
    split: int = 1
    subset: Literal["train", "test"] = "test"
    annotations: Optional[Path] = None  # split-file folder (ucf101/hmdb51) or list file (list)
    limit: Optional[int] = None  # first N clips of the split
    num_frames: int = 16
    stride: Optional[int] = None  # None: uniform sampling over the video
    size: Optional[int] = None  # short side after decoding
    crop: Optional[int] = None  # centre crop
    backend: Literal["auto", "decord", "pyav"] = "auto"
    decode_timeout: float = 60.0


@dataclass(frozen=True)
class DiffusionConfig:
    model: str  # preset name, or a JSON file of create_adm kwargs / a Score-SDE config
    checkpoint: Optional[Path] = None
    allow_random_weights: bool = False  # run without a checkpoint (untrained network: dry runs only)


@dataclass(frozen=True)
class PurifierConfig:
    t_star: float = 0.15
    dt: float = 1e-3
    noise: Literal["independent", "shared"] = "independent"
    seed: int = 0
    frame_batch: Optional[int] = None
    precision: Literal["float32", "bfloat16", "float16"] = "float32"
    channels_last: bool = False


@dataclass(frozen=True)
class ClassifierConfig:
    checkpoint: Path  # a videopure classifier checkpoint (videopure finetune / save_classifier)


@dataclass(frozen=True)
class OutputConfig:
    dir: Path
    mp4: bool = True  # purified clip as an mp4 (clamped to [0, 1], 8-bit)
    arrays: bool = False  # purified clip as float16 .npz (unclamped)
    fps: int = 25
    figure_clips: int = 2  # clips shown in figure.png (clean / purified)


def record_row(record: ClipRecord) -> Row:
    return {"id": record.id, "path": str(record.path), "label": record.label, "class_name": record.class_name}


class ClipDecoder:
    """Decode one record's clip in a kill-able worker process (a hang is a ``DecodeTimeoutError``, not a stall)."""

    def __init__(self, data: DatasetConfig):
        self.data = data
        self.worker = DecodeWorker(timeout=data.decode_timeout)

    def __call__(self, row: Row) -> Row:
        data = self.data
        start = time.perf_counter()
        try:
            clip = read_clip(row["path"], data.num_frames, stride=data.stride, size=data.size, crop=data.crop, backend=data.backend, worker=self.worker)
            status, error = "decoded", ""
        except VideoDecodeError as exc:
            logger.warning("skipping %s: %s", row["id"], exc)
            clip, status, error = EMPTY_CLIP, "decode_error", str(exc)
        return {**row, "clip": clip, "status": status, "error": error, "decode_s": time.perf_counter() - start}

    def close(self) -> None:
        self.worker.close()


def check_diffusion_weights(diffusion: DiffusionConfig) -> None:
    """Refuse a network without trained weights unless ``allow_random_weights`` (then warn: a dry run)."""
    if has_weights(diffusion.model, diffusion.checkpoint):
        return
    if not diffusion.allow_random_weights:
        raise ValueError(
            f"diffusion.checkpoint is not set and {diffusion.model!r} ships no weights: give the weights file, or set "
            "diffusion.allow_random_weights=true for a dry run"
        )
    logger.warning("no diffusion checkpoint: purifying with an UNTRAINED network (dry run)")


class ClipPurifier:
    """Purify a batch of decoded rows on one device; with a classifier, also classify the purified clips."""

    def __init__(self, diffusion: DiffusionConfig, purifier: PurifierConfig, classifier: ClassifierConfig | None = None, device: str = "auto"):
        check_diffusion_weights(diffusion)
        self.device = resolve_device(device)
        net = load_network(diffusion.model, diffusion.checkpoint)
        self.purifier = DiffusionPurifier(net, **to_dict(purifier)).to(self.device)
        self.classifier = None
        if classifier is not None:
            from videopure.models import load_classifier

            self.classifier = load_classifier(classifier.checkpoint).to(self.device).eval()

    def __call__(self, rows: Sequence[Row]) -> list[Row]:
        """Every returned row has the same keys (rows that failed to decode get empty arrays)."""
        empty = {"purified": np.zeros((0,), np.float32), "purify_s": 0.0}
        if self.classifier is not None:
            empty["logits"] = np.zeros((0,), np.float32)
        done = [{**row, **empty} for row in rows]
        for group in _same_shape_groups([row for row in done if row["status"] == "decoded"]):
            clips = to_float_clip(np.stack([row["clip"] for row in group])).to(self.device)
            start = time.perf_counter()
            with torch.no_grad():
                purified = self.purifier(clips, clip_ids=[row["id"] for row in group])
                logits = self.classifier(purified.clamp(0, 1)) if self.classifier is not None else None
            seconds = (time.perf_counter() - start) / len(group)
            for i, row in enumerate(group):
                row["purified"] = purified[i].float().cpu().numpy()
                row["purify_s"] = seconds
                if logits is not None:
                    row["logits"] = logits[i].float().cpu().numpy()
        return done


class ClipWriter:
    """Write a purified row's outputs atomically and return its manifest row."""

    def __init__(self, output: OutputConfig):
        self.output = output

    def __call__(self, row: Row) -> Row:
        manifest_row = {"id": row["id"], "label": int(row["label"]), "class_name": row["class_name"]}
        if row["status"] != "decoded":
            return {**manifest_row, "status": row["status"], "error": row["error"]}
        start = time.perf_counter()
        purified = torch.from_numpy(np.asarray(row["purified"], dtype=np.float32))
        clean = to_float_clip(row["clip"])
        manifest_row.update(
            status="ok",
            outputs=self._write(row["id"], purified),
            mean_abs_change=round(float((purified - clean).abs().mean()), 5),
        )
        if "logits" in row:
            logits = np.asarray(row["logits"], dtype=np.float64)
            manifest_row.update(logits=[round(float(v), 5) for v in logits], prediction=int(logits.argmax()))
            manifest_row["correct"] = manifest_row["prediction"] == manifest_row["label"]
        manifest_row["seconds"] = {
            "decode": round(float(row["decode_s"]), 4),
            "purify": round(float(row["purify_s"]), 4),
            "write": round(time.perf_counter() - start, 4),
        }
        return manifest_row

    def _write(self, clip_id: str, purified: torch.Tensor) -> dict[str, str]:
        output, written = self.output, {}
        stem = Path(clip_id).with_suffix("")
        if output.mp4:
            frames = (purified.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (T, H, W, C)
            path = atomic_write(output.dir / "purified" / stem.with_suffix(".mp4"), lambda p: write_video(p, frames, fps=output.fps))
            written["mp4"] = str(path.relative_to(output.dir))
        if output.arrays:
            array = purified.numpy().astype(np.float16)
            path = atomic_write(output.dir / "arrays" / stem.with_suffix(".npz"), lambda p: np.savez_compressed(p, clip=array))
            written["npz"] = str(path.relative_to(output.dir))
        return written


def _same_shape_groups(rows: list[Row]) -> list[list[Row]]:
    """Rows whose clips have one shape (videos of different sizes without a crop do not stack)."""
    groups: dict[tuple[int, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row["clip"].shape), []).append(row)
    return list(groups.values())
