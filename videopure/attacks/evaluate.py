"""The robustness evaluation protocol, resumable clip by clip.

For every clip: R fresh purifications of the clean clip; the undefended classifier clean and under PGD at each
budget; every configured attack at every budget, its final clip purified R times afresh (evaluation draws
``0 .. R-1``, which no attack ever uses); PGD at a huge budget. One JSON row per clip is appended to
``clips.jsonl`` as soon as its batch finishes; a rerun skips the clips already there. Then ``report.json``,
``report.md``, figures, and the sanity checks (a FAIL raises :class:`SanityCheckError` after writing).

:func:`run_protocol` is the library entry point (models and clips given); :func:`evaluate` builds them from an
:class:`EvaluateJob`. Batches are fixed runs of consecutive clips in the evaluation order, so a resumed run
groups clips as the uninterrupted one did.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from videopure.attacks.config import EvalOutputConfig, EvaluateJob, Protocol, parse_budget
from videopure.attacks.cost import CostEstimate, estimate_cost, format_seconds
from videopure.attacks.defended import DefendedClassifier
from videopure.attacks.pgd import PGD
from videopure.attacks.report import (
    SanityCheckError,
    attack_key,
    build_report,
    failed_checks,
    save_budget_figure,
    save_clip_figure,
    undefended_budgets,
    undefended_key,
    write_report,
)
from videopure.config import to_dict
from videopure.data import ClipRecord, DecodeWorker, VideoDecodeError, load_split, read_clip, to_float_clip
from videopure.devices import resolve_device
from videopure.diffusion.presets import load_network
from videopure.manifest import Manifest, atomic_write
from videopure.models import VideoClassifier, create_classifier, load_classifier
from videopure.purify import DiffusionPurifier, clip_seed

logger = logging.getLogger(__name__)

MANIFEST = "clips.jsonl"
# Fields that may change between a run and its resumption (they do not change any clip's numbers).
RESUMABLE_FIELDS = ("evaluation.clips", "output.figure_clips", "output.save_adversarial", "device", "clips_per_batch", "dataset.limit", "dataset.decode_timeout")


@dataclass(frozen=True)
class ClipRef:
    """A clip to evaluate: ``load()`` returns it as (C, T, H, W) in [0, 1] or raises ``VideoDecodeError``."""

    id: str
    label: int
    class_name: str
    load: Callable[[], Tensor]


def run_protocol(
    model: DefendedClassifier,
    clips: Sequence[ClipRef],
    class_names: Sequence[str],
    protocol: Protocol,
    output: EvalOutputConfig,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate (or resume) ``clips`` under ``protocol``; returns the report also written to ``output.dir``."""
    out = output.dir
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out / MANIFEST)
    done = manifest.done_ids()
    todo = [ref for ref in clips if ref.id not in done]
    logger.info("%d clips to evaluate: %d already done, %d to go", len(clips), len(clips) - len(todo), len(todo))
    device = next(model.parameters()).device
    cost: dict[str, Any] = {}
    if todo:
        cost = _run_clips(model, clips, done, todo, class_names, protocol, output, manifest, device)
    rows_by_id = {row["id"]: row for row in manifest.rows()}
    rows = [rows_by_id[ref.id] for ref in clips if ref.id in rows_by_id]
    info = {"repeats": protocol.evaluation.repeats, "seed": protocol.seed, **(run or {})}
    report = build_report(rows, protocol, class_names, info)
    report["cost"] = {**cost, "seconds_all_runs": round(sum(r.get("seconds", 0.0) for r in rows), 1)}
    figures = [save_clip_figure(p, out / "figures" / f"{p.stem}.png", output.perturbation_gain) for p in _figure_arrays(out, clips, output)]
    budget_figure = save_budget_figure(report, out / "figures" / "accuracy_vs_budget.png")
    write_report(report, out, figures + ([budget_figure] if budget_figure else []))
    failures = failed_checks(report)
    for check in report["sanity"]:
        log = logger.error if check["status"] == "FAIL" else logger.warning if check["status"] == "WARN" else logger.info
        log("sanity %s: %s: %s", check["status"], check["check"], check["detail"])
    if failures and protocol.sanity.strict:
        raise SanityCheckError(
            f"{len(failures)} sanity check(s) failed (see {out / 'report.md'}): " + "; ".join(f"{c['check']}: {c['detail']}" for c in failures)
        )
    return report


