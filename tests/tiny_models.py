"""Tiny networks for fast tests: a 16-pixel ADM with every structural option DiffPure's models use."""

from __future__ import annotations

import torch

from videopure.diffusion.presets import freeze

TINY_ADM = {
    "image_size": 16,
    "num_channels": 32,
    "num_res_blocks": 1,
    "channel_mult": "1,2",
    "learn_sigma": True,
    "attention_resolutions": "8",
    "num_head_channels": 16,
    "use_scale_shift_norm": True,
    "resblock_updown": True,
}


def randomized(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero random weights everywhere (guided-diffusion zero-initialises its output conv), frozen."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return freeze(net)
