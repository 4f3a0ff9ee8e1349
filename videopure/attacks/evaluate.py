"""The robustness evaluation protocol, resumable clip by clip.

For every clip: R fresh purifications of the clean clip; the undefended classifier clean and under PGD at each
budget; every configured attack at every budget, its final clip purified R times afresh (evaluation draws
``0 .. R-1``, which no attack ever uses); PGD at a huge budget. One JSON row per clip is appended to
``clips.jsonl`` as soon as its batch finishes; a rerun skips the clips already there. Then ``report.json``,
``report.md``, figures, and the sanity checks (a FAIL raises :class:`SanityCheckError` after writing).

:func:`run_protocol` is the library entry point (models and clips given); :func:`evaluate` builds them from an
:class:`EvaluateJob`. Batches are fixed runs of consecutive clips in the evaluation order
(:func:`pending_batches`), so a resumed run groups clips as the uninterrupted one did.

A distributed run (``pipelines/evaluate_robustness.py``) is made of the same pieces: :func:`start_evaluation` and
:func:`describe_run` on the driver, a :class:`BatchEvaluator` per worker (:func:`evaluate_clips` on one batch), the
driver's :func:`record_batch` per finished batch, and :func:`finish_report` at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Protocol as TypingProtocol, Sequence, TypeVar

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
from videopure.diffusion.presets import has_weights, load_network
from videopure.jobs.stages import DiffusionConfig, check_diffusion_weights
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


class _Identified(TypingProtocol):
    id: str


Clip = TypeVar("Clip", bound=_Identified)


@dataclass(frozen=True)
class BatchResult:
    """One batch evaluated: its manifest rows in batch order (clips that failed to load included, with their
    reason), and the arrays kept for figures, by clip id (float16 clean / adversarial / purified and a title)."""

    rows: list[dict[str, Any]]
    arrays: dict[str, dict[str, np.ndarray]]


def run_protocol(
    model: DefendedClassifier,
    clips: Sequence[ClipRef],
    class_names: Sequence[str],
    protocol: Protocol,
    output: EvalOutputConfig,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate (or resume) ``clips`` under ``protocol``; returns the report also written to ``output.dir``."""
    output.dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(output.dir / MANIFEST)
    batches = pending_batches(clips, manifest.done_ids(), protocol.clips_per_batch)
    cost: dict[str, Any] = {}
    if batches:
        cost = _run_batches(model, batches, [ref.id for ref in clips], class_names, protocol, output, manifest)
    return finish_report([ref.id for ref in clips], class_names, protocol, output, run, cost)


def pending_batches(clips: Sequence[Clip], done: Collection[str], clips_per_batch: int) -> list[list[Clip]]:
    """The clips not in ``done``, in the fixed batches of ``clips_per_batch`` consecutive clips of the evaluation
    order (a batch loses its finished clips; empty batches are dropped). Every run, resumed or distributed, groups
    clips this way."""
    batches = [
        [clip for clip in clips[start : start + clips_per_batch] if clip.id not in done]
        for start in range(0, len(clips), clips_per_batch)
    ]
    batches = [batch for batch in batches if batch]
    todo = sum(map(len, batches))
    logger.info("%d clips to evaluate: %d already done, %d to go", len(clips), len(clips) - todo, todo)
    return batches


def kept_ids(clip_ids: Sequence[str], output: EvalOutputConfig) -> set[str]:
    """Clips whose arrays are saved: the first ``figure_clips`` (for figures), or all with ``save_adversarial``."""
    return set(clip_ids if output.save_adversarial else clip_ids[: output.figure_clips])


def _run_batches(
    model: DefendedClassifier,
    batches: Sequence[Sequence[ClipRef]],
    clip_ids: Sequence[str],
    class_names: Sequence[str],
    protocol: Protocol,
    output: EvalOutputConfig,
    manifest: Manifest,
) -> dict[str, Any]:
    todo = [ref for batch in batches for ref in batch]
    keep = kept_ids(clip_ids, output)
    estimate = estimate_todo(model, todo, len(class_names), protocol)
    started = time.perf_counter()
    with tqdm(total=len(todo) * protocol_stages(protocol), desc="evaluate", unit="step") as bar:
        for batch in batches:
            record_batch(output.dir, manifest, evaluate_clips(model, batch, protocol, keep, bar.update))
    seconds = time.perf_counter() - started
    logger.info("evaluated %d clips in %s", len(todo), format_seconds(seconds))
    return run_cost(estimate, seconds)


