"""The model attacks and evaluation see: purifier ∘ classifier, with explicit per-clip randomness.

Every forward takes ``clip_ids`` and a ``draw`` number; a clip's purification noise comes from
(run seed, clip id, draw), so EOT samples (different draws) differ, the same draw replays exactly, and a clip's
result does not depend on its batch. Draw numbers are handed out by the caller: evaluation uses ``0 .. R-1``;
every attack uses draws from its own hashed stream (:func:`draw_base`), which never meets the evaluation's.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch import Tensor, nn

from videopure.purify import DiffusionPurifier
from videopure.purify.purifier import GradMode

_STREAM_BITS = 16  # draws per stream position: 2**16
_PROBABILITY_TOLERANCE = 1e-4


def draw_base(*parts: object) -> int:
    """First draw number of the stream named by ``parts``; the stream's draws are ``base + e``, e < 2**16.

    Bases are at least 2**16 apart from each other (w.h.p.) and from the evaluation draws ``0 .. R-1``.
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return ((int.from_bytes(digest[:6], "little") >> 1) + 1) << _STREAM_BITS


def check_logits(logits: Tensor, what: str = "the classifier") -> None:
    """Refuse outputs that are probabilities: attacks on a softmax saturate and overstate robustness."""
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"{what} must return logits of shape (B, num_classes >= 2), got {tuple(logits.shape)}")
    values = logits.detach()
    rows_are_distributions = (values.min() >= -_PROBABILITY_TOLERANCE) & (values.max() <= 1 + _PROBABILITY_TOLERANCE)
    rows_are_distributions &= ((values.sum(dim=1) - 1).abs() <= _PROBABILITY_TOLERANCE).all()
    if bool(rows_are_distributions):
        raise ValueError(
            f"{what} returns probabilities (every row is in [0, 1] and sums to 1), not logits. Gradients through a "
            "softmax saturate and mask the attack, so robustness would be overstated. Remove the final Softmax "
            "(pytorchvideo heads: head_activation=None, as videopure.models.create_classifier builds them)."
        )


class DefendedClassifier(nn.Module):
    """Clips (B, C, T, H, W) in [0, 1] → logits (B, K): purify, clamp to [0, 1], classify.

    Args:
        purifier: the purification (its ``settings.grad`` is the gradient mode); ``None`` for the bare,
            undefended classifier (gray-box transfer, sanity checks).
        classifier: clips in [0, 1] → logits, e.g. a :class:`~videopure.models.VideoClassifier`.

    The purifier's output is not clamped, the classifier expects [0, 1]: the clamp here is part of the defended
    function (DiffPure's pipeline clamps likewise before its classifier). Outputs that look like probabilities are
    refused (:func:`check_logits`).
    """

    def __init__(self, purifier: DiffusionPurifier | None, classifier: nn.Module):
        super().__init__()
        self.purifier = purifier
        self.classifier = classifier

    @property
    def stochastic(self) -> bool:
        """Whether outputs depend on the draw (a purifier is in front)."""
        return self.purifier is not None

    @property
    def grad_mode(self) -> GradMode | None:
        """How gradients pass the purifier (``None`` without one)."""
        return None if self.purifier is None else self.purifier.settings.grad

    def with_grad(self, mode: GradMode) -> DefendedClassifier:
        """A sibling sharing all weights whose purifier passes gradients by ``mode`` (adjoint, direct, bpda)."""
        if self.purifier is None:
            return self
        return DefendedClassifier(self.purifier.replace(grad=mode).to(self._device()), self.classifier)

    def bare(self) -> DefendedClassifier:
        """The undefended classifier behind the same interface (clip ids and draws are ignored)."""
        return DefendedClassifier(None, self.classifier)

    def forward(self, clips: Tensor, clip_ids: Sequence[str] | None = None, draw: int = 0) -> Tensor:
        """Logits of ``clips``; clip b is purified with the noise of (run seed, ``clip_ids[b]``, ``draw``)."""
        if self.purifier is not None:
            clips = self.purifier(clips, clip_ids=clip_ids, draw=draw).clamp(0.0, 1.0)
        logits = self.classifier(clips)
        check_logits(logits)
        return logits

    def _device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")


def as_defended(model: nn.Module) -> DefendedClassifier:
    """``model`` itself if it is a :class:`DefendedClassifier`, else the bare classifier ``model``."""
    return model if isinstance(model, DefendedClassifier) else DefendedClassifier(None, model)
