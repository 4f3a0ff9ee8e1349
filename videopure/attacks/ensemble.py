"""Attacks run in sequence, each on the clips the ones before did not break; AutoAttack's "rand" version."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from videopure.attacks.apgd import APGD
from videopure.attacks.base import Attack
from videopure.attacks.eot import AttackResult, CallCount

AUTOATTACK_RAND_ITERS = 100
AUTOATTACK_RAND_EOT = 20


@dataclass(frozen=True, eq=False)
class Ensemble:
    """Run ``attacks`` in order; a clip goes on to the next attack unless every draw of the last attack
    misclassified its candidate. Per clip, the candidate wrong on the largest fraction of its draws is kept
    (ties: the earlier attack's)."""

    attacks: tuple[Attack, ...]

    def __post_init__(self) -> None:
        if not self.attacks:
            raise ValueError("an ensemble needs at least one attack")

    def __call__(self, clips: Tensor, labels: Tensor, clip_ids: Sequence[str]) -> AttackResult:
        clip_ids = [str(i) for i in clip_ids]
        first, *rest = self.attacks
        result = first(clips, labels, clip_ids)
        adversarial, rate, zero = result.adversarial.clone(), result.success_rate.clone(), result.zero_grad.clone()
        calls = dataclasses.replace(result.calls)
        for attack in rest:
            rows = torch.nonzero(rate < 1.0).flatten()
            if rows.numel() == 0:
                break
            part = attack(clips[rows], labels[rows], [clip_ids[i] for i in rows.tolist()])
            better = part.success_rate > rate[rows]
            adversarial[rows[better]] = part.adversarial[better]
            rate[rows[better]] = part.success_rate[better]
            zero[rows] |= part.zero_grad
            calls = CallCount(calls.forward + part.calls.forward, calls.gradient + part.calls.gradient)
        return AttackResult(adversarial, rate, zero, calls)


def autoattack_rand(
    model: nn.Module,
    eps: float,
    *,
    norm: str = "linf",
    n_iter: int = AUTOATTACK_RAND_ITERS,
    eot_iter: int = AUTOATTACK_RAND_EOT,
    n_restarts: int = 1,
    seed: int = 0,
) -> Ensemble:
    """AutoAttack's version for randomised defences: APGD-CE then APGD-DLR, ``eot_iter`` = 20, 100 iterations."""
    settings = dict(norm=norm, n_iter=n_iter, eot_iter=eot_iter, n_restarts=n_restarts, seed=seed)
    return Ensemble((APGD(model, eps, loss="ce", **settings), APGD(model, eps, loss="dlr", **settings)))
