"""Clip transforms with torch ops (``pytorchvideo.transforms`` does not import with current torchvision)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["resize_short_side", "center_crop", "to_float_clip"]


def _check_frames(frames: torch.Tensor) -> None:
    if frames.dtype != torch.uint8 or frames.ndim < 3 or frames.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected uint8 frames (..., H, W, C) with C = 1 or 3, got {frames.dtype} of shape {tuple(frames.shape)}"
        )


def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 frames ``(..., H, W, C)`` so that the shorter side is ``size`` (bilinear, antialiased)."""
    _check_frames(frames)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    height, width = frames.shape[-3:-1]
    if height <= width:
        new_size = (size, max(size, round(width * size / height)))
    else:
        new_size = (max(size, round(height * size / width)), size)
    if new_size == (height, width):
        return frames
    flat = frames.reshape(-1, height, width, frames.shape[-1]).permute(0, 3, 1, 2).float()
    resized = F.interpolate(flat, size=new_size, mode="bilinear", align_corners=False, antialias=True)
    resized = resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return resized.reshape(*frames.shape[:-3], *new_size, frames.shape[-1]).contiguous()


def center_crop(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop the centre ``size`` (an int: square; or ``(height, width)``) of frames ``(..., H, W, C)``."""
    _check_frames(frames)
    crop_h, crop_w = (size, size) if isinstance(size, int) else size
    height, width = frames.shape[-3:-1]
    if not (0 < crop_h <= height and 0 < crop_w <= width):
        raise ValueError(f"crop {crop_h}x{crop_w} does not fit in frames of {height}x{width}")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return frames[..., top : top + crop_h, left : left + crop_w, :]


def to_float_clip(clip: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 clip ``(T, H, W, C)`` (or a batch ``(B, T, H, W, C)``) → float32 ``(C, T, H, W)`` (``(B, C, T, H, W)``) in [0, 1]."""
    frames = torch.as_tensor(clip)
    _check_frames(frames)
    if frames.ndim not in (4, 5):
        raise ValueError(f"expected a clip (T, H, W, C) or a batch (B, T, H, W, C), got shape {tuple(frames.shape)}")
    return frames.movedim(-1, -4).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