def run_cost(estimate: CostEstimate | None, seconds: float) -> dict[str, Any]:
    """The report's cost entry for this run (``seconds_all_runs`` is added from the rows by :func:`finish_report`)."""
    return {"estimate": estimate.to_dict() if estimate else None, "seconds_this_run": round(seconds, 1)}


def finish_report(
    clip_ids: Sequence[str],
    class_names: Sequence[str],
    protocol: Protocol,
    output: EvalOutputConfig,
    run: dict[str, Any] | None,
    cost: dict[str, Any],
) -> dict[str, Any]:
    """Build the report of the rows in ``clips.jsonl`` (in ``clip_ids`` order) and write ``report.json``,
    ``report.md`` and figures; log the sanity checks and, when ``protocol.sanity.strict``, raise
    :class:`SanityCheckError` on a FAIL (after writing)."""
    out = output.dir
    rows_by_id = {row["id"]: row for row in Manifest(out / MANIFEST).rows()}
    rows = [rows_by_id[clip_id] for clip_id in clip_ids if clip_id in rows_by_id]
    info = {"repeats": protocol.evaluation.repeats, "seed": protocol.seed, **(run or {})}
    report = build_report(rows, protocol, class_names, info)
    report["cost"] = {**cost, "seconds_all_runs": round(sum(r.get("seconds", 0.0) for r in rows), 1)}
    figures = [save_clip_figure(p, out / "figures" / f"{p.stem}.png", output.perturbation_gain) for p in _figure_arrays(out, clip_ids, output)]
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


def estimate_todo(model: DefendedClassifier, todo: Sequence[ClipRef], num_classes: int, protocol: Protocol) -> CostEstimate | None:
    """Log the cost estimate of the ``todo`` clips, timed on the first one that loads (``None`` if none loads)."""
    device = _device(model)
    for ref in todo:
        try:
            clip = ref.load()
        except VideoDecodeError:
            continue
        estimate = estimate_cost(model, protocol, clip.to(device), len(todo), num_classes)
        logger.info("%s", estimate.describe())
        return estimate
    return None


def protocol_stages(protocol: Protocol) -> int:
    """Progress steps per clip: clean, undefended, each attack at each budget, the huge budget."""
    return 2 + sum(len(a.budgets) for a in protocol.attacks) + int(protocol.sanity.huge_budget is not None)


def evaluate_clips(
    model: DefendedClassifier,
    refs: Sequence[ClipRef],
    protocol: Protocol,
    keep: Collection[str] = (),
    advance: Callable[[int], Any] = lambda steps: None,
) -> BatchResult:
    """One batch: load its clips (a clip that fails becomes an error row with the reason), run the protocol on the
    rest (:func:`evaluate_batch`), keep the arrays of the clips in ``keep``. ``advance(steps)`` reports progress."""
    rows: dict[str, dict[str, Any]] = {}
    loaded = []
    for ref in refs:
        try:
            loaded.append((ref, ref.load()))
        except VideoDecodeError as exc:
            logger.warning("skipping %s: %s", ref.id, exc)
            rows[ref.id] = {"id": ref.id, "label": ref.label, "class_name": ref.class_name, "status": "error", "error": str(exc)}
            advance(protocol_stages(protocol))
    arrays: dict[str, dict[str, np.ndarray]] = {}
    if loaded:
        good, tensors = zip(*loaded)
        clips = torch.stack(tensors).to(_device(model))
        evaluated, shown = evaluate_batch(model, clips, good, protocol, lambda: advance(len(good)))
        rows.update((row["id"], row) for row in evaluated)
        arrays = _kept_arrays(model, good, clips, shown, keep)
    return BatchResult([rows[ref.id] for ref in refs], arrays)


def record_batch(out: Path, manifest: Manifest, result: BatchResult) -> None:
    """Write a batch's kept arrays (atomically), then append its rows: a clip in the manifest is finished."""
    for clip_id, arrays in result.arrays.items():
        atomic_write(out / "clips" / f"{_safe_name(clip_id)}.npz", lambda p, arrays=arrays: np.savez_compressed(p, **arrays))
    for row in result.rows:
        manifest.append(row)


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


