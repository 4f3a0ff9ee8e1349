"""The frame every iterative attack shares: input checks, the clean clip as first candidate (deterministic models),
rounds of restarts on the clips not yet broken, and the result.

A subclass says which rounds to run (:meth:`IterativeAttack.rounds`: a stream position and a loss each) and how
one round moves a batch of clips (:meth:`IterativeAttack.run`). Attacks are frozen: nothing changes after
construction, and every random number comes from (seed, clip id, stream position).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from videopure.attacks.defended import DefendedClassifier, as_defended
from videopure.attacks.eot import (
    AttackResult,
    CallCount,
    Candidates,
    Probe,
    clip_generators,
    eot_draws,
    probe,
    warn_zero_gradients,
)
from videopure.attacks.losses import LossFn, check_num_classes, get_loss
from videopure.attacks.norms import Ball, get_ball

Attack = Callable[[Tensor, Tensor, Sequence[str]], AttackResult]
_MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
Round = tuple[tuple[object, ...], Callable[[Tensor], LossFn]]  # (stream position, loss for the attacked rows)


def restart_rounds(loss: str, n_restarts: int, num_classes: int) -> list[Round]:
    """One round per restart, all on the untargeted ``loss``."""
    check_num_classes(loss, num_classes)
    loss_fn = get_loss(loss)
    return [(("restart", r), lambda rows: loss_fn) for r in range(n_restarts)]


def check_batch(model: nn.Module, clips: Tensor, labels: Tensor, clip_ids: Sequence[str]) -> None:
    """Clips (B, C, T, H, W) in [0, 1], B labels and B clip ids, batch-norm and dropout in eval mode."""
    if clips.ndim != 5 or not clips.is_floating_point():
        raise ValueError(f"clips must be a float tensor (B, C, T, H, W), got {clips.dtype} {tuple(clips.shape)}")
    low, high = float(clips.min()), float(clips.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"clips must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]")
    if labels.shape != (clips.shape[0],):
        raise ValueError(f"labels must have shape ({clips.shape[0]},), got {tuple(labels.shape)}")
    if len(clip_ids) != clips.shape[0]:
        raise ValueError(f"got {len(clip_ids)} clip ids for {clips.shape[0]} clips")
    training = [name for name, m in model.named_modules() if m.training and isinstance(m, _MODE_DEPENDENT)]
    if training:
        raise ValueError(f"modules in training mode ({', '.join(training[:3])}, ...): call model.eval() before attacking")


@dataclass(frozen=True, eq=False)
class IterativeAttack:
    """Common settings. ``eps`` is the radius in ``norm`` on the [0, 1] pixel scale, over the whole clip.

    ``eot_iter`` draws are averaged per gradient when the model is stochastic (one otherwise); ``seed`` and the
    clip ids fix the random starts; ``stream`` names the attack's draws (defaults to the attack's kind).
    """

    model: nn.Module
    eps: float
    norm: str = "linf"
    n_iter: int = 100
    n_restarts: int = 1
    eot_iter: int = 1
    seed: int = 0
    stream: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", as_defended(self.model))
        get_ball(self.norm)
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        for name in ("n_iter", "n_restarts", "eot_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def defended(self) -> DefendedClassifier:
        return self.model  # type: ignore[return-value]  # set in __post_init__

    @property
    def ball(self) -> Ball:
        return get_ball(self.norm)

    @property
    def name(self) -> str:
        return self.stream or type(self).__name__.lower()

    def __call__(self, clips: Tensor, labels: Tensor, clip_ids: Sequence[str]) -> AttackResult:
        """Attack ``clips`` with true ``labels``; clip ids seed the noise and the random starts."""
        check_batch(self.defended, clips, labels, clip_ids)
        clip_ids = [str(i) for i in clip_ids]
        calls = CallCount()
        clean = self.evaluate(clips, labels, clip_ids, self.first_loss(), calls, "clean")
        stochastic = self.defended.stochastic
        # Against a stochastic model a clean clip wrong on this attack's few draws is not broken for good: the
        # first round attacks every clip and any of its points replaces the clean clip. Later rounds (restarts,
        # target classes) attack only the clips not yet wrong on every draw.
        candidates = Candidates(clips, dataclasses.replace(clean, wrong=torch.full_like(clean.wrong, -1.0)) if stochastic else clean)
        zero = torch.zeros(clips.shape[0], dtype=torch.bool, device=clips.device)
        for index, (position, make_loss) in enumerate(self.rounds(clean, labels)):
            rows = torch.arange(clips.shape[0], device=clips.device) if index == 0 and stochastic else candidates.unbroken()
            if rows.numel() == 0:
                break
            ids = [clip_ids[i] for i in rows.tolist()]
            zero[rows] |= self.run(clips[rows], labels[rows], ids, make_loss(rows), position, candidates, rows, calls)
        warn_zero_gradients(self.name, zero, clip_ids)
        return AttackResult(candidates.x, candidates.wrong.clone(), zero, calls)

    def evaluate(
        self, x: Tensor, labels: Tensor, clip_ids: Sequence[str], loss_fn: LossFn, calls: CallCount, *position: object, with_grad: bool = False
    ) -> Probe:
        """EOT probe of the model at ``x`` with the draws of stream position ``position``."""
        draws = eot_draws(self.defended, self.eot_iter, self.name, *position)
        return probe(self.defended, x, labels, clip_ids, draws, loss_fn, calls, with_grad=with_grad)

    def radius(self, x: Tensor) -> Tensor:
        """(B,) budget per clip."""
        return torch.full((x.shape[0],), float(self.eps), dtype=x.dtype, device=x.device)

    def random_point(self, x: Tensor, clip_ids: Sequence[str], *position: object) -> Tensor:
        """A random point of the ball ∩ [0, 1] around each clip, from the clip's own generator."""
        eps = self.radius(x)
        generators = clip_generators(self.seed, clip_ids, self.name, *position, "start")
        delta = torch.cat([self.ball.random_start(x[i : i + 1], eps[i : i + 1], g) for i, g in enumerate(generators)])
        return self.ball.project(x + delta, x, eps)

    # -- what subclasses define ------------------------------------------------------------------------------------

    def first_loss(self) -> LossFn:
        """The loss recorded for the clean candidate."""
        raise NotImplementedError

    def rounds(self, clean: Probe, labels: Tensor) -> Iterable[Round]:
        """(stream position, loss for the attacked rows) of each round; each round attacks the clips still unbroken."""
        raise NotImplementedError

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
        """One round on clips ``rows`` of the batch; offers every iterate to ``candidates``; returns (n,) zero-gradient flags."""
        raise NotImplementedError
