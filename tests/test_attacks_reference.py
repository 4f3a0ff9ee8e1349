"""videopure's APGD reaches the robust accuracy of the reference AutoAttack APGD (Croce & Hein's code, PyPI
``pyautoattack``) on the same undefended clip model and clips, within one clip."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import TinyVideoNet, clip_ids, random_clips
from pyautoattack.autopgd_base import APGDAttack

from videopure.attacks import APGD, DefendedClassifier

CLIPS = 12


@pytest.fixture(scope="module")
def setting():
    net = TinyVideoNet(10, seed=0)
    clips = random_clips(CLIPS, frames=4, size=16, seed=1)
    with torch.no_grad():
        labels = net(clips).argmax(dim=1)
    return net, clips, labels


def robust(net, adversarial, labels) -> int:
    with torch.no_grad():
        return int((net(adversarial).argmax(dim=1) == labels).sum())


@pytest.mark.parametrize(
    "norm, eps, loss",
    [("linf", 2 / 255, "ce"), ("l2", 0.2, "dlr")],
)
def test_apgd_matches_the_reference_autoattack(setting, norm, eps, loss):
    net, clips, labels = setting
    ours = APGD(DefendedClassifier(None, net).eval(), eps, norm=norm, loss=loss, n_iter=50)(clips, labels, clip_ids(CLIPS))
    reference = APGDAttack(net, n_iter=50, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, loss=loss, seed=0)
    with torch.random.fork_rng():  # the reference reseeds torch's global generator
        reference_adversarial = reference.perturb(clips.clone(), labels.clone())
    ours_robust, reference_robust = robust(net, ours.adversarial, labels), robust(net, reference_adversarial, labels)
    assert 0 < reference_robust < CLIPS, "the budget should leave some clips robust and break others"
    assert abs(ours_robust - reference_robust) <= 1, f"videopure {ours_robust} vs reference {reference_robust} robust clips"
