"""What an evaluation will cost before it starts: model calls, diffusion-network evaluations, and time from a
timed probe on one clip on this device."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from videopure.attacks.config import Protocol
from videopure.attacks.defended import DefendedClassifier
from videopure.config import parse_budget

# A gradient through the solver re-evaluates the network along the path and takes one VJP per step (adjoint:
# torchsde's adjoint SDE; direct: activations recomputed per step).
_EVALS_PER_STEP = {"none": 1, "bpda": 1, "adjoint": 2, "direct": 2}
_VJPS_PER_STEP = {"none": 0, "bpda": 0, "adjoint": 1, "direct": 1}
REPEAT_BELOW_SECONDS = 30.0


def solver_steps(model: DefendedClassifier) -> int:
    """Euler steps of one purification (0 without a purifier)."""
    if model.purifier is None:
        return 0
    purifier = model.purifier
    t_star = purifier.noise_step / purifier.score_model.schedule.num_steps
    return math.ceil((t_star - purifier.settings.t_end) / purifier.settings.dt - 1e-9)


@dataclass
class CallPlan:
    """Model calls for all clips: ``forward`` (no gradient) and ``gradient`` per path (adjoint/direct/bpda/none)."""

    forward: int = 0
    gradient: dict[str, int] = field(default_factory=dict)
    bare: int = 0  # undefended classifier calls (forward or gradient)

    def add_gradients(self, mode: str, count: int) -> None:
        self.gradient[mode] = self.gradient.get(mode, 0) + count


def plan_calls(protocol: Protocol, num_clips: int, num_classes: int) -> CallPlan:
    """Upper bounds: every restart and target round runs, every clip is attacked."""
    repeats = protocol.evaluation.repeats
    plan = CallPlan()
    plan.forward += repeats * num_clips
    budgets = {(a.norm, parse_budget(b)) for a in protocol.attacks for b in a.budgets}
    plan.bare += num_clips * (1 + len(budgets) * (protocol.evaluation.undefended_steps + 1))
    for attack in protocol.attacks:
        for _ in attack.budgets:
            calls = attack.gradient_calls(num_classes) * num_clips
            if attack.grad_mode is None:
                plan.bare += calls
            else:
                plan.add_gradients(attack.grad_mode, calls)
                plan.forward += attack.eot * num_clips
            plan.forward += repeats * num_clips
    sanity = protocol.sanity
    if sanity.huge_budget is not None and protocol.attacks:
        mode = next((a.grad_mode for a in protocol.attacks if a.grad_mode is not None), "adjoint")
        plan.add_gradients(mode, sanity.huge_steps * sanity.huge_eot * num_clips)
        plan.forward += (sanity.huge_eot + repeats) * num_clips
    return plan


def probe_seconds(model: DefendedClassifier, clip: Tensor, modes: set[str]) -> dict[str, float]:
    """Seconds of one forward (``forward``), one gradient per purifier gradient mode, one bare gradient (``bare``)."""
    clips = clip[None]
    timings = {"forward": _time(lambda: _forward(model, clips)), "bare": _time(lambda: _gradient(model.bare(), clips))}
    for mode in sorted(modes):
        timings[mode] = _time(lambda: _gradient(model.with_grad(mode), clips))
    return timings


@dataclass(frozen=True)
class CostEstimate:
    """Calls, network evaluations and estimated seconds for ``clips`` clips (upper bounds)."""

    clips: int
    plan: CallPlan
    frames_per_clip: int
    steps_per_purification: int
    probe: dict[str, float]

    @property
    def diffusion_evaluations(self) -> int:
        """Frame-level diffusion-network forward evaluations."""
        per = self.frames_per_clip * self.steps_per_purification
        return per * (self.plan.forward + sum(n * _EVALS_PER_STEP[m] for m, n in self.plan.gradient.items()))

    @property
    def diffusion_vjps(self) -> int:
        per = self.frames_per_clip * self.steps_per_purification
        return per * sum(n * _VJPS_PER_STEP[m] for m, n in self.plan.gradient.items())

    @property
    def seconds(self) -> float:
        total = self.plan.forward * self.probe["forward"] + self.plan.bare * self.probe["bare"]
        return total + sum(n * self.probe[m] for m, n in self.plan.gradient.items())

    def to_dict(self) -> dict[str, object]:
        return {
            "clips": self.clips,
            "defended_forward_calls": self.plan.forward,
            "defended_gradient_calls": dict(self.plan.gradient),
            "undefended_calls": self.plan.bare,
            "diffusion_network_evaluations": self.diffusion_evaluations,
            "diffusion_network_vjps": self.diffusion_vjps,
            "probe_seconds": {k: round(v, 4) for k, v in self.probe.items()},
            "estimated_seconds": round(self.seconds, 1),
        }

    def describe(self) -> str:
        gradients = ", ".join(f"{n} {m}" for m, n in sorted(self.plan.gradient.items())) or "none"
        probe = ", ".join(f"{k} {v:.3g}s" for k, v in self.probe.items())
        return (
            f"cost estimate for {self.clips} clip(s) (upper bound): {self.plan.forward} defended forward calls, "
            f"gradient calls: {gradients}; {self.plan.bare} undefended calls; "
            f"{self.diffusion_evaluations:,} diffusion-network frame evaluations + {self.diffusion_vjps:,} VJPs "
            f"({self.frames_per_clip} frames x {self.steps_per_purification} steps per purification); "
            f"probe on this device: {probe}; estimated time {format_seconds(self.seconds)}"
        )


def estimate_cost(model: DefendedClassifier, protocol: Protocol, clip: Tensor, num_clips: int, num_classes: int) -> CostEstimate:
    """Plan the calls for ``num_clips`` clips like ``clip`` (C, T, H, W) and time a probe on it."""
    plan = plan_calls(protocol, num_clips, num_classes)
    probe = probe_seconds(model, clip, set(plan.gradient))
    return CostEstimate(num_clips, plan, clip.shape[1], solver_steps(model), probe)


def format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _time(fn: Callable[[], None]) -> float:
    """Seconds of ``fn``; a quick call is timed again, as first calls carry one-off set-up costs."""
    seconds = _time_once(fn)
    return _time_once(fn) if seconds < REPEAT_BELOW_SECONDS else seconds


def _time_once(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _forward(model: DefendedClassifier, clips: Tensor) -> None:
    with torch.no_grad():
        model(clips, clip_ids=["cost-probe"], draw=0)


def _gradient(model: DefendedClassifier, clips: Tensor) -> None:
    x = clips.detach().requires_grad_(True)
    torch.autograd.grad(model(x, clip_ids=["cost-probe"], draw=0).sum(), x)
