"""The defended model (micro ADM purifier + tiny classifier): explicit draws, gradient-mode siblings, EOT
averaging, and attacks through the adjoint staying within budget."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import TinyVideoNet, check_budget, clip_ids, micro_defended, random_clips

from videopure.attacks import APGD, CallCount, bpda_eot, draw_base, probe
from videopure.attacks.losses import ce_loss


@pytest.fixture(scope="module")
def defended():
    return micro_defended(TinyVideoNet(10))


def test_draws_are_explicit_and_siblings_share_weights(defended):
    clips, ids = random_clips(2), clip_ids(2)
    with torch.no_grad():
        first = defended(clips, ids, draw=0)
        again = defended(clips, ids, draw=0)
        other = defended(clips, ids, draw=1)
        sibling = defended.with_grad("bpda")(clips, ids, draw=0)
        bare = defended.bare()
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert torch.allclose(first, sibling, atol=1e-6)
    assert defended.with_grad("bpda").purifier.score_model is defended.purifier.score_model
    assert defended.with_grad("bpda").grad_mode == "bpda" and defended.grad_mode == "adjoint"
    assert bare.classifier is defended.classifier and not bare.stochastic
    with torch.no_grad():
        assert torch.equal(bare(clips, ids, 0), bare(clips, ids, 7))


def test_eot_averaging_reduces_gradient_variance(defended):
    clips, ids, labels = random_clips(2, seed=5), clip_ids(2), torch.tensor([1, 2])

    def spread(eot: int, repeats: int = 3) -> float:
        grads = [
            probe(defended, clips, labels, ids, [draw_base("variance", eot, r) + e for e in range(eot)], ce_loss, CallCount()).grad
            for r in range(repeats)
        ]
        stacked = torch.stack(grads)
        return float(((stacked - stacked.mean(0)) ** 2).sum(dim=tuple(range(1, stacked.ndim))).mean())

    single, averaged = spread(1), spread(4)  # expected ratio 1/4
    assert averaged < 0.6 * single, f"EOT-4 gradient variance {averaged:.3g} vs single draw {single:.3g}"


@pytest.mark.parametrize("grad", ["adjoint", "bpda"])
def test_apgd_through_the_purifier_stays_in_budget_with_eot(defended, grad):
    clips, ids = random_clips(3, seed=6), clip_ids(3)
    with torch.no_grad():
        labels = defended(clips, ids, 0).argmax(dim=1)
    result = APGD(defended.with_grad(grad), 8 / 255, n_iter=3, eot_iter=2)(clips, labels, ids)
    check_budget(result.adversarial, clips, "linf", 8 / 255)
    assert result.calls.gradient == 3 * 2 and result.calls.forward == 2 + 2  # clean probe + last iterate, 2 draws each
    assert not result.zero_grad.any()


def test_a_stochastic_model_is_attacked_even_where_the_attacks_clean_draws_are_wrong(defended):
    clips, ids = random_clips(2, seed=8), clip_ids(2)
    with torch.no_grad():
        wrong_labels = (defended(clips, ids, 0).argmax(dim=1) + 1) % 10
    result = APGD(defended.with_grad("bpda"), 8 / 255, n_iter=1)(clips, wrong_labels, ids)
    assert ((result.adversarial - clips).flatten(1).abs().amax(dim=1) > 0).all()
    undefended = APGD(defended.bare(), 8 / 255, n_iter=1)(clips, wrong_labels, ids)
    assert torch.equal(undefended.adversarial, clips)  # deterministic: already misclassified, left alone (AutoAttack)


def test_bpda_eot_is_diffpures_setting(defended):
    attack = bpda_eot(defended, 8 / 255)
    assert (attack.n_iter, attack.eot_iter, attack.step, attack.random_start) == (50, 15, 2 / 255, False)
    assert attack.defended.grad_mode == "bpda"
