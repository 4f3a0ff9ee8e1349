"""Adversarial training against smooth perturbations: the part of an attack a diffusion purifier lets through.

A purifier at DiffPure's t* drowns fine detail in noise but keeps what is smooth: on the demo's models an adaptive
attack's perturbation is mostly low-frequency and passes the purifier at 70-85% of its size, while random sign
noise of the same size passes at about 10%. A classifier meant to sit behind a purifier can be trained against
exactly those smooth perturbations: ``cells × cells`` values per frame and channel, bilinearly enlarged to the
frame, within an Linf budget, found by PGD. Alone, such a classifier still falls to a full-resolution attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from videopure.config import parse_budget

__all__ = ["SmoothAdversarialConfig", "smooth_perturbation", "smooth_pgd"]


@dataclass(frozen=True)
class SmoothAdversarialConfig:
    """Training on smooth adversarial clips (``adversarial:`` in a finetune config).

    Attributes:
        budget: Linf budget on the [0, 1] pixel scale, a number or a fraction like ``8/255``.
        cells: grid sizes; each batch draws one. A perturbation has ``cells × cells`` values per frame and channel.
        steps: PGD sign steps from a uniform random start; the step is ``2.5 · budget / steps``.
    """

    budget: Union[float, str] = "8/255"
    cells: tuple[int, ...] = (8,)
    steps: int = 3

    def __post_init__(self) -> None:
        parse_budget(self.budget)
        if not self.cells or min(self.cells) < 1 or self.steps < 1:
            raise ValueError(f"adversarial: need cells >= 1 and steps >= 1, got cells={list(self.cells)}, steps={self.steps}")

    @property
    def radius(self) -> float:
        """``budget`` as a number."""
        return parse_budget(self.budget)


def smooth_perturbation(grid: Tensor, size: tuple[int, int]) -> Tensor:
    """Grid values ``(B, C, T, c, c)`` → a perturbation ``(B, C, T, *size)``, bilinear (its Linf is the grid's)."""
    batch, channels, frames, rows, cols = grid.shape
    flat = grid.reshape(batch, channels * frames, rows, cols)
    return F.interpolate(flat, size=size, mode="bilinear", align_corners=False).reshape(batch, channels, frames, *size)


def smooth_pgd(model: nn.Module, clips: Tensor, labels: Tensor, *, budget: float, cells: int, steps: int) -> Tensor:
    """Clips ``(B, C, T, H, W)`` in [0, 1] moved by the smooth perturbation that raises ``model``'s cross-entropy.

    Runs ``model`` in eval mode (normalisation statistics untouched) and restores its mode. The random start comes
    from torch's global generator. Returns detached clips, clamped to [0, 1].
    """
    size = tuple(clips.shape[-2:])
    grid = (torch.rand((*clips.shape[:3], cells, cells), device=clips.device) * 2 - 1) * budget
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            grid.requires_grad_(True)
            loss = F.cross_entropy(model((clips + smooth_perturbation(grid, size)).clamp(0, 1)).float(), labels)
            (gradient,) = torch.autograd.grad(loss, grid)
            grid = (grid.detach() + 2.5 * budget / steps * gradient.sign()).clamp(-budget, budget)
    finally:
        model.train(was_training)
    return (clips + smooth_perturbation(grid, size)).clamp(0, 1).detach()