def _run_clips(
    model: DefendedClassifier,
    clips: Sequence[ClipRef],
    done: set[str],
    todo: Sequence[ClipRef],
    class_names: Sequence[str],
    protocol: Protocol,
    output: EvalOutputConfig,
    manifest: Manifest,
    device: torch.device,
) -> dict[str, Any]:
    keep = {ref.id for ref in clips[: output.figure_clips]} | ({ref.id for ref in clips} if output.save_adversarial else set())
    estimate = _estimate(model, todo, class_names, protocol, device)
    started = time.perf_counter()
    stages = 2 + sum(len(a.budgets) for a in protocol.attacks) + int(protocol.sanity.huge_budget is not None)
    with tqdm(total=len(todo) * stages, desc="evaluate", unit="step") as bar:
        for start in range(0, len(clips), protocol.clips_per_batch):
            batch = [ref for ref in clips[start : start + protocol.clips_per_batch] if ref.id not in done]
            loaded = _load(batch, manifest, bar, stages)
            if not loaded:
                continue
            refs, tensors = zip(*loaded)
            batch_clips = torch.stack(tensors).to(device)
            rows, shown = evaluate_batch(model, batch_clips, refs, protocol, lambda: bar.update(len(refs)))
            kept = [b for b, ref in enumerate(refs) if ref.id in keep]
            if kept:
                titles = [f"{refs[b].id}: {shown.title}" + ("" if shown.attacked[b] else " (not attacked: no clean purification was right)") for b in kept]
                _save_arrays(output.dir, model, [refs[b].id for b in kept], batch_clips[kept], shown.adversarial[kept], titles)
            for row in rows:
                manifest.append(row)
    seconds = time.perf_counter() - started
    logger.info("evaluated %d clips in %s", len(todo), format_seconds(seconds))
    return {"estimate": estimate.to_dict() if estimate else None, "seconds_this_run": round(seconds, 1)}


def _estimate(
    model: DefendedClassifier, todo: Sequence[ClipRef], class_names: Sequence[str], protocol: Protocol, device: torch.device
) -> CostEstimate | None:
    """Log the cost estimate, timed on the first clip that loads."""
    for ref in todo:
        try:
            clip = ref.load()
        except VideoDecodeError:
            continue
        estimate = estimate_cost(model, protocol, clip.to(device), len(todo), len(class_names))
        logger.info("%s", estimate.describe())
        return estimate
    return None


def _load(batch: Sequence[ClipRef], manifest: Manifest, bar: tqdm, stages: int) -> list[tuple[ClipRef, Tensor]]:
    loaded = []
    for ref in batch:
        try:
            loaded.append((ref, ref.load()))
        except VideoDecodeError as exc:
            logger.warning("skipping %s: %s", ref.id, exc)
            manifest.append({"id": ref.id, "label": ref.label, "class_name": ref.class_name, "status": "error", "error": str(exc)})
            bar.update(stages)
    return loaded


def predict(model: DefendedClassifier, clips: Tensor, clip_ids: Sequence[str], repeats: int) -> Tensor:
    """(R, B) predicted classes under the evaluation draws 0 .. R-1 (one draw for the bare classifier)."""
    with torch.no_grad():
        return torch.stack([model(clips, clip_ids=clip_ids, draw=d).argmax(dim=1) for d in range(repeats)])


@dataclass(frozen=True)
class Shown:
    """The final clips of the first attack at its first budget (for figures), a title saying which, and which
    clips it attacked."""

    adversarial: Tensor
    title: str
    attacked: list[bool]


