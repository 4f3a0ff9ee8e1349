"""Smooth adversarial perturbations: bounded, smooth, and stronger than random ones of the same size."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from videopure.models.smooth_adversarial import smooth_perturbation, smooth_pgd


def test_a_smooth_perturbation_keeps_the_grid_bound_and_varies_slowly():
    grid = (torch.rand(2, 3, 4, 4, 4) * 2 - 1) * 0.05
    delta = smooth_perturbation(grid, (32, 32))
    assert delta.shape == (2, 3, 4, 32, 32)
    assert float(delta.abs().max()) <= 0.05 + 1e-7
    assert float((delta[..., 1:] - delta[..., :-1]).abs().max()) <= 0.1 / 8 + 1e-7  # 8-pixel cells: 1/8 of a jump per pixel


def test_smooth_pgd_stays_in_budget_raises_the_loss_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 16 * 16, 4))
    model.train()
    clips = torch.rand(6, 3, 2, 16, 16) * 0.8 + 0.1  # away from 0 and 1: the clamp does not cut the perturbation
    labels = torch.arange(6) % 4
    budget = 8 / 255

    adversarial = smooth_pgd(model, clips, labels, budget=budget, cells=4, steps=5)
    assert model.training and not adversarial.requires_grad
    assert float((adversarial - clips).abs().max()) <= budget + 1e-6
    grid = (torch.randint(0, 2, (6, 3, 2, 4, 4)) * 2 - 1).float() * budget  # a random corner of the same ball
    randomly = (clips + smooth_perturbation(grid, (16, 16))).clamp(0, 1)
    with torch.no_grad():
        losses = [F.cross_entropy(model(x), labels).item() for x in (clips, randomly, adversarial)]
    assert losses[2] > losses[0] + 0.01 and losses[2] > losses[1], losses
