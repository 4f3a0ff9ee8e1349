"""What a classifier expects (:class:`InputSpec`) and how the registry builds it (:class:`ClassifierEntry`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from torch import nn

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """The clip a network is built for; :class:`~videopure.models.VideoClassifier` brings any clip to it.

    Attributes:
        num_frames: frames the network sees (for SlowFast: the fast pathway).
        sampling_rate: stride between those frames in the source video (for data loaders).
        crop_size: side of the square crop the network is built for.
        short_side: short side a frame is resized to before the center crop (the zoo's evaluation scale).
        mean, std: per-channel normalisation of ``[0, 1]`` pixels (RGB).
        slowfast_alpha: the slow pathway sees ``num_frames // slowfast_alpha`` frames; ``None`` for one pathway.
    """

    num_frames: int
    sampling_rate: int
    crop_size: int
    short_side: int
    mean: tuple[float, ...] = KINETICS_MEAN
    std: tuple[float, ...] = KINETICS_STD
    slowfast_alpha: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        for name in ("num_frames", "sampling_rate", "crop_size", "short_side"):
            _check_positive_int(name, getattr(self, name))
        if self.short_side < self.crop_size:
            raise ValueError(f"InputSpec.short_side ({self.short_side}) must be >= crop_size ({self.crop_size})")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"InputSpec.mean and std need 3 values (RGB), got {self.mean} and {self.std}")
        if min(self.std) <= 0:
            raise ValueError(f"InputSpec.std must be positive, got {self.std}")
        if self.slowfast_alpha is not None:
            _check_positive_int("slowfast_alpha", self.slowfast_alpha)
            if self.num_frames % self.slowfast_alpha:
                raise ValueError(
                    f"InputSpec.num_frames ({self.num_frames}) must be a multiple of "
                    f"slowfast_alpha ({self.slowfast_alpha})"
                )

    @property
    def channels(self) -> int:
        return len(self.mean)

    def replace(self, **changes: Any) -> InputSpec:
        """A copy with ``changes``; ``short_side`` follows a changed ``crop_size`` unless it is given too."""
        unknown = sorted(set(changes) - spec_fields())
        if unknown:
            raise ValueError(f"unknown InputSpec field(s) {unknown}; fields: {sorted(spec_fields())}")
        if "crop_size" in changes and "short_side" not in changes:
            changes["short_side"] = round(changes["crop_size"] * self.short_side / self.crop_size)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (safe for ``torch.load(weights_only=True)`` and YAML)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        unknown = sorted(set(data) - spec_fields())
        if unknown:
            raise ValueError(f"unknown InputSpec field(s) {unknown}; fields: {sorted(spec_fields())}")
        return cls(**data)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"InputSpec.{name} must be a positive integer, got {value!r}")


def spec_fields() -> frozenset[str]:
    """Names of the :class:`InputSpec` fields."""
    return frozenset(f.name for f in dataclasses.fields(InputSpec))


@dataclass(frozen=True)
class ClassifierEntry:
    """One named classifier: a pytorchvideo builder, its fixed arguments and its input spec.

    Attributes:
        name: registry name (``x3d_m``).
        builder: a pytorchvideo ``create_*`` function.
        input_spec: the spec the model-zoo weights were trained with.
        size_kwargs: builder arguments that follow the input size (head pooling, positional embeddings).
        arch_kwargs: the builder arguments of pytorchvideo's hub entry (the zoo's architecture).
        head_name: dotted path of the final ``nn.Linear``; replaced when the class count differs from the zoo's.
        num_classes_kwarg: the builder argument for the class count.
        zoo_file: file name of the Kinetics-400 model-zoo checkpoint, if there is one.
        zoo_num_classes: classes of the zoo checkpoint's head.
    """

    name: str
    builder: Callable[..., nn.Module]
    input_spec: InputSpec
    size_kwargs: Callable[[InputSpec], dict[str, Any]]
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    head_name: str = "blocks.5.proj"
    num_classes_kwarg: str = "model_num_class"
    zoo_file: str | None = None
    zoo_num_classes: int = 400

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch_kwargs", MappingProxyType(dict(self.arch_kwargs)))