def evaluate_batch(
    model: DefendedClassifier, clips: Tensor, refs: Sequence[ClipRef], protocol: Protocol, advance: Callable[[], None]
) -> tuple[list[dict[str, Any]], Shown]:
    """Everything the protocol measures on one batch → one row per clip, and the clips figures show."""
    started = time.perf_counter()
    ids = [ref.id for ref in refs]
    labels = torch.tensor([ref.label for ref in refs], device=clips.device)
    repeats = protocol.evaluation.repeats
    rows: list[dict[str, Any]] = [
        {"id": ref.id, "label": ref.label, "class_name": ref.class_name, "status": "ok", "attacks": {}} for ref in refs
    ]
    clean = predict(model, clips, ids, repeats)
    attackable = torch.nonzero((clean == labels).any(dim=0)).flatten()
    for b, row in enumerate(rows):
        row["clean"] = {"pred": clean[:, b].tolist()}
    advance()

    bare = model.bare()
    for b, pred in enumerate(predict(bare, clips, ids, 1)[0].tolist()):
        rows[b]["undefended"] = {"clean_pred": pred, "pgd": {}}
    if protocol.evaluation.undefended_steps > 0:
        for norm, label, value in undefended_budgets(protocol):
            attack = PGD(bare, value, norm=norm, n_iter=protocol.evaluation.undefended_steps, seed=protocol.seed, stream="sanity-undefended")
            adversarial = attack(clips, labels, ids).adversarial
            for b, pred in enumerate(predict(bare, adversarial, ids, 1)[0].tolist()):
                rows[b]["undefended"]["pgd"][undefended_key(norm, label)] = pred
    advance()

    shown: Shown | None = None
    calls = 0
    for attack_config in protocol.attacks:
        for budget in attack_config.budgets:
            attack = attack_config.build(model, parse_budget(budget), protocol.seed)
            adversarial, record, used = _attack_and_evaluate(model, attack, clips, labels, ids, attackable, repeats)
            calls += used
            for b, row in enumerate(rows):
                row["attacks"][attack_key(attack_config.label, budget)] = record[b]
            if shown is None:
                shown = Shown(adversarial, f"{attack_config.label} {attack_config.norm} {budget}", [r["attacked"] for r in record])
            advance()

    sanity = protocol.sanity
    if sanity.huge_budget is not None and protocol.attacks:
        mode = next((a.grad_mode for a in protocol.attacks if a.grad_mode is not None), "adjoint")
        attack = PGD(
            model.with_grad(mode), parse_budget(sanity.huge_budget), norm="linf", n_iter=sanity.huge_steps,
            eot_iter=sanity.huge_eot, seed=protocol.seed, stream="sanity-huge",
        )
        _, record, used = _attack_and_evaluate(model, attack, clips, labels, ids, attackable, repeats)
        calls += used
        for b, row in enumerate(rows):
            row["huge"] = {"pred": record[b]["pred"]}
        advance()

    seconds = (time.perf_counter() - started) / len(refs)
    for row in rows:
        row["seconds"] = round(seconds, 3)
        row["gradient_calls"] = calls // len(refs)
    return rows, shown or Shown(clips, "clean", [False] * len(refs))


def _attack_and_evaluate(
    model: DefendedClassifier, attack, clips: Tensor, labels: Tensor, ids: Sequence[str], attackable: Tensor, repeats: int
) -> tuple[Tensor, list[dict[str, Any]], int]:
    """Attack the clips some clean purification classifies correctly (the others stay clean), then purify every
    final clip ``repeats`` times afresh. Returns the final clips, one record per clip, and gradient calls."""
    adversarial = clips.clone()
    success = torch.zeros(len(ids))
    zero = torch.zeros(len(ids), dtype=torch.bool)
    calls = 0
    if attackable.numel():
        result = attack(clips[attackable], labels[attackable], [ids[i] for i in attackable.tolist()])
        adversarial[attackable] = result.adversarial
        success[attackable.cpu()] = result.success_rate.float().cpu()
        zero[attackable.cpu()] = result.zero_grad.cpu()
        calls = result.calls.gradient
    delta = (adversarial - clips).flatten(1)
    preds = predict(model, adversarial, ids, repeats)
    attacked = set(attackable.tolist())
    records = [
        {
            "pred": preds[:, b].tolist(),
            "attacked": b in attacked,
            "success_rate": round(float(success[b]), 4),
            "zero_grad": bool(zero[b]),
            "linf": float(delta[b].abs().max()),
            "l2": float(delta[b].norm()),
        }
        for b in range(len(ids))
    ]
    return adversarial, records, calls


def _save_arrays(
    out: Path, model: DefendedClassifier, ids: Sequence[str], clips: Tensor, adversarial: Tensor, titles: Sequence[str]
) -> None:
    """Clean, final and purified final clips (float16 .npz) for figures and later study."""
    with torch.no_grad():
        purified = model.purifier(adversarial, clip_ids=ids, draw=0) if model.purifier is not None else adversarial
    for b, clip_id in enumerate(ids):
        arrays = {name: t[b].cpu().numpy().astype(np.float16) for name, t in (("clean", clips), ("adversarial", adversarial), ("purified", purified))}
        atomic_write(
            out / "clips" / f"{_safe_name(clip_id)}.npz",
            lambda p, arrays=arrays, title=titles[b]: np.savez_compressed(p, title=np.array(title), **arrays),
        )


def _figure_arrays(out: Path, clips: Sequence[ClipRef], output: EvalOutputConfig) -> list[Path]:
    candidates = [out / "clips" / f"{_safe_name(ref.id)}.npz" for ref in clips[: output.figure_clips]]
    return [path for path in candidates if path.exists()]


