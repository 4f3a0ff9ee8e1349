"""Attacks on a tiny undefended classifier: they break it, stay in budget and in [0, 1], are frozen and reproducible,
refuse probabilities and training mode, and flag zero gradients."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from attack_helpers import TinyVideoNet, check_budget, clip_ids, random_clips
from pyautoattack.autopgd_base import APGDAttack

from videopure.attacks import APGD, PGD, APGDTargeted, DefendedClassifier, apgd_checkpoints, autoattack_rand, draw_base
from videopure.attacks.eot import Candidates, Probe
from videopure.attacks.losses import dlr_loss

EPS = {"linf": 8 / 255, "l2": 1.0}


@pytest.fixture(scope="module")
def undefended():
    net = TinyVideoNet(10)
    clips = random_clips(8, frames=4, size=16, seed=1)
    with torch.no_grad():
        labels = net(clips).argmax(dim=1)  # clean accuracy 100% by construction
    return DefendedClassifier(None, net).eval(), clips, labels


def accuracy(model, clips, labels) -> float:
    with torch.no_grad():
        return (model(clips).argmax(dim=1) == labels).float().mean().item()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_drives_an_undefended_model_to_zero(undefended, norm):
    model, clips, labels = undefended
    result = PGD(model, EPS[norm], norm=norm, n_iter=20)(clips, labels, clip_ids(8))
    assert accuracy(model, result.adversarial, labels) <= 1 / 8
    check_budget(result.adversarial, clips, norm, EPS[norm])
    assert result.calls.gradient == 20


ATTACKS = {
    "pgd": lambda m, eps, norm: PGD(m, eps, norm=norm, n_iter=5),
    "apgd-ce": lambda m, eps, norm: APGD(m, eps, norm=norm, n_iter=5),
    "apgd-dlr": lambda m, eps, norm: APGD(m, eps, norm=norm, n_iter=5, loss="dlr", n_restarts=2),
    "apgd-t": lambda m, eps, norm: APGDTargeted(m, eps, norm=norm, n_iter=5, n_target_classes=2),
    "autoattack-rand": lambda m, eps, norm: autoattack_rand(m, eps, norm=norm, n_iter=5),
}


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_every_attack_stays_in_budget_and_in_range(undefended, kind, norm):
    model, _, _ = undefended
    # Saturated pixels (exactly 0 or 1) and a large budget: projection and clipping both bind.
    clips = (random_clips(4, frames=4, size=16, seed=2) > 0.5).float() * 0.98 + 0.01
    clips[:, :, :, :4] = torch.randint(0, 2, clips[:, :, :, :4].shape, generator=torch.Generator().manual_seed(0)).float()
    labels = torch.tensor([0, 1, 2, 3])
    eps = EPS[norm] * 4
    result = ATTACKS[kind](model, eps, norm)(clips, labels, clip_ids(4))
    check_budget(result.adversarial, clips, norm, eps)
    assert result.adversarial.shape == clips.shape
    assert ((result.success_rate >= 0) & (result.success_rate <= 1)).all()


def test_attacks_are_reproducible_frozen_and_never_touch_the_global_rng(undefended):
    model, clips, labels = undefended
    attack = APGD(model, 2 / 255, n_iter=10)
    state = torch.random.get_rng_state()
    first = attack(clips, labels, clip_ids(8))
    again = attack(clips, labels, clip_ids(8))
    assert torch.equal(first.adversarial, again.adversarial)
    assert torch.equal(torch.random.get_rng_state(), state)
    reseeded = dataclasses.replace(attack, seed=1)(clips, labels, clip_ids(8))
    assert not torch.equal(first.adversarial, reseeded.adversarial)
    with pytest.raises(dataclasses.FrozenInstanceError):
        attack.eps = 1.0


def test_a_clips_random_start_depends_on_its_id_not_its_batch(undefended):
    model, clips, _ = undefended
    attack = APGD(model, 8 / 255)
    batch = attack.random_point(clips[:3], ["a", "b", "c"], "restart", 0)
    alone = attack.random_point(clips[1:2], ["b"], "restart", 0)
    renamed = attack.random_point(clips[1:2], ["z"], "restart", 0)
    restarted = attack.random_point(clips[1:2], ["b"], "restart", 1)
    assert torch.equal(batch[1], alone[0])
    assert not torch.allclose(alone, renamed, atol=1e-4) and not torch.allclose(alone, restarted, atol=1e-4)
    check_budget(batch, clips[:3], "linf", 8 / 255)


def test_probabilities_are_refused(undefended):
    _, clips, labels = undefended
    softmax_model = DefendedClassifier(None, TinyVideoNet(10, softmax=True)).eval()
    with pytest.raises(ValueError, match="probabilities"):
        APGD(softmax_model, 8 / 255, n_iter=2)(clips, labels, clip_ids(8))


def test_training_mode_is_refused(undefended):
    _, clips, labels = undefended
    net = torch.nn.Sequential(TinyVideoNet(10), torch.nn.Dropout(0.1))
    with pytest.raises(ValueError, match="eval"):
        PGD(net.train(), 8 / 255, n_iter=2)(clips, labels, clip_ids(8))


class Constant(torch.nn.Module):
    """Logits that ignore the input: every input gradient is exactly zero."""

    def forward(self, clips):
        return torch.tensor([[2.0, 0.0, -1.0]]).expand(clips.shape[0], 3) + 0 * clips.sum()


def test_zero_gradients_are_flagged(undefended, caplog):
    _, clips, _ = undefended
    with caplog.at_level(logging.WARNING, logger="videopure.attacks"):
        result = APGD(Constant().eval(), 8 / 255, n_iter=3, loss="dlr")(clips[:2], torch.zeros(2, dtype=torch.long), ["p", "q"])
    assert result.zero_grad.all()
    assert "zero input gradient" in caplog.text and "p, q" in caplog.text


@pytest.mark.parametrize("bad, message", [(dict(eps=0.0), "eps"), (dict(n_iter=0), "n_iter"), (dict(norm="l1"), "norm"), (dict(loss="cw"), "loss")])
def test_bad_settings_are_rejected(bad, message):
    settings = dict(eps=8 / 255) | bad
    with pytest.raises(ValueError, match=message):
        APGD(TinyVideoNet(3), **settings)


def test_apgd_checkpoints_follow_autoattack():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_dlr_loss_matches_the_reference():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    labels[:8] = logits[:8].argmax(dim=1)  # both branches: the true class on top and not
    reference = APGDAttack(lambda x: x, eps=1.0).dlr_loss(logits, labels)
    assert torch.allclose(dlr_loss(logits, labels), reference, atol=1e-6)


def test_candidates_keep_the_most_often_wrong_point_and_success_needs_every_draw():
    x = torch.zeros(2, 1, 1, 1, 1)
    candidates = Candidates(x, Probe(loss=torch.tensor([0.0, 0.0]), wrong=torch.tensor([0.0, 0.0])))
    candidates.offer(x + 1, Probe(loss=torch.tensor([5.0, 1.0]), wrong=torch.tensor([0.5, 1.0])))
    candidates.offer(x + 2, Probe(loss=torch.tensor([9.0, 9.0]), wrong=torch.tensor([0.25, 1.0])))
    assert candidates.x.flatten().tolist() == [1.0, 2.0]  # more draws wrong beats loss; ties go to the loss
    assert candidates.unbroken().tolist() == [0]  # wrong on half the draws is not broken


def test_draw_streams_never_meet_the_evaluation_draws():
    bases = {draw_base(name, i) for name in ("apgd-ce", "apgd-dlr", "pgd") for i in range(200)}
    assert len(bases) == 600 and min(bases) >= 2**16