def _kept_arrays(
    model: DefendedClassifier, refs: Sequence[ClipRef], clips: Tensor, shown: Shown, keep: Collection[str]
) -> dict[str, dict[str, np.ndarray]]:
    """Clean, final and purified final clips (float16) of the clips in ``keep``, for figures and later study."""
    kept = [b for b, ref in enumerate(refs) if ref.id in keep]
    if not kept:
        return {}
    ids = [refs[b].id for b in kept]
    adversarial = shown.adversarial[kept]
    with torch.no_grad():
        purified = model.purifier(adversarial, clip_ids=ids, draw=0) if model.purifier is not None else adversarial
    tensors = (("clean", clips[kept]), ("adversarial", adversarial), ("purified", purified))
    arrays = {}
    for i, b in enumerate(kept):
        note = "" if shown.attacked[b] else " (not attacked: no clean purification was right)"
        arrays[ids[i]] = {"title": np.array(f"{ids[i]}: {shown.title}{note}")}
        arrays[ids[i]].update({name: t[i].cpu().numpy().astype(np.float16) for name, t in tensors})
    return arrays


def _figure_arrays(out: Path, clip_ids: Sequence[str], output: EvalOutputConfig) -> list[Path]:
    candidates = [out / "clips" / f"{_safe_name(clip_id)}.npz" for clip_id in clip_ids[: output.figure_clips]]
    return [path for path in candidates if path.exists()]


def _safe_name(clip_id: str) -> str:
    """A file stem for a clip id (its path without the video suffix, separators replaced)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(clip_id).with_suffix("")))


def _device(model: DefendedClassifier) -> torch.device:
    return next(model.parameters()).device


# -- the job: data, models and config ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationPlan:
    """What a job evaluates: its clips in evaluation order and the split's class names."""

    records: tuple[ClipRecord, ...]
    class_names: tuple[str, ...]


def evaluate(job: EvaluateJob) -> dict[str, Any]:
    """Run (or resume) ``job``: decode its clips, build the defended model, run the protocol."""
    plan = start_evaluation(job)
    model = build_model(job, plan.class_names)
    run = describe_run(job, plan, model.classifier.name)
    with DecodeWorker(timeout=job.dataset.decode_timeout) as worker:
        return run_protocol(model, clip_refs(plan.records, job, worker), plan.class_names, job.protocol, job.output, run)


def start_evaluation(job: EvaluateJob) -> EvaluationPlan:
    """Claim ``job.output.dir`` (refusing a run with a different config there; writes ``run_config.json``), load
    the split and select the clips."""
    out = job.output.dir
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(job, out / "run_config.json")
    atomic_write(out / "run_config.json", lambda p: p.write_text(json.dumps(to_dict(job), indent=2)))
    data = job.dataset
    split = load_split(data.root, data.layout, data.split, data.subset, annotations=data.annotations)
    records = select_clips(split.records[: data.limit] if data.limit is not None else split.records, job)
    return EvaluationPlan(tuple(records), tuple(split.class_names))


def describe_run(job: EvaluateJob, plan: EvaluationPlan, classifier_name: str) -> dict[str, str]:
    """The report's description of the run: data, models, purifier, clips."""
    data = job.dataset
    return {
        "name": job.output.dir.name,
        "dataset": f"{data.layout} split {data.split} {data.subset} ({data.root})",
        "classifier": f"{classifier_name} ({job.classifier.checkpoint or 'RANDOM WEIGHTS: dry run'})",
        "diffusion": f"{job.diffusion.model} ({_weights(job.diffusion)})",
        "purifier": f"t*={job.purifier.t_star}, dt={job.purifier.dt}, noise={job.purifier.noise}, precision={job.purifier.precision}",
        "clips": f"{len(plan.records)} ({job.evaluation.clip_order} order), {data.num_frames} frames",
    }


def _weights(diffusion: DiffusionConfig) -> str:
    if diffusion.checkpoint is not None:
        return str(diffusion.checkpoint)
    return "bundled weights" if has_weights(diffusion.model, None) else "RANDOM WEIGHTS: dry run"


