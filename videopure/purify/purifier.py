"""DiffPure applied frame by frame to clips: diffuse to t*, then solve the reverse VP-SDE back to τ ≈ 0.

Clips (B, C, T, H, W) in [0, 1] are flattened to frames (B·T, C, H, W), resized to the diffusion model's
resolution, scaled to [-1, 1], noised with the discrete schedule at step t = 1000·t*, and denoised with
torchsde's Euler solver on DiffPure's reverse SDE; the result is scaled back to [0, 1] (not clamped) and resized
to the input resolution. Frames go through the solver in micro-batches of ``frame_batch`` frames.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
import torchsde
from einops import rearrange
from torch import Tensor, nn

from videopure.diffusion.schedule import VPSchedule
from videopure.diffusion.score import ScoreModel, as_score_model
from videopure.purify.noise import NOISE_MODES, ClipNoise, FrameBrownian, NoiseMode, clip_seed, draw_clip_noise
from videopure.purify.sde import ReverseVPSDE

logger = logging.getLogger(__name__)

GradMode = Literal["adjoint", "direct", "bpda"]
Precision = Literal["float32", "bfloat16", "float16"]
GRAD_MODES: tuple[str, ...] = ("adjoint", "direct", "bpda")
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


class PurificationError(RuntimeError):
    """The solver produced non-finite values; the message names the clips."""


@dataclasses.dataclass(frozen=True)
class PurifierSettings:
    """Everything about a purification except the network. See :class:`DiffusionPurifier`."""

    t_star: float
    dt: float = 1e-3
    noise: NoiseMode = "independent"
    grad: GradMode = "adjoint"
    seed: int = 0
    frame_batch: int | None = None
    precision: Precision = "float32"
    channels_last: bool = False
    t_end: float = 1e-5

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {self.noise!r}")
        if self.grad not in GRAD_MODES:
            raise ValueError(f"grad must be one of {GRAD_MODES}, got {self.grad!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}")
        if not 0.0 < self.t_end < self.t_star <= 1.0:
            raise ValueError(f"t_star must lie in ({self.t_end}, 1], got {self.t_star}")
        if not 0.0 < self.dt <= self.t_star:
            raise ValueError(f"dt must lie in (0, t_star={self.t_star}], got {self.dt}")
        if self.frame_batch is not None and self.frame_batch < 1:
            raise ValueError(f"frame_batch must be a positive number of frames, got {self.frame_batch}")


class DiffusionPurifier(nn.Module):
    """Purify clips (B, C, T, H, W) in [0, 1] with an image diffusion model, frame by frame.

    Args:
        model: a network from ``create_adm``/``create_ncsnpp``/``load_preset`` (or a :class:`ScoreModel`).
        t_star: diffusion time to noise to; DiffPure uses 0.1 (CIFAR-10) and 0.15 (ImageNet). ``1000·t_star``
            must be an integer step of the discrete schedule.
        dt: Euler step of the reverse SDE solve.
        noise: ``"independent"`` (each frame its own ε and Brownian path, DiffPure's behaviour) or ``"shared"``
            (all frames of a clip share ε and the path: identical frames stay identical).
        grad: how gradients flow to the input: ``"adjoint"`` (torchsde's stochastic adjoint, memory flat in the
            number of steps, adjoint over the input only), ``"direct"`` (autograd through the Euler steps with
            the network's activations recomputed per step) or ``"bpda"`` (identity backward).
        seed: run seed; with ``clip_ids`` each clip's noise comes from (seed, clip id, draw).
        frame_batch: frames per solver call (all frames at once when None).
        precision: ``"float32"``, or ``"bfloat16"``/``"float16"`` autocast for the network (GPU).
        channels_last: feed the network channels-last tensors (converts the network's weights in place).
        t_end: diffusion time the reverse solve stops at.
    """

    def __init__(self, model: nn.Module, *, t_star: float, schedule: VPSchedule = VPSchedule(), **settings):
        super().__init__()
        self.score_model: ScoreModel = as_score_model(model, schedule)
        self.settings = PurifierSettings(t_star=t_star, **settings)
        steps = self.settings.t_star * schedule.num_steps
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"t_star={t_star} is not a step of the {schedule.num_steps}-step schedule "
                f"(t_star * {schedule.num_steps} must be an integer)"
            )
        self.noise_step = int(round(steps))
        self.register_buffer("_alpha_bar", schedule.discrete_alpha_bar()[self.noise_step - 1].reshape(()), persistent=False)
        if self.settings.channels_last:
            self.score_model.net.to(memory_format=torch.channels_last)

    def replace(self, **changes) -> "DiffusionPurifier":
        """A purifier sharing this one's network with some settings changed (e.g. ``grad="bpda"``)."""
        settings = dataclasses.asdict(self.settings) | changes
        return DiffusionPurifier(self.score_model, schedule=self.score_model.schedule, **settings)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        size = self.score_model.image_size
        return (self.score_model.in_channels, size, size)

    def forward(self, clips: Tensor, clip_ids: Sequence[str] | None = None, draw: int = 0) -> Tensor:
        """Purify clips (B, C, T, H, W) in [0, 1]; returns the same shape.

        With ``clip_ids``, clip b's noise is drawn from seed (run seed, ``clip_ids[b]``, ``draw``): the result does
        not depend on the rest of the batch. Without, noise comes from torch's default generator.
        """
        self._check_clips(clips)
        batch, _, frames_per_clip = clips.shape[:3]
        if clip_ids is not None and len(clip_ids) != batch:
            raise ValueError(f"got {len(clip_ids)} clip ids for a batch of {batch} clips")
        noises = [
            draw_clip_noise(
                None if clip_ids is None else clip_seed(self.settings.seed, str(clip_ids[b]), draw),
                frames_per_clip,
                self.frame_shape,
                self.settings.noise,
            )
            for b in range(batch)
        ]
        frames = rearrange(clips, "b c t h w -> (b t) c h w")
        purified = self._bpda_or(frames, lambda x: self._purify_with_noise(x, noises, frames_per_clip))
        names = list(map(str, clip_ids)) if clip_ids is not None else [f"#{b}" for b in range(batch)]
        self._check_finite(purified.reshape(batch, -1), names)
        return rearrange(purified, "(b t) c h w -> b c t h w", b=batch)

    def purify_frames(self, frames: Tensor, eps: Tensor | None = None, bm: torchsde.BaseBrownian | None = None) -> Tensor:
        """Purify frames (N, C, H, W) in [0, 1], optionally with a given forward noise and Brownian path.

        ``eps`` has the model's frame shape (N, C, S, S); ``bm`` is a torchsde Brownian motion of shape (N, C·S·S)
        over solver time [1 − t*, 1 − t_end], queried forwards step by step as ``torchsde.sdeint`` does. With both
        given the result is an exact replay. Frames without given noise use torch's default generator.
        """
        if frames.ndim != 4:
            raise ValueError(f"frames must be (N, C, H, W), got shape {tuple(frames.shape)}")
        self._check_values(frames, "frames")
        count = frames.shape[0]
        if eps is not None and tuple(eps.shape) != (count, *self.frame_shape):
            raise ValueError(f"eps must have shape {(count, *self.frame_shape)}, got {tuple(eps.shape)}")
        if bm is not None and tuple(bm.shape) != (count, self._state_dim):
            raise ValueError(f"bm must have shape {(count, self._state_dim)}, got {tuple(bm.shape)}")
        noise = eps if eps is not None else torch.randn((count, *self.frame_shape))
        runs = None if bm is not None else [(int(e), 1) for e in torch.randint(0, 2**62, (count,)).tolist()]

        def purify(x: Tensor) -> Tensor:
            x0 = self._diffuse(x, noise)
            solved = self._solve(x0, bm) if runs is None else self._solve_in_batches(x0, runs)
            return self._from_model(solved, x.shape[-2:])

        out = self._bpda_or(frames, purify)
        self._check_finite(out.reshape(count, -1), [f"frame {i}" for i in range(count)])
        return out

    # -- internals -------------------------------------------------------------------------------------------------

    @property
    def _state_dim(self) -> int:
        c, h, w = self.frame_shape
        return c * h * w

    def _bpda_or(self, frames: Tensor, purify) -> Tensor:
        """Run ``purify``; in ``bpda`` mode without a graph, passing gradients straight through."""
        if self.settings.grad == "bpda" and torch.is_grad_enabled():
            with torch.no_grad():
                purified = purify(frames)
            return frames + (purified - frames).detach()
        return purify(frames)

    def _purify_with_noise(self, frames: Tensor, noises: list[ClipNoise], frames_per_clip: int) -> Tensor:
        eps = torch.cat([noise.eps.expand(frames_per_clip, -1, -1, -1) if noise.num_sources == 1 else noise.eps for noise in noises])
        runs = _merge_runs(
            [noise.entropies[noise.source_of(t)] for noise in noises for t in range(frames_per_clip)]
        )
        x0 = self._diffuse(frames, eps)
        return self._from_model(self._solve_in_batches(x0, runs), frames.shape[-2:])

    def _diffuse(self, frames: Tensor, eps: Tensor) -> Tensor:
        """[0, 1] frames → model resolution in [-1, 1] → x(t*) = sqrt(ᾱ) x0 + sqrt(1 − ᾱ) ε."""
        size = self.frame_shape[1:]
        if tuple(frames.shape[-2:]) != size:
            frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        x0 = frames * 2.0 - 1.0
        alpha_bar = self._alpha_bar.to(x0.dtype)
        return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * eps.to(device=x0.device, dtype=x0.dtype)

    def _from_model(self, x: Tensor, size: torch.Size) -> Tensor:
        out = (x + 1.0) / 2.0
        if tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out

    def _solver_times(self, x: Tensor) -> Tensor:
        """[s0, s1] = [1 − t*, 1 − t_end] in the state's dtype, as the solver and the Brownian paths see them."""
        s0 = 1.0 - self.noise_step / self.score_model.schedule.num_steps
        return torch.tensor([s0, 1.0 - self.settings.t_end], dtype=x.dtype, device=x.device)

    def _solve_in_batches(self, x: Tensor, runs: list[tuple[int, int]]) -> Tensor:
        """Solve frames in micro-batches; ``runs`` are (Brownian entropy, number of consecutive frames)."""
        s0, s1 = self._solver_times(x).tolist()
        chunk = self.settings.frame_batch or x.shape[0]
        outputs = []
        for start in range(0, x.shape[0], chunk):
            stop = min(start + chunk, x.shape[0])
            bm = FrameBrownian(s0, s1, self._state_dim, _slice_runs(runs, start, stop), dtype=x.dtype, device=x.device)
            outputs.append(self._solve(x[start:stop], bm))
        return torch.cat(outputs)

    def _solve(self, x: Tensor, bm: torchsde.BaseBrownian) -> Tensor:
        """One torchsde solve of the reverse SDE from s0 = 1 − t* to s1 = 1 − t_end for frames x (n, C, S, S)."""
        grad = self.settings.grad
        needs_graph = torch.is_grad_enabled() and x.requires_grad
        sde = ReverseVPSDE(
            self.score_model,
            self.frame_shape,
            autocast_dtype=PRECISIONS[self.settings.precision],
            checkpoint_score=needs_graph and grad == "direct",
            channels_last=self.settings.channels_last,
        )
        ts = self._solver_times(x)
        y0 = x.reshape(x.shape[0], -1)
        if needs_graph and grad == "adjoint":
            ys = torchsde.sdeint_adjoint(
                sde, y0, ts, bm=bm, method="euler", adjoint_method="euler", dt=self.settings.dt, adjoint_params=()
            )
        else:
            ys = torchsde.sdeint(sde, y0, ts, bm=bm, method="euler", dt=self.settings.dt)
        return ys[-1].view_as(x)

    def _check_clips(self, clips: Tensor) -> None:
        if clips.ndim != 5:
            raise ValueError(f"clips must be (B, C, T, H, W), got shape {tuple(clips.shape)}")
        if clips.shape[1] != self.frame_shape[0]:
            raise ValueError(
                f"clips have {clips.shape[1]} channels at dim 1; the diffusion model expects {self.frame_shape[0]} "
                "(layout is (B, C, T, H, W))"
            )
        self._check_values(clips, "clips")

    @staticmethod
    def _check_values(x: Tensor, name: str) -> None:
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contain NaN or infinite values")
        low, high = float(x.detach().min()), float(x.detach().max())
        if low < 0.0 or high > 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]")

    @staticmethod
    def _check_finite(flat: Tensor, names: Sequence[str]) -> None:
        bad = (~torch.isfinite(flat.detach())).any(dim=1)
        if bad.any():
            culprits = [names[i] for i in torch.nonzero(bad).flatten().tolist()]
            raise PurificationError(f"the reverse SDE solve produced NaN/inf for clip(s) {', '.join(culprits)}")


def _merge_runs(entropies: list[int]) -> list[tuple[int, int]]:
    """Consecutive equal entropies → (entropy, count) runs."""
    runs: list[tuple[int, int]] = []
    for entropy in entropies:
        if runs and runs[-1][0] == entropy:
            runs[-1] = (entropy, runs[-1][1] + 1)
        else:
            runs.append((entropy, 1))
    return runs


def _slice_runs(runs: list[tuple[int, int]], start: int, stop: int) -> list[tuple[int, int]]:
    """The runs covering frames [start, stop)."""
    sliced, position = [], 0
    for entropy, count in runs:
        lo, hi = max(position, start), min(position + count, stop)
        if lo < hi:
            sliced.append((entropy, hi - lo))
        position += count
    return sliced
