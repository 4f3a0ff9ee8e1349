"""DiffPure's reverse-time VP-SDE as a torchsde SDE (an ``nn.Module`` with ``f`` and ``g``).

Solver time is s = 1 − τ, so the solver integrates forwards from s0 = 1 − t* to s1 = 1 − τ_end while diffusion
time τ runs backwards. The state is flat, (N, C·H·W); the reshape to frames happens here and nowhere else.
In diffusion time the reverse SDE is dx = [−½β(τ)x − β(τ)s(x, τ)] dτ + sqrt(β(τ)) dw̄; in solver time its drift
is the negation of that bracket.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from videopure.diffusion.score import ScoreModel


class ReverseVPSDE(nn.Module):
    """Diagonal-noise Itô SDE for torchsde.

    Args:
        score: the score model, frames (N, C, H, W) in [-1, 1] and times (N,) → score.
        frame_shape: (C, H, W) of one frame at the model's resolution.
        autocast_dtype: run the network under autocast in this dtype (bf16/fp16); the state stays float32.
        checkpoint_score: recompute the network's activations in the backward pass instead of storing them
            (autograd through the solver then keeps only one state per step).
    """

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(
        self,
        score: ScoreModel,
        frame_shape: tuple[int, int, int],
        autocast_dtype: torch.dtype | None = None,
        checkpoint_score: bool = False,
        channels_last: bool = False,
    ):
        super().__init__()
        self.score = score
        self.frame_shape = tuple(frame_shape)
        self.autocast_dtype = autocast_dtype
        self.checkpoint_score = checkpoint_score
        self.channels_last = channels_last

    def _score(self, frames: Tensor, tau: Tensor) -> Tensor:
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(frames.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            return self.score(frames, tau).float()

    def f(self, s: Tensor, y: Tensor) -> Tensor:
        tau = (1.0 - s).expand(y.shape[0])
        frames = y.view(y.shape[0], *self.frame_shape)
        if self.checkpoint_score and torch.is_grad_enabled():
            score = checkpoint(self._score, frames, tau, use_reentrant=False)
        else:
            score = self._score(frames, tau)
        beta = self.score.schedule.beta(tau)[:, None]
        return 0.5 * beta * y + beta * score.reshape(y.shape[0], -1)

    def g(self, s: Tensor, y: Tensor) -> Tensor:
        tau = 1.0 - s
        return torch.sqrt(self.score.schedule.beta(tau)).expand_as(y)