def build_model(job: EvaluateJob, class_names: Sequence[str]) -> DefendedClassifier:
    """The defended classifier of ``job`` on its device, in eval mode."""
    return DefendedClassifier(_build_purifier(job), build_classifier(job, class_names)).to(resolve_device(job.device)).eval()


def clip_refs(records: Sequence[ClipRecord], job: EvaluateJob, worker: DecodeWorker) -> list[ClipRef]:
    """The records as clips that decode (in ``worker``) on ``load()``."""
    return [ClipRef(r.id, r.label, r.class_name, _loader(r, job, worker)) for r in records]


class BatchEvaluator:
    """A worker process's share of a distributed evaluation: builds the defended model once and evaluates batches
    of clip records (:func:`evaluate_clips`), decoding in its own :class:`DecodeWorker`. ``close()`` stops it."""

    def __init__(self, job: EvaluateJob, class_names: Sequence[str]):
        self.job = job
        self.num_classes = len(class_names)
        self.model = build_model(job, class_names)
        self.decoder = DecodeWorker(timeout=job.dataset.decode_timeout)

    def __call__(self, records: Sequence[ClipRecord], keep: Collection[str] = ()) -> BatchResult:
        return evaluate_clips(self.model, clip_refs(records, self.job, self.decoder), self.job.protocol, keep)

    def estimate(self, todo: Sequence[ClipRecord]) -> CostEstimate | None:
        """The cost estimate of the ``todo`` clips on this worker's device (see :func:`estimate_todo`)."""
        return estimate_todo(self.model, clip_refs(todo, self.job, self.decoder), self.num_classes, self.job.protocol)

    def close(self) -> None:
        self.decoder.close()


def select_clips(records: Sequence[ClipRecord], job: EvaluateJob) -> list[ClipRecord]:
    """The evaluated clips: the first ``evaluation.clips`` in a seeded order (spread over classes) or split order.

    Growing ``evaluation.clips`` keeps the clips chosen before, so a larger run resumes a smaller one.
    """
    ordered = list(records)
    if job.evaluation.clip_order == "seeded":
        ordered.sort(key=lambda r: clip_seed(job.seed, r.id, -1))
    return ordered[: job.evaluation.clips] if job.evaluation.clips is not None else ordered


def build_classifier(job: EvaluateJob, class_names: Sequence[str]) -> VideoClassifier:
    """The classifier from its checkpoint (classes checked against the split), or random weights when allowed
    (drawn from the run seed, so every process builds the same network)."""
    spec = job.classifier
    if spec.checkpoint is not None:
        classifier = load_classifier(spec.checkpoint)
        if classifier.num_classes != len(class_names):
            raise ValueError(f"{spec.checkpoint}: {classifier.num_classes} classes, the split has {len(class_names)}")
        if classifier.class_names is not None and tuple(classifier.class_names) != tuple(class_names):
            raise ValueError(f"{spec.checkpoint}: its class names differ from the split's (order or spelling)")
    elif spec.allow_random_weights:
        logger.warning("no classifier checkpoint: evaluating an UNTRAINED %s (dry run)", spec.name)
        with _seeded_init(job.seed, "classifier"):
            classifier = create_classifier(spec.name, num_classes=len(class_names), **spec.overrides)
    else:
        raise ValueError("classifier.checkpoint is not set: give the weights file, or set classifier.allow_random_weights=true for a dry run")
    for param in classifier.parameters():
        param.requires_grad_(False)
    return classifier.eval()


def _build_purifier(job: EvaluateJob) -> DiffusionPurifier:
    spec = job.diffusion
    check_diffusion_weights(spec)
    settings = dataclasses.replace(job.purifier, seed=job.seed)
    with _seeded_init(job.seed, "diffusion"):
        network = load_network(spec.model, spec.checkpoint)
    return DiffusionPurifier(network, **to_dict(settings))


@contextmanager
def _seeded_init(seed: int, name: str) -> Iterator[None]:
    """Draw initial weights from (run seed, ``name``): a dry run's random networks are the same in every process.
    The global RNG state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(clip_seed(seed, f"init/{name}"))
        yield


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
