"""``videopure bench classify``: classifier clips/s, forward and forward+backward, against float32 eager.

The baseline is the classifier as built: float32, contiguous tensors. The tuned variant is the same weights in
``channels_last_3d`` memory format under autocast at the chosen precision. Both see the same random clips at
the model's own input size, so the logits are compared too.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from videopure.bench.measure import Measurement, forward_flops, measure
from videopure.devices import resolve_device
from videopure.models import create_classifier
from videopure.models.evaluate import Precision, autocast

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifyBench:
    """Workload of the classifier benchmark; ``precision='auto'``: bfloat16 on CUDA, float32 on the CPU."""

    model: str = "x3d_m"
    num_classes: int = 400
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    repeats: int = 5
    warmup: int = 2
    seed: int = 0


def _rate(m: Measurement, clips: int) -> dict[str, Any]:
    return {
        "clips_per_s": round(clips / m.seconds, 2),
        "peak_memory_mb": None if m.peak_memory_mb is None else round(m.peak_memory_mb, 1),
    }


def _timed(step: Callable[[], Tensor], bench: ClassifyBench, device: torch.device) -> tuple[Tensor, Measurement]:
    for _ in range(bench.warmup):
        step()
    return measure(lambda: [step() for _ in range(bench.repeats)][-1], device)


def _variant(model: nn.Module, clips: Tensor, labels: Tensor, precision: Precision, bench: ClassifyBench, device: torch.device) -> dict[str, Any]:
    """Forward (no grad) and forward+backward timings of ``model`` on ``clips``; the logits of the forward."""

    def forward() -> Tensor:
        with torch.no_grad(), autocast(device, precision):
            return model(clips)

    def train_step() -> Tensor:
        model.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = F.cross_entropy(model(clips).float(), labels)
        loss.backward()
        return loss

    model.eval()
    logits, forward_m = _timed(forward, bench, device)
    model.train()
    _, train_m = _timed(train_step, bench, device)
    clips_done = bench.batch_size * bench.repeats
    return {"logits": logits.float(), "forward": _rate(forward_m, clips_done), "forward_backward": _rate(train_m, clips_done)}


def run_classify_benchmark(bench: ClassifyBench) -> dict[str, Any]:
    """Time the baseline and the tuned classifier on the same clips; returns rates, ratios and logit agreement."""
    device = resolve_device(bench.device)
    precision = bench.precision if bench.precision != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
    generator = torch.Generator().manual_seed(bench.seed)
    baseline = create_classifier(bench.model, bench.num_classes).to(device)
    spec = baseline.spec
    shape = (bench.batch_size, spec.channels, spec.num_frames, spec.crop_size, spec.crop_size)
    clips = torch.rand(shape, generator=generator).to(device)
    labels = torch.randint(bench.num_classes, (bench.batch_size,), generator=generator).to(device)
    baseline.eval()
    gflop = forward_flops(baseline, clips[:1]) / 1e9
    logger.info("%s on %s: clips %s, %.2f GFLOP per clip", bench.model, device, shape, gflop)

    tuned = copy.deepcopy(baseline)
    tuned_clips = clips
    if bench.channels_last:
        tuned = tuned.to(memory_format=torch.channels_last_3d)
        tuned_clips = clips.contiguous(memory_format=torch.channels_last_3d)
    base = _variant(baseline, clips, labels, "float32", bench, device)
    fast = _variant(tuned, tuned_clips, labels, precision, bench, device)
    difference = float((base.pop("logits") - fast.pop("logits")).abs().max())
    return {
        "benchmark": "classify",
        "workload": {**asdict(bench), "precision": precision},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} thread(s))",
        "input_shape": list(shape),
        "gflop_per_clip": round(gflop, 3),
        "baseline": {"setup": "float32, contiguous", **base},
        "tuned": {"setup": f"{precision}, {'channels_last_3d' if bench.channels_last else 'contiguous'}", **fast},
        "speedup": {
            key: round(fast[key]["clips_per_s"] / base[key]["clips_per_s"], 3) for key in ("forward", "forward_backward")
        },
        "max_abs_logit_difference": difference,
    }
