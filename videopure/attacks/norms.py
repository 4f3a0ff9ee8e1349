"""Threat models: an Lp ball of radius ε around the clean clip, intersected with the [0, 1] pixel box.

A ball is chosen once per attack (``NORMS[norm]``); the attack loops call its methods and never branch on the
norm. Norms are taken over the whole clip (all channels, frames and pixels), per clip.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Norm = Literal["linf", "l2"]
_TINY = 1e-12


def per_clip(values: Tensor, like: Tensor) -> Tensor:
    """(B,) → (B, 1, 1, ...) broadcastable against ``like``."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


class LinfBall:
    """‖δ‖∞ ≤ ε."""

    name: Norm = "linf"

    @staticmethod
    def norm(delta: Tensor) -> Tensor:
        return delta.flatten(1).abs().amax(dim=1)

    @staticmethod
    def direction(grad: Tensor) -> Tensor:
        """The steepest-ascent step of unit Linf length."""
        return grad.sign()

    @staticmethod
    def project(x_adv: Tensor, x: Tensor, eps: Tensor) -> Tensor:
        """Nearest point of the ball ∩ [0, 1] (exact for Linf: a box)."""
        radius = per_clip(eps, x)
        return torch.minimum(torch.maximum(x_adv, x - radius), x + radius).clamp(0.0, 1.0)

    @staticmethod
    def random_start(x: Tensor, eps: Tensor, generator: torch.Generator) -> Tensor:
        """δ uniform in the ball, scaled so ‖δ‖∞ = ε (AutoAttack's start)."""
        t = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1
        return t / per_clip(LinfBall.norm(t) + _TINY, x) * per_clip(eps, x)


class L2Ball:
    """‖δ‖₂ ≤ ε."""

    name: Norm = "l2"

    @staticmethod
    def norm(delta: Tensor) -> Tensor:
        return delta.flatten(1).norm(dim=1)

    @staticmethod
    def direction(grad: Tensor) -> Tensor:
        """The gradient scaled to unit L2 length."""
        return grad / per_clip(L2Ball.norm(grad) + _TINY, grad)

    @staticmethod
    def project(x_adv: Tensor, x: Tensor, eps: Tensor) -> Tensor:
        """Scale δ into the ball, then clip to [0, 1] (clipping only shrinks δ, so the result stays inside)."""
        delta = x_adv - x
        scale = torch.clamp(eps / (L2Ball.norm(delta) + _TINY), max=1.0)
        return (x + delta * per_clip(scale, x)).clamp(0.0, 1.0)

    @staticmethod
    def random_start(x: Tensor, eps: Tensor, generator: torch.Generator) -> Tensor:
        """A Gaussian direction scaled to ‖δ‖₂ = ε."""
        t = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return t / per_clip(L2Ball.norm(t) + _TINY, x) * per_clip(eps, x)


Ball = LinfBall | L2Ball
NORMS: dict[str, Ball] = {"linf": LinfBall(), "l2": L2Ball()}


def get_ball(norm: str) -> Ball:
    """The ball of ``norm``; an unknown norm is an error listing the known ones."""
    try:
        return NORMS[norm]
    except KeyError:
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}") from None
