"""PNG figures people look at: frames of the same clip in several forms, one row per form."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor


def save_frame_grid(rows: Mapping[str, Tensor], path: Path, num_frames: int = 4, title: str | None = None) -> Path:
    """Save a grid: one row per named clip (C, T, H, W) in [0, 1], ``num_frames`` uniformly spaced frames each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("save_frame_grid needs at least one row")
    length = next(iter(rows.values())).shape[1]
    picks = torch.linspace(0, length - 1, min(num_frames, length)).round().long().tolist()
    fig, axes = plt.subplots(len(rows), len(picks), figsize=(2.0 * len(picks), 2.1 * len(rows)), squeeze=False)
    for r, (name, clip) in enumerate(rows.items()):
        for c, t in enumerate(picks):
            ax = axes[r][c]
            ax.imshow(clip[:, t].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
