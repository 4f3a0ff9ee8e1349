"""Clip-level adaptive attacks on purified classifiers, and the robustness evaluation protocol.

- :class:`DefendedClassifier`: purifier ∘ clamp ∘ classifier, ``forward(clips, clip_ids, draw)``; ``with_grad``
  (adjoint/direct/bpda siblings sharing weights) and ``bare()`` (the undefended classifier).
- Attacks, frozen callables ``attack(clips, labels, clip_ids) -> AttackResult``: :class:`PGD`, :class:`APGD`
  (CE, DLR), :class:`APGDTargeted`, :class:`Ensemble`, :func:`autoattack_rand`, :func:`bpda_eot`.
- The protocol: :func:`run_protocol` (models and clips given) and :func:`evaluate` (from an :class:`EvaluateJob`).
"""

from videopure.attacks.apgd import APGD, APGDTargeted, apgd_checkpoints
from videopure.attacks.base import Attack, IterativeAttack
from videopure.attacks.config import AttackConfig, EvaluateJob, Protocol
from videopure.attacks.defended import DefendedClassifier, as_defended, check_logits, draw_base
from videopure.attacks.ensemble import Ensemble, autoattack_rand
from videopure.attacks.eot import AttackResult, CallCount, Probe, probe
from videopure.attacks.evaluate import ClipRef, evaluate, run_protocol
from videopure.attacks.norms import NORMS, L2Ball, LinfBall, get_ball
from videopure.attacks.pgd import PGD, bpda_eot
from videopure.attacks.report import SanityCheckError

__all__ = [
    "APGD",
    "APGDTargeted",
    "Attack",
    "AttackConfig",
    "AttackResult",
    "CallCount",
    "ClipRef",
    "DefendedClassifier",
    "Ensemble",
    "EvaluateJob",
    "IterativeAttack",
    "L2Ball",
    "LinfBall",
    "NORMS",
    "PGD",
    "Probe",
    "Protocol",
    "SanityCheckError",
    "apgd_checkpoints",
    "as_defended",
    "autoattack_rand",
    "bpda_eot",
    "check_logits",
    "draw_base",
    "evaluate",
    "get_ball",
    "probe",
    "run_protocol",
]
