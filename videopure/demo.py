"""The offline demo: a video classifier falls to an adaptive attack; behind diffusion purification it holds.

Everything ships with the package: the synthetic action dataset is generated; the classifier
(``assets/demo_classifier.pt``, a small pytorchvideo 3-D ResNet) and the purifier (preset ``demo``, a tiny 32x32 ADM)
were trained on it with ``videopure finetune`` (``configs/finetune_demo.yaml``, then against smooth adversarial
perturbations ``configs/finetune_demo_robust.yaml`` and ``configs/finetune_demo_robust_10.yaml``) and
``videopure train-diffusion`` (``configs/train_diffusion_demo.yaml``). On a few test clips the demo runs the
evaluation protocol of ``videopure evaluate`` (APGD-CE with EOT and exact gradients through the purifier, every
final clip purified R times afresh, worst case over the R, the huge-budget sanity check) with independent and with
shared noise, and the same attack on the undefended classifier, then writes a table, a figure and videos.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from videopure.attacks.config import EvaluateJob
from videopure.attacks.defended import DefendedClassifier
from videopure.attacks.evaluate import build_classifier, clip_refs, evaluate, start_evaluation
from videopure.config import from_dict, parse_budget, to_dict
from videopure.data import DecodeWorker, load_split, make_synthetic_dataset, write_video
from videopure.diffusion.presets import ASSETS
from videopure.manifest import atomic_write
from videopure.models.clip_dataset import ClipSampling
from videopure.models.evaluate import EvalConfig
from videopure.models.evaluate import evaluate as evaluate_classifier

logger = logging.getLogger(__name__)

DEMO_CLASSIFIER = ASSETS / "demo_classifier.pt"
# The first 60 videos per class of the synthetic set the bundled classifier was trained on (120 per class; a video
# depends only on seed, class and index, so these test videos are test videos there too):
# videopure make-dataset synthetic --frames 8 --size 32x32 --videos-per-class 60
DEMO_DATA = {"layout": "ucf101", "size": (32, 32), "num_frames": 8, "videos_per_class": 60, "seed": 0}
NOISE_MODES = ("independent", "shared")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; the defaults fit in a few minutes on 2 CPU cores.

    Attributes:
        out: output folder (a rerun resumes: finished clips are skipped).
        data: the synthetic dataset (default ``<out>/synthetic``; made when missing).
        clips: test clips evaluated (the first of the seeded order of ``videopure evaluate``).
        budget: Linf budget on the [0, 1] pixel scale over the whole clip.
        n_iter, eot_iter: APGD-CE iterations and EOT samples per gradient.
        grad: how gradients pass the purifier: ``direct`` (exact gradients of the solver's steps, the default) or
            ``adjoint`` (torchsde's stochastic adjoint). With the demo's 4 solver steps the adjoint gradient is
            nearly orthogonal to the exact one (measured cosine ≈ 0), so an adjoint attack overstates robustness;
            the huge-budget sanity check flags it.
        repeats: fresh purifications of every final clip (a clip is robust only if all are right).
        t_star, dt: purification time and reverse-SDE step.
    """

    out: Path = Path("demo_out")
    data: Optional[Path] = None
    clips: int = 8
    budget: str = "8/255"
    n_iter: int = 5
    eot_iter: int = 2
    repeats: int = 3
    t_star: float = 0.1
    dt: float = 0.025
    grad: str = "direct"
    seed: int = 0
    device: str = "cpu"

    @property
    def data_root(self) -> Path:
        return self.data if self.data is not None else self.out / "synthetic"


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the demo; returns the summary also written to ``<out>/report.json`` and ``report.md``."""
    if not DEMO_CLASSIFIER.is_file():
        raise FileNotFoundError(f"the demo classifier {DEMO_CLASSIFIER} is missing: reinstall videopure")
    ensure_dataset(config.data_root)
    reports = {noise: evaluate(demo_job(config, noise)) for noise in NOISE_MODES}
    undefended = attack_undefended(demo_job(config, NOISE_MODES[0]))
    summary = summarize(config, reports, undefended)
    out = config.out
    summary["media"] = write_media(out, out / NOISE_MODES[0])
    atomic_write(out / "report.json", lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
    atomic_write(out / "report.md", lambda p: p.write_text(render_summary(summary), encoding="utf-8"))
    return summary


def ensure_dataset(root: Path) -> Path:
    """The demo's synthetic dataset at ``root``, generated first when the folder does not hold it."""
    if (root / "ucfTrainTestlist" / "testlist01.txt").is_file():
        return root
    logger.info("making the synthetic dataset in %s", root)
    return make_synthetic_dataset(root, **DEMO_DATA)


def demo_job(config: DemoConfig, noise: str) -> EvaluateJob:
    """The evaluation run of one noise mode, in ``<out>/<noise>``."""
    return from_dict(
        EvaluateJob,
        {
            "dataset": {"root": str(config.data_root), "layout": "ucf101", "split": 1, "subset": "test", "num_frames": 8, "stride": 1},
            "diffusion": {"model": "demo"},
            "purifier": {"t_star": config.t_star, "dt": config.dt, "noise": noise},
            "classifier": {"checkpoint": str(DEMO_CLASSIFIER)},
            "attacks": [
                {"kind": "apgd-ce", "name": "APGD-CE-EOT", "norm": "linf", "budgets": [config.budget],
                 "n_iter": config.n_iter, "eot_iter": config.eot_iter, "grad": config.grad},
            ],
            "evaluation": {"repeats": config.repeats, "clips": config.clips, "undefended_steps": 0},
            "sanity": {"huge_budget": 0.5, "huge_steps": 5, "strict": False},
            "output": {"dir": str(config.out / noise), "figure_clips": 1},
            "seed": config.seed,
            "device": config.device,
            "clips_per_batch": config.clips,
        },
    )


