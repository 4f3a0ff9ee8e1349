"""Typed configs of an evaluation run (``videopure evaluate``) and how an attack config becomes an attack.

Budgets are numbers or fractions written as strings (``"4/255"``), on the [0, 1] pixel scale over the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union

from torch import nn

from videopure.attacks.apgd import APGD, APGDTargeted
from videopure.attacks.base import Attack
from videopure.attacks.defended import DefendedClassifier
from videopure.attacks.ensemble import autoattack_rand
from videopure.attacks.pgd import PGD, bpda_eot
from videopure.config import parse_budget
from videopure.jobs.purify_dataset import DatasetConfig, DiffusionConfig, PurifierConfig

AttackKind = Literal["pgd", "apgd-ce", "apgd-dlr", "apgd-t", "autoattack-rand", "bpda-eot"]
GradName = Literal["adjoint", "direct", "bpda"]

# kind → (iterations, EOT samples) when the config does not say
KIND_DEFAULTS: dict[str, tuple[int, int]] = {
    "pgd": (40, 1),
    "apgd-ce": (100, 20),
    "apgd-dlr": (100, 20),
    "apgd-t": (100, 20),
    "autoattack-rand": (100, 20),
    "bpda-eot": (50, 15),
}


@dataclass(frozen=True)
class AttackConfig:
    """One attack, run at each budget.

    ``kind``: pgd | apgd-ce | apgd-dlr | apgd-t | autoattack-rand (APGD-CE + APGD-DLR) | bpda-eot (DiffPure's).
    ``surrogate: classifier`` attacks the bare classifier and evaluates the defended model (gray-box transfer).
    ``n_iter``/``eot_iter`` default per kind (:data:`KIND_DEFAULTS`); ``grad`` defaults to adjoint (bpda for
    bpda-eot); ``step_size`` (pgd, bpda-eot) is absolute on the [0, 1] scale.
    """

    kind: AttackKind
    budgets: tuple[Union[float, str], ...]
    norm: Literal["linf", "l2"] = "linf"
    name: Optional[str] = None
    grad: Optional[GradName] = None
    surrogate: Literal["defended", "classifier"] = "defended"
    n_iter: Optional[int] = None
    eot_iter: Optional[int] = None
    n_restarts: int = 1
    n_target_classes: int = 9
    step_size: Optional[float] = None

    def __post_init__(self) -> None:
        if not self.budgets:
            raise ValueError(f"attack {self.label!r} needs at least one budget")
        for budget in self.budgets:
            parse_budget(budget)
        if self.kind == "bpda-eot" and self.grad not in (None, "bpda"):
            raise ValueError(f"bpda-eot passes gradients by BPDA; grad={self.grad!r} contradicts it")
        if self.step_size is not None and self.kind not in ("pgd", "bpda-eot"):
            raise ValueError(f"step_size applies to pgd and bpda-eot; {self.kind} sets its own step size")

    @property
    def label(self) -> str:
        """The name shown in reports (unique within a run)."""
        return self.name or (self.kind if self.surrogate == "defended" else f"transfer-{self.kind}")

    @property
    def iterations(self) -> int:
        return self.n_iter if self.n_iter is not None else KIND_DEFAULTS[self.kind][0]

    @property
    def eot(self) -> int:
        """EOT samples per gradient (1 against the deterministic bare classifier)."""
        if self.surrogate == "classifier":
            return 1
        return self.eot_iter if self.eot_iter is not None else KIND_DEFAULTS[self.kind][1]

    @property
    def grad_mode(self) -> Optional[str]:
        """How gradients pass the purifier; ``None`` for a transfer attack (no purifier in the loop)."""
        if self.surrogate == "classifier":
            return None
        return "bpda" if self.kind == "bpda-eot" else (self.grad or "adjoint")

    def gradient_calls(self, num_classes: int) -> int:
        """Upper bound on model gradient calls per clip (every restart and target round run)."""
        rounds = self.n_restarts * (min(self.n_target_classes, num_classes - 1) if self.kind == "apgd-t" else 1)
        members = 2 if self.kind == "autoattack-rand" else 1
        return members * rounds * self.iterations * self.eot

    def build(self, model: DefendedClassifier, budget: float, seed: int) -> Attack:
        """The attack at ``budget`` against ``model`` (through the configured gradient path or the bare classifier)."""
        target = model.bare() if self.surrogate == "classifier" else model.with_grad(self.grad_mode)
        return _BUILDERS[self.kind](target, budget, self, seed)


def _common(config: AttackConfig, seed: int) -> dict[str, Any]:
    return dict(norm=config.norm, n_iter=config.iterations, eot_iter=config.eot, n_restarts=config.n_restarts, seed=seed)


_BUILDERS: dict[str, Callable[[nn.Module, float, AttackConfig, int], Attack]] = {
    "pgd": lambda m, eps, c, seed: PGD(m, eps, step_size=c.step_size, **_common(c, seed)),
    "apgd-ce": lambda m, eps, c, seed: APGD(m, eps, loss="ce", **_common(c, seed)),
    "apgd-dlr": lambda m, eps, c, seed: APGD(m, eps, loss="dlr", **_common(c, seed)),
    "apgd-t": lambda m, eps, c, seed: APGDTargeted(m, eps, n_target_classes=c.n_target_classes, **_common(c, seed)),
    "autoattack-rand": lambda m, eps, c, seed: autoattack_rand(m, eps, **_common(c, seed)),
    "bpda-eot": lambda m, eps, c, seed: bpda_eot(
        m, eps, norm=c.norm, n_iter=c.iterations, eot_iter=c.eot, step_size=c.step_size, seed=seed
    ),
}


@dataclass(frozen=True)
class ClassifierConfig:
    """The classifier: a videopure checkpoint (``save_classifier``), or a registry model with random weights."""

    checkpoint: Optional[Path] = None
    name: str = "x3d_tiny"  # registry name, used without a checkpoint
    overrides: dict[str, Any] = field(default_factory=dict)  # InputSpec/builder overrides, without a checkpoint
    allow_random_weights: bool = False  # run without a checkpoint (untrained classifier: dry runs only)


@dataclass(frozen=True)
class EvaluationConfig:
    """``repeats``: fresh purifications per final clip (R); ``clips``: how many clips of the split, taken in a
    seeded order (``clip_order: seeded``, spread over classes) or in split order; ``undefended_steps``: PGD steps
    of the undefended sanity attack (0: skip)."""

    repeats: int = 5
    clips: Optional[int] = None
    clip_order: Literal["seeded", "split"] = "seeded"
    undefended_steps: int = 20

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}")
        if self.clips is not None and self.clips < 1:
            raise ValueError(f"clips must be positive, got {self.clips}")


@dataclass(frozen=True)
class SanityConfig:
    """Checks printed with every report; a FAIL raises after the report is written when ``strict``.

    ``huge_budget`` (Linf) is attacked with PGD (``huge_steps`` steps, ``huge_eot`` draws, the first attack's
    gradient mode) and must leave at most ``max_huge_accuracy``; the undefended classifier under PGD at each
    budget at most ``max_undefended_accuracy``; accuracy may rise with the budget (or above clean) by at most
    ``slack_clips`` clips (stochastic evaluation).
    """

    huge_budget: Optional[Union[float, str]] = 0.5
    huge_steps: int = 20
    huge_eot: int = 1
    max_huge_accuracy: float = 0.1
    max_undefended_accuracy: float = 0.1
    slack_clips: int = 1
    strict: bool = True

    def __post_init__(self) -> None:
        if self.huge_budget is not None:
            parse_budget(self.huge_budget)


@dataclass(frozen=True)
class EvalOutputConfig:
    """``figure_clips`` clips get a PNG (clean / adversarial / perturbation × ``perturbation_gain`` / purified);
    ``save_adversarial`` keeps every final adversarial clip (float16 .npz)."""

    dir: Path
    figure_clips: int = 2
    perturbation_gain: float = 10.0
    save_adversarial: bool = False


def check_attack_names(attacks: tuple[AttackConfig, ...]) -> None:
    """Report labels must be unique."""
    labels = [attack.label for attack in attacks]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"attack names must be unique; repeated: {', '.join(repeated)} (set 'name')")


@dataclass(frozen=True)
class Protocol:
    """What is measured, independent of where models and clips come from. ``seed`` is the run seed."""

    attacks: tuple[AttackConfig, ...]
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)
    seed: int = 0
    clips_per_batch: int = 1

    def __post_init__(self) -> None:
        check_attack_names(self.attacks)
        if self.clips_per_batch < 1:
            raise ValueError(f"clips_per_batch must be positive, got {self.clips_per_batch}")


@dataclass(frozen=True)
class EvaluateJob:
    """A whole ``videopure evaluate`` run. ``seed`` is the run seed (purification noise and attack starts);
    set it here, not in ``purifier.seed``."""

    dataset: DatasetConfig
    diffusion: DiffusionConfig
    classifier: ClassifierConfig
    attacks: tuple[AttackConfig, ...]
    output: EvalOutputConfig
    purifier: PurifierConfig = field(default_factory=PurifierConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)
    seed: int = 0
    device: str = "auto"
    clips_per_batch: int = 1

    def __post_init__(self) -> None:
        if self.purifier.seed != PurifierConfig().seed:
            raise ValueError("set the run seed with the top-level 'seed', not 'purifier.seed'")
        _ = self.protocol  # building the protocol validates it

    @property
    def protocol(self) -> Protocol:
        return Protocol(self.attacks, self.evaluation, self.sanity, self.seed, self.clips_per_batch)
