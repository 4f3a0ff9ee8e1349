"""``videopure bench purify`` and ``purify-grad``: purifier throughput and gradient cost against baselines.

Throughput: the purifier as configured (frames of all clips batched, ``frame_batch`` frames per solve,
channels-last, chosen precision) against the straightforward DiffPure way in the same run: one clip at a time,
float32, contiguous tensors, one torchsde solve per clip. Both use the same per-clip noise, so their outputs are
compared too. Gradient: one adjoint gradient against autograd through the solver, as the number of steps grows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from videopure.bench.measure import Measurement, forward_flops, measure
from videopure.devices import resolve_device
from videopure.diffusion.presets import load_network
from videopure.purify import DiffusionPurifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurifyBench:
    """Workload of the purifier benchmarks."""

    model: str = "adm-256-uncond"  # preset name, or a JSON file of create_adm kwargs / a Score-SDE config
    checkpoint: str | None = None  # weights for a preset; random weights otherwise (speed does not depend on them)
    resolution: int = 224
    clips: int = 4
    frames: int = 8
    t_star: float = 0.15
    dt: float = 1e-3
    device: str = "auto"
    precision: str = "float32"
    frame_batch: int | None = None
    channels_last: bool = True
    seed: int = 0


def build_network(model: str, checkpoint: str | None = None, seed: int = 0) -> nn.Module:
    """:func:`load_network`, with random weights drawn for every parameter when no checkpoint is given.

    (The official inits zero the output layer, which would make the score vanish and the output comparison moot.)
    """
    net = load_network(model, checkpoint)
    if checkpoint is None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in net.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return net


def _euler_steps(t_star: float, dt: float, t_end: float = 1e-5) -> int:
    return math.ceil(round((t_star - t_end) / dt, 6))


def _summary(m: Measurement, frames: int, clips: int, flops_per_frame_step: int, steps: int) -> dict[str, Any]:
    return {
        "seconds": round(m.seconds, 3),
        "frames_per_s": round(frames / m.seconds, 3),
        "s_per_clip": round(m.seconds / clips, 3),
        "peak_memory_mb": None if m.peak_memory_mb is None else round(m.peak_memory_mb, 1),
        "network_tflops_per_s": round(flops_per_frame_step * steps * frames / m.seconds / 1e12, 4),
    }


def run_purify_benchmark(bench: PurifyBench) -> dict[str, Any]:
    """Purify the same random clips both ways; returns timings, memory, speedup and output agreement."""
    device = resolve_device(bench.device)
    net = build_network(bench.model, bench.checkpoint, bench.seed).to(device)
    clips = torch.rand(
        (bench.clips, net.in_channels, bench.frames, bench.resolution, bench.resolution),
        generator=torch.Generator().manual_seed(bench.seed),
    ).to(device)
    ids = [f"bench-{i}" for i in range(bench.clips)]
    common = dict(t_star=bench.t_star, dt=bench.dt, seed=bench.seed)
    steps = _euler_steps(bench.t_star, bench.dt)
    sample = torch.zeros((1, net.in_channels, net.image_size, net.image_size), device=device)
    flops = forward_flops(DiffusionPurifier(net, **common).score_model, sample, torch.full((1,), bench.t_star, device=device))
    total_frames = bench.clips * bench.frames
    logger.info(
        "%s on %s: %d clips x %d frames at %dpx, t*=%g (%d Euler steps), %.2f GFLOP per network call per frame",
        bench.model, device, bench.clips, bench.frames, bench.resolution, bench.t_star, steps, flops / 1e9,
    )

    baseline = DiffusionPurifier(net, **common)
    with torch.no_grad():
        baseline(clips[:1], ids[:1])  # warm-up
        base_out, base_m = measure(lambda: torch.cat([baseline(clips[i : i + 1], ids[i : i + 1]) for i in range(bench.clips)]), device)
        logger.info("baseline (one clip at a time, float32): %.2f s", base_m.seconds)
        tuned = DiffusionPurifier(
            net, frame_batch=bench.frame_batch, precision=bench.precision, channels_last=bench.channels_last, **common
        )
        tuned(clips[:1], ids[:1])
        tuned_out, tuned_m = measure(lambda: tuned(clips, ids), device)
        logger.info("videopure (%s): %.2f s", bench.precision, tuned_m.seconds)
    net.to(memory_format=torch.contiguous_format)

    return {
        "benchmark": "purify",
        "workload": asdict(bench),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "euler_steps": steps,
        "gflop_per_network_call_per_frame": round(flops / 1e9, 3),
        "baseline": _summary(base_m, total_frames, bench.clips, flops, steps),
        "videopure": _summary(tuned_m, total_frames, bench.clips, flops, steps),
        "speedup": round(base_m.seconds / tuned_m.seconds, 3),
        "max_abs_output_difference": float((base_out - tuned_out).abs().max()),
    }


def run_gradient_benchmark(bench: PurifyBench, steps: tuple[int, ...] = (5, 10, 20, 40)) -> dict[str, Any]:
    """One input gradient through the purifier, adjoint vs autograd, for a growing number of Euler steps."""
    device = resolve_device(bench.device)
    net = build_network(bench.model, bench.checkpoint, bench.seed).to(device)
    clips = torch.rand(
        (1, net.in_channels, bench.frames, bench.resolution, bench.resolution),
        generator=torch.Generator().manual_seed(bench.seed),
    ).to(device)
    rows = []
    for n in steps:
        t_star = round(n * bench.dt, 6)
        gradients = {}
        for mode in ("direct", "adjoint"):
            purifier = DiffusionPurifier(
                net, t_star=t_star, dt=bench.dt, grad=mode, precision=bench.precision, frame_batch=bench.frame_batch
            )
            x = clips.clone().requires_grad_(True)
            gradients[mode], m = measure(lambda: torch.autograd.grad(purifier(x, ["grad"]).square().sum(), x)[0], device)
            rows.append({"steps": n, "t_star": t_star, "mode": mode, "seconds": round(m.seconds, 3), "peak_memory_mb": m.peak_memory_mb})
            logger.info("%d steps, %s: %.2f s, peak %s MB", n, mode, m.seconds, m.peak_memory_mb)
        cosine = torch.nn.functional.cosine_similarity(gradients["direct"].flatten(), gradients["adjoint"].flatten(), dim=0)
        rows[-1]["cosine_to_direct"] = round(float(cosine), 5)
    return {"benchmark": "purify-grad", "workload": asdict(bench), "rows": rows}
