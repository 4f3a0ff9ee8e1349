"""Purify a dataset split in one process: decode → purify in clip batches → purified videos + manifest.

This is the library function behind ``videopure purify``; the Ray pipeline runs the same steps in actors.
Every clip gets one manifest row (``ok``, ``missing`` or ``decode_error`` with its reason), written only after its
outputs are in place, so a rerun resumes where a run stopped and never redoes or duplicates a clip.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from videopure.config import to_dict
from videopure.data import ClipRecord, DecodeWorker, VideoDecodeError, load_split, read_clip, to_float_clip, write_video
from videopure.diffusion.presets import load_network
from videopure.devices import resolve_device
from videopure.figures import save_frame_grid
from videopure.manifest import Manifest, atomic_write
from videopure.purify import DiffusionPurifier

logger = logging.getLogger(__name__)


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
class OutputConfig:
    dir: Path
    mp4: bool = True  # purified clip as an mp4 (clamped to [0, 1], 8-bit)
    arrays: bool = False  # purified clip as float16 .npz (unclamped)
    fps: int = 25
    figure_clips: int = 2  # clips shown in figure.png (clean / purified / difference)


@dataclass(frozen=True)
class PurifyJob:
    dataset: DatasetConfig
    diffusion: DiffusionConfig
    output: OutputConfig
    purifier: PurifierConfig = field(default_factory=PurifierConfig)
    device: str = "auto"
    clips_per_batch: int = 4


def purify_dataset(job: PurifyJob) -> dict[str, Any]:
    """Run (or resume) ``job``; returns the summary also written to ``summary.json``."""
    out = job.output.dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "run_config.json", lambda p: p.write_text(json.dumps(to_dict(job), indent=2)))
    data = job.dataset
    split = load_split(data.root, data.layout, data.split, data.subset, annotations=data.annotations)
    records = split.records[: data.limit] if data.limit is not None else split.records
    manifest = Manifest(out / "manifest.jsonl")
    done = manifest.done_ids()
    for problem in split.problems:
        if problem.path not in done:
            manifest.append({"id": problem.path, "status": "missing", "error": f"{problem.source}: {problem.reason}"})
    todo = [record for record in records if record.id not in done]
    logger.info("%d clips in %s split %d/%s; %d already done, %d to purify", len(records), data.layout, data.split, data.subset, len(records) - len(todo), len(todo))

    if not todo:
        summary = _summarise(manifest, 0.0, 0)
        atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
        return summary
    device = resolve_device(job.device)
    purifier = _build_purifier(job).to(device)
    shown: dict[str, Tensor] = {}
    started = time.perf_counter()
    with DecodeWorker(timeout=data.decode_timeout) as worker, tqdm(total=len(todo), desc="purify", unit="clip") as bar:
        for start in range(0, len(todo), job.clips_per_batch):
            batch = todo[start : start + job.clips_per_batch]
            decoded = _decode(batch, data, worker, manifest)
            for records_, clips in _group_by_shape(decoded):
                t0 = time.perf_counter()
                with torch.no_grad():
                    purified = purifier(clips.to(device), clip_ids=[r.id for r in records_]).cpu()
                seconds = (time.perf_counter() - t0) / len(records_)
                for record, clean, result in zip(records_, clips, purified):
                    outputs = _write_outputs(job.output, record, result)
                    manifest.append(_row(record, "ok", outputs=outputs, seconds=round(seconds, 3), mean_abs_change=round(float((result - clean).abs().mean()), 5)))
                    if len(shown) < 2 * job.output.figure_clips:
                        shown[f"{Path(record.id).stem}\nclean"] = clean
                        shown[f"{Path(record.id).stem}\npurified"] = result
            bar.update(len(batch))

    summary = _summarise(manifest, time.perf_counter() - started, len(todo))
    atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    if shown:
        save_frame_grid(shown, out / "figure.png", title=f"t*={job.purifier.t_star}, noise={job.purifier.noise}")
    return summary


def _build_purifier(job: PurifyJob) -> DiffusionPurifier:
    spec = job.diffusion
    if spec.checkpoint is None and not spec.allow_random_weights:
        raise ValueError(
            "diffusion.checkpoint is not set: give the weights file, or set diffusion.allow_random_weights=true for a dry run"
        )
    if spec.checkpoint is None:
        logger.warning("no diffusion checkpoint: purifying with an UNTRAINED network (dry run)")
    net = load_network(spec.model, spec.checkpoint)
    settings = to_dict(job.purifier)
    return DiffusionPurifier(net, **settings)


def _decode(batch: Sequence[ClipRecord], data: DatasetConfig, worker: DecodeWorker, manifest: Manifest) -> list[tuple[ClipRecord, Tensor]]:
    decoded = []
    for record in batch:
        try:
            clip = read_clip(record.path, data.num_frames, stride=data.stride, size=data.size, crop=data.crop, backend=data.backend, worker=worker)
        except VideoDecodeError as exc:
            logger.warning("skipping %s: %s", record.id, exc)
            manifest.append(_row(record, "decode_error", error=str(exc)))
            continue
        decoded.append((record, to_float_clip(clip)))
    return decoded


def _group_by_shape(decoded: list[tuple[ClipRecord, Tensor]]) -> list[tuple[list[ClipRecord], Tensor]]:
    """Clips of equal shape stacked into one batch (videos of different sizes without a crop do not stack)."""
    groups: dict[tuple[int, ...], list[tuple[ClipRecord, Tensor]]] = {}
    for record, clip in decoded:
        groups.setdefault(tuple(clip.shape), []).append((record, clip))
    return [([r for r, _ in items], torch.stack([c for _, c in items])) for items in groups.values()]


def _write_outputs(output: OutputConfig, record: ClipRecord, purified: Tensor) -> dict[str, str]:
    written = {}
    stem = Path(record.id).with_suffix("")
    if output.mp4:
        frames = (purified.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (T, H, W, C)
        path = atomic_write(output.dir / "purified" / stem.with_suffix(".mp4"), lambda p: write_video(p, frames, fps=output.fps))
        written["mp4"] = str(path.relative_to(output.dir))
    if output.arrays:
        array = purified.numpy().astype(np.float16)
        path = atomic_write(output.dir / "arrays" / stem.with_suffix(".npz"), lambda p: np.savez_compressed(p, clip=array))
        written["npz"] = str(path.relative_to(output.dir))
    return written


def _row(record: ClipRecord, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": record.id, "label": record.label, "class_name": record.class_name, "status": status, **fields}


def _summarise(manifest: Manifest, seconds: float, processed: int) -> dict[str, Any]:
    rows = list(manifest.rows())
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    changes = [row["mean_abs_change"] for row in rows if row["status"] == "ok"]
    return {
        "clips": len(rows),
        "by_status": counts,
        "this_run": {"clips": processed, "seconds": round(seconds, 2), "clips_per_s": round(processed / seconds, 4) if seconds > 0 else None},
        "mean_abs_change": round(sum(changes) / len(changes), 5) if changes else None,
        "errors": [{"id": row["id"], "status": row["status"], "error": row["error"]} for row in rows if row["status"] != "ok"],
    }
