"""APGD (Croce & Hein, ICML 2020): PGD with momentum and a step size that halves at checkpoints.

One run from a random start: step η = 2ε; each iteration takes a steepest-ascent step and a momentum step
(α = 0.75; 1 on the first), both projected on the ball ∩ [0, 1]. At checkpoints w_j (after 22% of the
iterations, then windows shrinking by 3% down to 6%) a clip's step is halved and it restarts from its best-loss
point when the loss rose in at most ρ = 0.75 of the window's steps, or when the best loss did not improve since
the last checkpoint and the step was not just halved. Best-loss point and best adversarial are kept apart.
Restarts (and, for the targeted version, target classes) run on the clips not yet broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import torch
from torch import Tensor

from videopure.attacks.base import IterativeAttack, Round, restart_rounds
from videopure.attacks.eot import CallCount, Candidates, Probe, zero_gradient
from videopure.attacks.losses import LOSSES, LossFn, check_num_classes, dlr_targeted_loss, get_loss
from videopure.attacks.norms import per_clip

FIRST_CHECKPOINT = 0.22  # fraction of the iterations before the first step-size check
MIN_WINDOW = 0.06  # smallest window between checks
WINDOW_DECREMENT = 0.03  # each window is this much shorter than the one before
INITIAL_STEP = 2.0  # η₀ = 2ε
MOMENTUM = 0.75


def apgd_checkpoints(n_iter: int) -> list[int]:
    """Iteration counts after which the step size is checked (AutoAttack's integer schedule)."""
    window = max(int(FIRST_CHECKPOINT * n_iter), 1)
    smallest = max(int(MIN_WINDOW * n_iter), 1)
    decrement = max(int(WINDOW_DECREMENT * n_iter), 1)
    points, position = [], 0
    while position + window <= n_iter:
        position += window
        points.append(position)
        window = max(window - decrement, smallest)
    return points


@dataclass(frozen=True, eq=False)
class _APGDRun(IterativeAttack):
    """One APGD run per round; ``rho`` is ρ."""

    rho: float = 0.75

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.rho < 1.0:
            raise ValueError(f"rho must lie in (0, 1), got {self.rho}")

    def run(
        self,
        x: Tensor,
        labels: Tensor,
        clip_ids: Sequence[str],
        loss_fn: LossFn,
        position: tuple[object, ...],
        candidates: Candidates,
        rows: Tensor,
        calls: CallCount,
    ) -> Tensor:
        ball, eps = self.ball, self.radius(x)
        checkpoints = set(apgd_checkpoints(self.n_iter))
        x_adv = self.random_point(x, clip_ids, *position)
        current = self.evaluate(x_adv, labels, clip_ids, loss_fn, calls, *position, 0, with_grad=True)
        candidates.offer(x_adv, current, rows)
        zero = zero_gradient(current.grad)
        grad, x_prev = current.grad, x_adv
        x_best, grad_best, best_loss = x_adv.clone(), grad.clone(), current.loss.clone()
        losses = [current.loss]
        step = INITIAL_STEP * eps
        last_check, best_at_check = 0, best_loss.clone()
        halved = torch.ones_like(best_loss, dtype=torch.bool)  # no "stalled" halving at the first checkpoint
        for i in range(1, self.n_iter + 1):
            momentum = 1.0 if i == 1 else MOMENTUM
            z = ball.project(x_adv + per_clip(step, x) * ball.direction(grad), x, eps)
            x_next = ball.project(x_adv + momentum * (z - x_adv) + (1 - momentum) * (x_adv - x_prev), x, eps)
            x_prev, x_adv = x_adv, x_next
            current = self.evaluate(x_adv, labels, clip_ids, loss_fn, calls, *position, i, with_grad=i < self.n_iter)
            candidates.offer(x_adv, current, rows)
            losses.append(current.loss)
            if i == self.n_iter:
                break
            grad = current.grad
            improved = current.loss > best_loss
            x_best[improved], grad_best[improved] = x_adv[improved], grad[improved]
            best_loss = torch.where(improved, current.loss, best_loss)
            if i in checkpoints:
                window = torch.stack(losses[last_check:])
                rises = (window[1:] > window[:-1]).sum(dim=0)
                oscillating = rises <= self.rho * (i - last_check)
                stalled = ~halved & (best_at_check >= best_loss)
                halved = oscillating | stalled
                step = torch.where(halved, step / 2, step)
                x_adv = torch.where(per_clip(halved, x), x_best, x_adv)
                grad = torch.where(per_clip(halved, x), grad_best, grad)
                last_check, best_at_check = i, best_loss.clone()
        return zero


@dataclass(frozen=True, eq=False)
class APGD(_APGDRun):
    """Untargeted APGD on the ``"ce"`` or ``"dlr"`` loss (APGD-CE, APGD-DLR). See the module docstring."""

    loss: Literal["ce", "dlr"] = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        get_loss(self.loss)

    @property
    def name(self) -> str:
        return self.stream or f"apgd-{self.loss}"

    def first_loss(self) -> LossFn:
        return get_loss(self.loss)

    def rounds(self, clean: Probe, labels: Tensor) -> Iterable[Round]:
        return restart_rounds(self.loss, self.n_restarts, clean.logits.shape[1])


@dataclass(frozen=True, eq=False)
class APGDTargeted(_APGDRun):
    """APGD-T: APGD on the targeted DLR loss, once per target class, each round on the clips still unbroken.

    Targets are the ``n_target_classes`` largest clean logits (EOT mean) other than the true class, in order.
    """

    n_target_classes: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_target_classes < 1:
            raise ValueError(f"n_target_classes must be positive, got {self.n_target_classes}")

    @property
    def name(self) -> str:
        return self.stream or "apgd-t"

    def first_loss(self) -> LossFn:
        return LOSSES["dlr"]

    def rounds(self, clean: Probe, labels: Tensor) -> Iterable[Round]:
        num_classes = clean.logits.shape[1]
        check_num_classes("dlr-targeted", num_classes)
        others = clean.logits.scatter(1, labels[:, None], float("-inf"))
        ranking = others.argsort(dim=1, descending=True)
        for rank in range(min(self.n_target_classes, num_classes - 1)):
            targets = ranking[:, rank]
            for r in range(self.n_restarts):
                yield ("target", rank, "restart", r), lambda rows, targets=targets: dlr_targeted_loss(targets[rows])