def attack_undefended(job: EvaluateJob) -> dict[str, Any]:
    """The job's attack on the bare classifier (no purifier: deterministic, so one EOT draw), on the job's clips."""
    plan = start_evaluation(job)
    classifier = build_classifier(job, plan.class_names).to(torch.device(job.device))
    model = DefendedClassifier(None, classifier)
    with DecodeWorker(timeout=job.dataset.decode_timeout) as worker:
        refs = clip_refs(plan.records, job, worker)
        clips = torch.stack([ref.load() for ref in refs]).to(torch.device(job.device))
    labels = torch.tensor([ref.label for ref in refs], device=clips.device)
    ids = [ref.id for ref in refs]
    attack_config = job.attacks[0]
    result = attack_config.build(model, parse_budget(attack_config.budgets[0]), job.seed)(clips, labels, ids)
    with torch.no_grad():
        clean = model(clips).argmax(dim=1) == labels
        robust = model(result.adversarial).argmax(dim=1) == labels
    return {
        "name": classifier.name, "n": len(ids), "clean": float(clean.float().mean()), "robust": float(robust.float().mean()),
        "test_split": test_split_accuracy(job, classifier),
    }


def test_split_accuracy(job: EvaluateJob, classifier: torch.nn.Module) -> dict[str, Any]:
    """The classifier alone on every test video of the demo set (centre clip): a finer clean accuracy than the
    few attacked clips give."""
    split = load_split(job.dataset.root, job.dataset.layout, job.dataset.split, "test")
    sampling = ClipSampling.from_spec(classifier.spec, job.dataset.num_frames, job.dataset.stride)
    config = EvalConfig(num_workers=0, device=job.device, decode_timeout=job.dataset.decode_timeout)
    result = evaluate_classifier(classifier, split.records, split.class_names, sampling, config)
    return {"videos": result.num_videos, "top1": result.top1}


def summarize(config: DemoConfig, reports: dict[str, dict[str, Any]], undefended: dict[str, Any]) -> dict[str, Any]:
    """One table: clean and robust accuracy of the classifier alone and behind the purifier (each noise mode)."""
    name = undefended["name"]
    rows = [{"model": f"{name}, no defence", "clean": undefended["clean"], "clean_mean": None,
             "robust": undefended["robust"], "robust_mean": None}]
    for noise, report in reports.items():
        attack = report["attacks"][0]
        rows.append({
            "model": f"{name} + DiffPure ({noise} noise)",
            "clean": report["clean"]["worst"]["accuracy"], "clean_mean": report["clean"]["mean"]["accuracy"],
            "robust": attack["worst"]["accuracy"], "robust_mean": attack["mean"]["accuracy"],
        })
    return {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in to_dict(config).items()},
        "clips": undefended["n"],
        "test_split": undefended["test_split"],
        "attack": f"APGD-CE, Linf {config.budget}, {config.n_iter} iterations, EOT {config.eot_iter}, {config.grad} gradients",
        "rows": rows,
        "reports": {noise: str(config.out / noise / "report.md") for noise in reports},
        "sanity": {noise: [c for c in report["sanity"] if c["status"] in ("FAIL", "WARN")] for noise, report in reports.items()},
    }


def render_summary(summary: dict[str, Any]) -> str:
    """The Markdown table the demo prints."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    lines = [
        f"# videopure demo: {summary['clips']} synthetic test clips, attack: {summary['attack']}",
        "",
        "Worst case over the repeated purifications (a clip counts only if every purification is classified right);",
        "mean in brackets.",
        "",
        "| model | clean accuracy | robust accuracy |",
        "| --- | --- | --- |",
    ]
    for row in summary["rows"]:
        clean = pct(row["clean"]) + (f" ({pct(row['clean_mean'])})" if row["clean_mean"] is not None else "")
        robust = pct(row["robust"]) + (f" ({pct(row['robust_mean'])})" if row["robust_mean"] is not None else "")
        lines.append(f"| {row['model']} | {clean} | {robust} |")
    split = summary["test_split"]
    lines += ["", f"The classifier alone on all {split['videos']} test videos of the demo set: {pct(split['top1'])} top-1."]
    lines += ["", "Full reports (intervals, per class, sanity checks): " + ", ".join(summary["reports"].values())]
    for noise, checks in summary["sanity"].items():
        lines += [f"- sanity {c['status']} ({noise}): {c['check']}: {c['detail']}" for c in checks]
    return "\n".join(lines) + "\n"


def write_media(out: Path, run: Path) -> dict[str, str]:
    """``figure.png`` (clean / adversarial / perturbation / purified frames) and one clip as three mp4s."""
    arrays = sorted((run / "clips").glob("*.npz"))
    figures = sorted((run / "figures").glob("*.png"))
    if not arrays or not figures:
        logger.warning("no saved clip in %s: no figure or videos", run)
        return {}
    media = {"figure": str(shutil.copyfile(figures[0], out / "figure.png"))}
    with np.load(arrays[0]) as data:
        for kind in ("clean", "adversarial", "purified"):
            path = out / "videos" / f"{arrays[0].stem}_{kind}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, _viewable(data[kind]))
            media[kind] = str(path)
    return media


def _viewable(clip: np.ndarray, scale: int = 4) -> np.ndarray:
    """(C, T, H, W) float in [0, 1] → uint8 (T, scale·H, scale·W, 3), enlarged with nearest pixels."""
    frames = np.clip(clip.astype(np.float32), 0, 1).transpose(1, 2, 3, 0)
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return (frames * 255 + 0.5).astype(np.uint8)
