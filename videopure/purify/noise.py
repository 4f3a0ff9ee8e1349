"""Explicit, per-clip randomness for purification.

Every clip's forward noise ε and Brownian path come from its own seed, derived from (run seed, clip id, draw),
so a clip's purification does not depend on its batch, the batch size, the order or the number of workers.
``draw`` numbers the purifications of one clip (EOT samples, repeated evaluations).

Noise is laid out per frame. In ``independent`` mode every frame has its own ε and its own Brownian path; in
``shared`` mode all frames of a clip use the clip's single ε and single path (temporal noise sharing).
:class:`FrameBrownian` presents any selection of those per-frame paths as one torchsde Brownian motion of shape
(frames, C·H·W); it can be queried in any order (forwards by the solver, backwards by the adjoint).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torchsde
from torch import Tensor

NoiseMode = Literal["independent", "shared"]
NOISE_MODES: tuple[str, ...] = ("independent", "shared")

_SEED_BITS = 63


def clip_seed(run_seed: int, clip_id: str, draw: int = 0) -> int:
    """A 63-bit seed from (run seed, clip id, draw): stable across processes, machines and Python versions."""
    digest = hashlib.sha256(f"{run_seed}\x1f{clip_id}\x1f{draw}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << _SEED_BITS) - 1)


@dataclass(frozen=True)
class ClipNoise:
    """One clip's noise: ε per noise source (C, H, W) and one Brownian entropy per noise source.

    A clip has T noise sources in ``independent`` mode and one in ``shared`` mode; ``source_of(frame)`` maps a frame
    to its source.
    """

    eps: Tensor  # (S, C, H, W), S = T or 1
    entropies: tuple[int, ...]  # S Brownian entropies

    @property
    def num_sources(self) -> int:
        return len(self.entropies)

    def source_of(self, frame: int) -> int:
        return frame if self.num_sources > 1 else 0


def draw_clip_noise(seed: int | None, num_frames: int, frame_shape: tuple[int, int, int], mode: NoiseMode) -> ClipNoise:
    """Draw a clip's noise from ``seed`` (or from torch's default generator when ``seed`` is None).

    Drawn on the CPU, so the same seed gives the same ε on every device.
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    sources = num_frames if mode == "independent" else 1
    eps = torch.randn((sources, *frame_shape), generator=generator)
    entropies = torch.randint(0, 2**_SEED_BITS - 1, (sources,), generator=generator).tolist()
    return ClipNoise(eps=eps, entropies=tuple(int(e) for e in entropies))


class FrameBrownian(torchsde.BaseBrownian):
    """A Brownian motion of shape (frames, D) whose rows are per-source paths, repeated for frames sharing a source.

    ``runs`` lists (entropy, count): ``count`` consecutive frames driven by the path with that entropy. Each path is a
    fresh ``torchsde.BrownianInterval`` of shape (1, D), so the same entropy queried in the same order always gives
    the same increments, whichever other paths share the solve.
    """

    __slots__ = ("_paths", "_counts", "_shape", "_dtype", "_device")

    def __init__(self, t0: float, t1: float, dim: int, runs: Sequence[tuple[int, int]], dtype: torch.dtype, device: torch.device):
        if not runs:
            raise ValueError("FrameBrownian needs at least one (entropy, count) run")
        self._paths = [
            torchsde.BrownianInterval(
                t0=t0, t1=t1, size=(1, dim), entropy=entropy, dtype=dtype, device=device, levy_area_approximation="none"
            )
            for entropy, _ in runs
        ]
        self._counts = [count for _, count in runs]
        self._shape = (sum(self._counts), dim)
        self._dtype = dtype
        self._device = torch.device(device)

    def __call__(self, ta: Tensor, tb: Tensor | None = None, return_U: bool = False, return_A: bool = False) -> Tensor:
        if return_U or return_A:
            raise ValueError("FrameBrownian provides increments only (levy_area_approximation='none')")
        increments = [path(ta, tb) for path in self._paths]
        if all(count == 1 for count in self._counts):
            return torch.cat(increments, dim=0)
        return torch.cat([w.expand(count, -1) for w, count in zip(increments, self._counts)], dim=0)

    def __repr__(self) -> str:
        return f"FrameBrownian(paths={len(self._paths)}, shape={self._shape})"

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def levy_area_approximation(self) -> str:
        return "none"
