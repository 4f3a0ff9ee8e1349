"""Purify a dataset split in one process: decode → purify (→ classify) in clip batches → purified videos + manifest.

This is the library function behind ``videopure purify``; ``pipelines/purify_dataset.py`` runs the same stages
(:mod:`videopure.jobs.stages`) in Ray actors. Every clip gets one manifest row (``ok``, ``missing`` or
``decode_error`` with its reason), written only after its outputs are in place, so a rerun resumes where a run
stopped and never redoes or duplicates a clip.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from torch import Tensor
from tqdm import tqdm

from videopure.config import to_dict
from videopure.data import ClipRecord, load_split, to_float_clip
from videopure.figures import save_frame_grid
from videopure.jobs.stages import (
    ClassifierConfig,
    ClipDecoder,
    ClipPurifier,
    ClipWriter,
    DatasetConfig,
    DiffusionConfig,
    OutputConfig,
    PurifierConfig,
    record_row,
)
from videopure.manifest import Manifest, atomic_write

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurifyJob:
    dataset: DatasetConfig
    diffusion: DiffusionConfig
    output: OutputConfig
    purifier: PurifierConfig = field(default_factory=PurifierConfig)
    classifier: Optional[ClassifierConfig] = None
    device: str = "auto"
    clips_per_batch: int = 4


def pending_records(job: PurifyJob, manifest: Manifest) -> list[ClipRecord]:
    """The split's records not yet in the manifest; listed-but-missing videos are recorded as ``missing``."""
    data = job.dataset
    split = load_split(data.root, data.layout, data.split, data.subset, annotations=data.annotations)
    records = split.records[: data.limit] if data.limit is not None else split.records
    done = manifest.done_ids()
    for problem in split.problems:
        if problem.path not in done:
            manifest.append({"id": problem.path, "status": "missing", "error": f"{problem.source}: {problem.reason}"})
    todo = [record for record in records if record.id not in done]
    logger.info(
        "%d clips in %s split %d/%s; %d already done, %d to purify",
        len(records), data.layout, data.split, data.subset, len(records) - len(todo), len(todo),
    )
    return todo


def start_run(job: PurifyJob) -> Manifest:
    """Create the output folder, save the run's config, and open its manifest."""
    job.output.dir.mkdir(parents=True, exist_ok=True)
    atomic_write(job.output.dir / "run_config.json", lambda p: p.write_text(json.dumps(to_dict(job), indent=2)))
    return Manifest(job.output.dir / "manifest.jsonl")


def purify_dataset(job: PurifyJob) -> dict[str, Any]:
    """Run (or resume) ``job`` in this process; returns the summary also written to ``summary.json``."""
    manifest = start_run(job)
    todo = pending_records(job, manifest)
    started = time.perf_counter()
    shown: dict[str, Tensor] = {}
    if todo:
        decoder = ClipDecoder(job.dataset)
        purifier = ClipPurifier(job.diffusion, job.purifier, job.classifier, job.device)
        writer = ClipWriter(job.output)
        try:
            with tqdm(total=len(todo), desc="purify", unit="clip") as bar:
                for start in range(0, len(todo), job.clips_per_batch):
                    rows = purifier([decoder(record_row(r)) for r in todo[start : start + job.clips_per_batch]])
                    for row in rows:
                        manifest.append(writer(row))
                        if row["status"] == "decoded" and len(shown) < 2 * job.output.figure_clips:
                            shown[f"{Path(row['id']).stem}\nclean"] = to_float_clip(row["clip"])
                            shown[f"{Path(row['id']).stem}\npurified"] = torch.from_numpy(row["purified"])
                    bar.update(len(rows))
        finally:
            decoder.close()
    summary = write_summary(job, manifest.rows(), time.perf_counter() - started, len(todo))
    if shown:
        save_frame_grid(shown, job.output.dir / "figure.png", title=f"t*={job.purifier.t_star}, noise={job.purifier.noise}")
    return summary


def write_summary(job: PurifyJob, rows: Iterable[dict[str, Any]], seconds: float, processed: int) -> dict[str, Any]:
    """Counts by status, accuracy on purified clips (with a classifier), time per stage; saved as summary.json."""
    rows = list(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    ok = [row for row in rows if row["status"] == "ok"]
    stage_seconds = {stage: round(sum(row["seconds"][stage] for row in ok), 3) for stage in ("decode", "purify", "write")}
    classified = [row for row in ok if "correct" in row]
    summary = {
        "clips": len(rows),
        "by_status": counts,
        "accuracy_on_purified": round(sum(row["correct"] for row in classified) / len(classified), 4) if classified else None,
        "mean_abs_change": round(sum(row["mean_abs_change"] for row in ok) / len(ok), 5) if ok else None,
        "seconds_per_stage_all_runs": stage_seconds,
        "this_run": {"clips": processed, "seconds": round(seconds, 2), "clips_per_s": round(processed / seconds, 4) if processed else None},
        "errors": [{"id": row["id"], "status": row["status"], "error": row["error"]} for row in rows if row["status"] != "ok"],
    }
    atomic_write(job.output.dir / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    return summary