def _safe_name(clip_id: str) -> str:
    """A file stem for a clip id (its path without the video suffix, separators replaced)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(clip_id).with_suffix("")))


# -- the job: data, models and config ---------------------------------------------------------------------------------


def evaluate(job: EvaluateJob) -> dict[str, Any]:
    """Run (or resume) ``job``: decode its clips, build the defended model, run the protocol."""
    out = job.output.dir
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(job, out / "run_config.json")
    atomic_write(out / "run_config.json", lambda p: p.write_text(json.dumps(to_dict(job), indent=2)))
    data = job.dataset
    split = load_split(data.root, data.layout, data.split, data.subset, annotations=data.annotations)
    records = select_clips(split.records[: data.limit] if data.limit is not None else split.records, job)
    device = resolve_device(job.device)
    classifier = build_classifier(job, split.class_names)
    purifier = _build_purifier(job)
    model = DefendedClassifier(purifier, classifier).to(device).eval()
    run = {
        "name": out.name,
        "dataset": f"{data.layout} split {data.split} {data.subset} ({data.root})",
        "classifier": f"{classifier.name} ({job.classifier.checkpoint or 'RANDOM WEIGHTS: dry run'})",
        "diffusion": f"{job.diffusion.model} ({job.diffusion.checkpoint or 'RANDOM WEIGHTS: dry run'})",
        "purifier": f"t*={job.purifier.t_star}, dt={job.purifier.dt}, noise={job.purifier.noise}, precision={job.purifier.precision}",
        "clips": f"{len(records)} ({job.evaluation.clip_order} order), {data.num_frames} frames",
    }
    with DecodeWorker(timeout=data.decode_timeout) as worker:
        refs = [ClipRef(r.id, r.label, r.class_name, _loader(r, job, worker)) for r in records]
        return run_protocol(model, refs, split.class_names, job.protocol, job.output, run)


def select_clips(records: Sequence[ClipRecord], job: EvaluateJob) -> list[ClipRecord]:
    """The evaluated clips: the first ``evaluation.clips`` in a seeded order (spread over classes) or split order.

    Growing ``evaluation.clips`` keeps the clips chosen before, so a larger run resumes a smaller one.
    """
    ordered = list(records)
    if job.evaluation.clip_order == "seeded":
        ordered.sort(key=lambda r: clip_seed(job.seed, r.id, -1))
    return ordered[: job.evaluation.clips] if job.evaluation.clips is not None else ordered


def build_classifier(job: EvaluateJob, class_names: Sequence[str]) -> VideoClassifier:
    """The classifier from its checkpoint (classes checked against the split), or random weights when allowed."""
    spec = job.classifier
    if spec.checkpoint is not None:
        classifier = load_classifier(spec.checkpoint)
        if classifier.num_classes != len(class_names):
            raise ValueError(f"{spec.checkpoint}: {classifier.num_classes} classes, the split has {len(class_names)}")
        if classifier.class_names is not None and tuple(classifier.class_names) != tuple(class_names):
            raise ValueError(f"{spec.checkpoint}: its class names differ from the split's (order or spelling)")
    elif spec.allow_random_weights:
        logger.warning("no classifier checkpoint: evaluating an UNTRAINED %s (dry run)", spec.name)
        classifier = create_classifier(spec.name, num_classes=len(class_names), **spec.overrides)
    else:
        raise ValueError("classifier.checkpoint is not set: give the weights file, or set classifier.allow_random_weights=true for a dry run")
    for param in classifier.parameters():
        param.requires_grad_(False)
    return classifier.eval()


def _build_purifier(job: EvaluateJob) -> DiffusionPurifier:
    spec = job.diffusion
    if spec.checkpoint is None and not spec.allow_random_weights:
        raise ValueError("diffusion.checkpoint is not set: give the weights file, or set diffusion.allow_random_weights=true for a dry run")
    if spec.checkpoint is None:
        logger.warning("no diffusion checkpoint: purifying with an UNTRAINED network (dry run)")
    settings = dataclasses.replace(job.purifier, seed=job.seed)
    return DiffusionPurifier(load_network(spec.model, spec.checkpoint), **to_dict(settings))


def _loader(record: ClipRecord, job: EvaluateJob, worker: DecodeWorker) -> Callable[[], Tensor]:
    data = job.dataset

    def load() -> Tensor:
        clip = read_clip(record.path, data.num_frames, stride=data.stride, size=data.size, crop=data.crop, backend=data.backend, worker=worker)
        return to_float_clip(clip)

    return load


def _check_resumable(job: EvaluateJob, path: Path) -> None:
    """Refuse to resume a run whose numbers-relevant config differs (mixed rows would mean nothing)."""
    if not path.exists():
        return
    before, now = _flatten(json.loads(path.read_text())), _flatten(json.loads(json.dumps(to_dict(job))))
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and not k.startswith(RESUMABLE_FIELDS))
    if changed:
        raise ValueError(
            f"{path.parent} holds a run with a different config ({', '.join(changed)}); "
            "use a new output.dir or the same config"
        )


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}
