"""``VideoClassifier``: clips ``(B, C, T, H, W)`` in ``[0, 1]`` → logits, with the model's input pipeline inside.

Everything between the pixels and the network is a differentiable torch op, so attack budgets stay in the
``[0, 1]`` pixel scale and gradients reach the pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from videopure.models.spec import InputSpec


def uniform_indices(num_in: int, num_out: int, device: torch.device | None = None) -> Tensor:
    """``num_out`` indices spread evenly over ``[0, num_in)`` (pytorchvideo's ``UniformTemporalSubsample``)."""
    return torch.linspace(0, num_in - 1, num_out, device=device).long()


def temporal_subsample(clips: Tensor, num_frames: int) -> Tensor:
    """``(B, C, T, H, W)`` → ``(B, C, num_frames, H, W)`` by uniform frame indices (repeats frames if T is short)."""
    if clips.shape[2] == num_frames:
        return clips
    return clips.index_select(2, uniform_indices(clips.shape[2], num_frames, clips.device))


def resize_short_side(clips: Tensor, size: int) -> Tensor:
    """Bilinear resize of every frame so its short side is ``size`` (pytorchvideo's ``short_side_scale``)."""
    b, c, t, h, w = clips.shape
    if min(h, w) == size:
        return clips
    if w < h:
        new_h, new_w = int(math.floor(h / w * size)), size
    else:
        new_h, new_w = size, int(math.floor(w / h * size))
    frames = F.interpolate(clips.reshape(b, c * t, h, w), size=(new_h, new_w), mode="bilinear", align_corners=False)
    return frames.reshape(b, c, t, new_h, new_w)


def center_crop(clips: Tensor, size: int) -> Tensor:
    """The central ``size × size`` window of every frame (offsets rounded as torchvision's ``center_crop``)."""
    h, w = clips.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"cannot center-crop {size}x{size} from frames of {h}x{w}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return clips[..., top : top + size, left : left + size]


def pack_slowfast(clips: Tensor, alpha: int) -> list[Tensor]:
    """``[slow, fast]`` pathways: slow takes ``T // alpha`` uniformly spaced frames (PySlowFast's packing).

    A new list on every call: pytorchvideo's SlowFast ``forward`` overwrites the list it is given.
    """
    slow = clips.index_select(2, uniform_indices(clips.shape[2], clips.shape[2] // alpha, clips.device))
    return [slow, clips]


class VideoClassifier(nn.Module):
    """A pytorchvideo network behind one interface: clips ``(B, C, T, H, W)`` in ``[0, 1]`` → logits.

    ``forward`` checks the input, subsamples ``T`` uniformly to ``spec.num_frames``, and when the frames are
    not ``crop_size`` squares resizes the short side to ``spec.short_side`` and center-crops; then normalises
    with ``spec.mean``/``spec.std``, packs SlowFast pathways, and runs ``net``. The output is unnormalised
    logits ``(B, num_classes)``: no softmax anywhere.

    Args:
        net: the pytorchvideo network (state-dict keys as the model zoo's).
        spec: the input it is built for.
        name: registry name, recorded in checkpoints to rebuild the model.
        num_classes: outputs of ``net``.
        head_name: dotted path of ``net``'s final ``nn.Linear``.
        arch_overrides: builder arguments that differ from the registry entry (plain values), for rebuilding.
        class_names: optional label names, one per class.
        check_range: reject inputs outside ``[0, 1]`` (costs one device sync per call).
    """

    def __init__(
        self,
        net: nn.Module,
        spec: InputSpec,
        *,
        name: str,
        num_classes: int,
        head_name: str,
        arch_overrides: dict[str, object] | None = None,
        class_names: Sequence[str] | None = None,
        check_range: bool = True,
    ) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.name = name
        self.num_classes = num_classes
        self.head_name = head_name
        self.arch_overrides = dict(arch_overrides or {})
        self.class_names = class_names
        self.check_range = check_range
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1, 1), persistent=False)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self._class_names

    @class_names.setter
    def class_names(self, names: Sequence[str] | None) -> None:
        if names is not None:
            names = tuple(str(n) for n in names)
            if len(names) != self.num_classes:
                raise ValueError(f"{len(names)} class names given for a {self.num_classes}-class classifier")
        self._class_names = names

    def check_input(self, clips: Tensor) -> None:
        """Raise ``ValueError`` unless ``clips`` is a float ``(B, C, T, H, W)`` tensor in ``[0, 1]``."""
        expected = f"clips of shape (B, {self.spec.channels}, T, H, W), float in [0, 1]"
        if not isinstance(clips, Tensor):
            raise ValueError(f"{self.name}: expected a tensor of {expected}, got {type(clips).__name__}")
        if clips.ndim != 5 or clips.shape[1] != self.spec.channels:
            raise ValueError(f"{self.name}: expected {expected}, got shape {tuple(clips.shape)}")
        if not clips.is_floating_point():
            raise ValueError(f"{self.name}: expected {expected}, got dtype {clips.dtype} (divide uint8 by 255)")
        if min(clips.shape) == 0:
            raise ValueError(f"{self.name}: expected {expected}, got an empty tensor of shape {tuple(clips.shape)}")
        if self.check_range:
            low, high = torch.aminmax(clips.detach())
            if not (low >= 0 and high <= 1):  # also rejects NaN
                raise ValueError(
                    f"{self.name}: expected {expected}, got values in [{low.item():.4g}, {high.item():.4g}]"
                )

    def preprocess(self, clips: Tensor) -> Tensor | list[Tensor]:
        """What ``net`` takes: normalised ``(B, C, num_frames, crop, crop)``, or ``[slow, fast]`` for SlowFast."""
        spec = self.spec
        clips = temporal_subsample(clips, spec.num_frames)
        if clips.shape[-2:] != (spec.crop_size, spec.crop_size):
            clips = center_crop(resize_short_side(clips, spec.short_side), spec.crop_size)
        clips = (clips - self.mean.to(clips.dtype)) / self.std.to(clips.dtype)
        if spec.slowfast_alpha is not None:
            return pack_slowfast(clips, spec.slowfast_alpha)
        return clips

    def forward(self, clips: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` in ``[0, 1]`` → logits ``(B, num_classes)``."""
        self.check_input(clips)
        return self.net(self.preprocess(clips))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_classes={self.num_classes}, spec={self.spec}"
