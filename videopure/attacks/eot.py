"""What every attack shares: the EOT loss/gradient oracle, best-candidate bookkeeping and the result type.

Expectation over Transformation: the loss gradient at x is averaged over ``eot`` purifications of x with distinct
draws, one forward and backward pass at a time (memory does not grow with ``eot``). Success is judged over
those draws too: an iterate's ``wrong`` is the fraction of its draws that misclassify it, so one lucky draw does
not "break" a clip. The attack returns, per clip, the iterate that was wrong most often (ties: higher loss).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from videopure.attacks.defended import DefendedClassifier, draw_base
from videopure.attacks.losses import LossFn
from videopure.purify import clip_seed

logger = logging.getLogger(__name__)


@dataclass
class CallCount:
    """Model calls made by one attack run (forward-only and forward+backward)."""

    forward: int = 0
    gradient: int = 0


@dataclass(frozen=True)
class Probe:
    """The EOT average at one point: ``loss`` (B,), ``grad`` like x (None without gradients), ``wrong`` (B,) in [0, 1]."""

    loss: Tensor
    wrong: Tensor
    grad: Tensor | None = None
    logits: Tensor | None = field(default=None, repr=False)  # mean over draws (B, K)


def probe(
    model: DefendedClassifier,
    x: Tensor,
    labels: Tensor,
    clip_ids: Sequence[str],
    draws: Sequence[int],
    loss_fn: LossFn,
    calls: CallCount,
    with_grad: bool = True,
) -> Probe:
    """Average loss, gradient and misclassification of ``model`` at ``x`` over ``draws`` (one pass per draw)."""
    grad = torch.zeros_like(x) if with_grad else None
    loss = torch.zeros(x.shape[0], device=x.device)
    wrong = torch.zeros(x.shape[0], device=x.device)
    logits_sum = None
    for draw in draws:
        with torch.set_grad_enabled(with_grad):
            point = x.detach().requires_grad_(with_grad)
            logits = model(point, clip_ids=clip_ids, draw=draw)
            losses = loss_fn(logits, labels)
        if with_grad:
            (g,) = torch.autograd.grad(losses.sum(), point)
            grad += g
            calls.gradient += 1
        else:
            calls.forward += 1
        loss += losses.detach()
        wrong += (logits.detach().argmax(dim=1) != labels).float()
        logits_sum = logits.detach() if logits_sum is None else logits_sum + logits.detach()
    n = len(draws)
    return Probe(loss=loss / n, wrong=wrong / n, grad=None if grad is None else grad / n, logits=logits_sum / n)


def eot_draws(model: DefendedClassifier, eot: int, *position: object) -> list[int]:
    """The draws of one stream position: ``eot`` of them for a stochastic model, one for a deterministic one."""
    base = draw_base(*position)
    return [base + e for e in range(eot if model.stochastic else 1)]


def clip_generators(seed: int, clip_ids: Sequence[str], *position: object) -> list[torch.Generator]:
    """One CPU generator per clip, seeded from (seed, clip id, stream position): batch-independent starts."""
    draw = draw_base(*position)
    return [torch.Generator().manual_seed(clip_seed(seed, str(clip_id), draw)) for clip_id in clip_ids]


def zero_gradient(grad: Tensor) -> Tensor:
    """(B,) clips whose gradient is exactly zero everywhere: a sign of gradient masking."""
    return (grad.flatten(1) == 0).all(dim=1)


class Candidates:
    """Per clip, the best adversarial so far by (fraction of draws wrong, loss), kept apart from the best-loss point."""

    def __init__(self, x: Tensor, first: Probe):
        self.x = x.detach().clone()
        self.wrong = first.wrong.clone()
        self.loss = first.loss.clone()

    def offer(self, x: Tensor, probe_: Probe, rows: Tensor | None = None) -> None:
        """Keep ``x`` (for clips ``rows`` of the full batch, or all) where it beats the current candidate."""
        rows = torch.arange(self.x.shape[0], device=self.x.device) if rows is None else rows
        better = (probe_.wrong > self.wrong[rows]) | ((probe_.wrong == self.wrong[rows]) & (probe_.loss > self.loss[rows]))
        chosen = rows[better]
        self.x[chosen] = x.detach()[better]
        self.wrong[chosen] = probe_.wrong[better]
        self.loss[chosen] = probe_.loss[better]

    def unbroken(self) -> Tensor:
        """Indices of clips not misclassified on every draw of their best candidate."""
        return torch.nonzero(self.wrong < 1.0).flatten()


@dataclass(frozen=True)
class AttackResult:
    """What an attack returns for clips (B, C, T, H, W).

    Attributes:
        adversarial: the chosen clip per input, within the budget and in [0, 1].
        success_rate: (B,) fraction of the attack's own draws misclassifying it (not a robustness estimate:
            evaluate ``adversarial`` with fresh draws for that).
        zero_grad: (B,) a gradient was exactly zero at some iterate (gradient masking?).
        calls: model calls the attack made.
    """

    adversarial: Tensor
    success_rate: Tensor
    zero_grad: Tensor
    calls: CallCount


def warn_zero_gradients(name: str, zero: Tensor, clip_ids: Sequence[str]) -> None:
    if bool(zero.any()):
        culprits = [str(clip_ids[i]) for i in torch.nonzero(zero).flatten().tolist()]
        logger.warning(
            "%s: exactly zero input gradient for clip(s) %s: gradients may be masked (saturated softmax, "
            "clamping, non-differentiable preprocessing); robustness may be overstated",
            name, ", ".join(culprits),
        )
