"""PGD with a fixed step (Madry et al. 2018), random start and EOT; BPDA+EOT as DiffPure runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from torch import Tensor, nn

from videopure.attacks.base import IterativeAttack, Round, restart_rounds
from videopure.attacks.defended import as_defended
from videopure.attacks.eot import CallCount, Candidates, Probe, zero_gradient
from videopure.attacks.losses import LossFn, get_loss

DEFAULT_STEP = 2.5  # default step size: 2.5 ε / n_iter (Madry et al.)
BPDA_STEPS = 50  # DiffPure's BPDA+EOT: 50 steps of ε/4 (2/255 at 8/255), 15 EOT samples, no random start
BPDA_EOT = 15
BPDA_STEP = 0.25


@dataclass(frozen=True, eq=False)
class PGD(IterativeAttack):
    """Projected gradient ascent on ``loss``: x ← Π(x + step · direction(∇)).

    ``step_size`` is absolute on the [0, 1] scale (default 2.5 ε / n_iter); ``random_start`` starts each restart
    at a random point of the ball, else at the clean clip (then restarts repeat the same path, so use one).
    """

    n_iter: int = 40
    loss: Literal["ce", "dlr"] = "ce"
    step_size: float | None = None
    random_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        get_loss(self.loss)
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be positive, got {self.step_size}")

    @property
    def name(self) -> str:
        return self.stream or "pgd"

    @property
    def step(self) -> float:
        return self.step_size if self.step_size is not None else DEFAULT_STEP * self.eps / self.n_iter

    def first_loss(self) -> LossFn:
        return get_loss(self.loss)

    def rounds(self, clean: Probe, labels: Tensor) -> Iterable[Round]:
        return restart_rounds(self.loss, self.n_restarts, clean.logits.shape[1])

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
        x_adv = self.random_point(x, clip_ids, *position) if self.random_start else x.clone()
        current = self.evaluate(x_adv, labels, clip_ids, loss_fn, calls, *position, 0, with_grad=True)
        candidates.offer(x_adv, current, rows)
        zero = zero_gradient(current.grad)
        for i in range(1, self.n_iter + 1):
            x_adv = ball.project(x_adv + self.step * ball.direction(current.grad), x, eps)
            current = self.evaluate(x_adv, labels, clip_ids, loss_fn, calls, *position, i, with_grad=i < self.n_iter)
            candidates.offer(x_adv, current, rows)
        return zero


def bpda_eot(
    model: nn.Module,
    eps: float,
    *,
    norm: str = "linf",
    n_iter: int = BPDA_STEPS,
    eot_iter: int = BPDA_EOT,
    step_size: float | None = None,
    seed: int = 0,
) -> PGD:
    """BPDA+EOT as DiffPure evaluates it: identity backward through the purifier, ``eot_iter`` purifications per
    gradient, ``n_iter`` signed steps of ``step_size`` (default ε/4) from the clean clip, cross-entropy loss.

    DiffPure averages logits over the EOT samples before the loss; here the loss gradients are averaged (as in
    AutoAttack's EOT), and success is judged over the draws.
    """
    step = step_size if step_size is not None else BPDA_STEP * eps
    return PGD(
        as_defended(model).with_grad("bpda"), eps, norm=norm, n_iter=n_iter, eot_iter=eot_iter, seed=seed,
        step_size=step, random_start=False, stream="bpda-eot",
    )
