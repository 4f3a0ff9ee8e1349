"""One score interface over the diffusion families DiffPure uses.

A :class:`ScoreModel` maps frames ``x`` (N, C, H, W) in [-1, 1] and diffusion times ``t`` (N,) in (0, 1] to the
score of the VP-SDE marginal, exactly as DiffPure computes it. Each family only says how to get the noise
prediction ε from its network (like k-diffusion's per-family denoiser wrappers); the score is -ε / std(t)
with the continuous VP schedule for both.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from videopure.diffusion.schedule import VPSchedule


class ScoreModel(nn.Module):
    """Base class: ``forward(x, t)`` returns the score; subclasses implement :meth:`eps`."""

    def __init__(self, net: nn.Module, schedule: VPSchedule = VPSchedule()):
        super().__init__()
        self.net = net
        self.schedule = schedule

    @property
    def image_size(self) -> int:
        return int(self.net.image_size)

    @property
    def in_channels(self) -> int:
        return int(self.net.in_channels)

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        """Noise prediction of the network at diffusion time ``t`` (N,)."""
        raise NotImplementedError

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        eps = self.eps(x, t)
        std = self.schedule.std(t.to(torch.float32))
        return -eps.to(x.dtype) / std.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


class ADMScore(ScoreModel):
    """guided-diffusion ε-model: called at the integer step floor(N t); the first C output channels are ε."""

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        steps = (t.float() * self.schedule.num_steps).long()
        return self.net(x, steps)[:, : x.shape[1]]


class ScoreSDEScore(ScoreModel):
    """Score-SDE (NCSN++/DDPM++, continuous VP) network: called with the float label (N - 1) t; output is ε."""

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(x, t * (self.schedule.num_steps - 1))


def as_score_model(net: nn.Module, schedule: VPSchedule = VPSchedule()) -> ScoreModel:
    """Wrap a network from ``create_adm``/``create_ncsnpp``/``load_preset`` in its family's score adapter."""
    if isinstance(net, ScoreModel):
        return net
    from videopure.diffusion.adm import UNetModel
    from videopure.diffusion.ncsnpp import NCSNpp

    if isinstance(net, UNetModel):
        if getattr(net, "num_classes", None) is not None:
            raise ValueError("a class-conditional ADM network needs labels; DiffPure purifies with unconditional models")
        return ADMScore(net, schedule)
    if isinstance(net, NCSNpp):
        return ScoreSDEScore(net, schedule)
    raise TypeError(
        f"no score adapter for {type(net).__name__}; expected a network from create_adm, create_ncsnpp or load_preset"
    )
