"""Tiny models and clips for the attack and evaluation tests (fast on 2 CPU cores)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from videopure.attacks import DefendedClassifier
from videopure.diffusion.adm import create_adm
from videopure.purify import DiffusionPurifier

from tiny_models import TINY_ADM, randomized


class TinyVideoNet(nn.Module):
    """Clips (B, 3, T, H, W) in [0, 1] → logits: two strided 3-D convolutions, pooling, a linear head."""

    def __init__(self, num_classes: int = 10, seed: int = 0, softmax: bool = False):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 8, 3, stride=(1, 2, 2), padding=1),
            nn.ReLU(),
            nn.Conv3d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, num_classes)
        self.softmax = nn.Softmax(dim=1) if softmax else nn.Identity()
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in self.parameters():
                fan_in = param[0].numel() if param.ndim > 1 else 10.0
                param.copy_(torch.randn(param.shape, generator=generator) / fan_in**0.5)
                param.requires_grad_(False)
        self.eval()

    def forward(self, clips: Tensor) -> Tensor:
        return self.softmax(self.head(self.features((clips - 0.5) / 0.25)) * 4.0)


# An ADM of the guided-diffusion architecture small enough for attacks on 2 CPU cores: one level, 8x8 frames.
MICRO_ADM = {**TINY_ADM, "image_size": 8, "channel_mult": "1", "attention_resolutions": "16"}


def micro_defended(classifier: nn.Module | None = None, t_star: float = 0.01, dt: float = 5e-3, **settings) -> DefendedClassifier:
    """Micro ADM purifier (2 Euler steps) in front of ``classifier``: clips (B, 3, T, 8, 8)."""
    purifier = DiffusionPurifier(randomized(create_adm(**MICRO_ADM)), t_star=t_star, dt=dt, **settings)
    return DefendedClassifier(purifier, classifier or TinyVideoNet()).eval()


def random_clips(n: int, frames: int = 2, size: int = 8, seed: int = 0) -> Tensor:
    """Noise around a random colour per clip (so a tiny random classifier tells clips apart), in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    colour = torch.rand((n, 3, 1, 1, 1), generator=generator)
    return 0.5 * colour + 0.5 * torch.rand((n, 3, frames, size, size), generator=generator)


def clip_ids(n: int, prefix: str = "clip") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def check_budget(adversarial: Tensor, clean: Tensor, norm: str, eps: float) -> None:
    """Within the budget (up to float32 rounding) and in [0, 1]."""
    delta = (adversarial - clean).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5) + 1e-7, f"{norm} perturbation {float(size.max())} > {eps}"
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0
