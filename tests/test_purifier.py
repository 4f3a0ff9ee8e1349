"""DiffusionPurifier: DiffPure fixture replay, per-clip determinism, temporal noise sharing, gradient modes."""

from __future__ import annotations

import json

import pytest
import torch
import torchsde

from videopure.diffusion.adm import create_adm
from videopure.diffusion.presets import freeze
from videopure.diffusion.score import ScoreModel
from videopure.purify import DiffusionPurifier, PurificationError
from videopure.purify.noise import clip_seed, draw_clip_noise
from tiny_models import TINY_ADM, randomized

@pytest.fixture(scope="module")
def tiny_net() -> torch.nn.Module:
    return randomized(create_adm(**TINY_ADM))


@pytest.fixture(scope="module")
def small_net(fixtures_dir) -> torch.nn.Module:
    net = create_adm(**json.loads((fixtures_dir / "adm" / "small_config.json").read_text()))
    net.load_state_dict(torch.load(fixtures_dir / "adm" / "small_state_dict.pt", weights_only=True))
    return freeze(net)


def clip(batch: int = 1, frames: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand((batch, 3, frames, size, size), generator=torch.Generator().manual_seed(seed))


def test_replays_diffpure_fixture(small_net, fixtures_dir):
    ref = torch.load(fixtures_dir / "adm" / "purify_io.pt", weights_only=True)
    purifier = DiffusionPurifier(small_net, t_star=ref["t"] / 1000, dt=ref["dt"])
    bm = torchsde.BrownianInterval(
        t0=ref["bm_t0"],
        t1=ref["bm_t1"],
        size=(2, 3 * 64 * 64),
        entropy=ref["bm_entropy"],
        levy_area_approximation="none",
        dtype=torch.float32,
    )
    with torch.no_grad():
        out = purifier.purify_frames(ref["x"], eps=ref["eps"], bm=bm)
    assert (out - ref["out"]).abs().max().item() <= 1e-4


def test_clip_result_does_not_depend_on_batch(tiny_net):
    purifier = DiffusionPurifier(tiny_net, t_star=0.02, dt=5e-3)
    a, b = clip(seed=1), clip(seed=2)
    with torch.no_grad():
        alone = purifier(a, clip_ids=["a"])
        batched = purifier(torch.cat([b, a]), clip_ids=["b", "a"])
        chunked = purifier.replace(frame_batch=2)(torch.cat([b, a]), clip_ids=["b", "a"])
    assert torch.allclose(alone[0], batched[1], atol=1e-6)
    assert torch.allclose(alone[0], chunked[1], atol=1e-6)
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)


def test_draws_and_seeds_change_the_noise(tiny_net):
    purifier = DiffusionPurifier(tiny_net, t_star=0.02, dt=5e-3)
    x = clip()
    with torch.no_grad():
        first = purifier(x, clip_ids=["a"], draw=0)
        again = purifier(x, clip_ids=["a"], draw=0)
        second = purifier(x, clip_ids=["a"], draw=1)
        reseeded = purifier.replace(seed=7)(x, clip_ids=["a"], draw=0)
    assert torch.equal(first, again)
    assert not torch.allclose(first, second, atol=1e-3)
    assert not torch.allclose(first, reseeded, atol=1e-3)


@pytest.mark.parametrize("grad", ["adjoint", "direct"])
def test_shared_noise_keeps_identical_frames_identical(tiny_net, grad):
    frame = torch.rand((1, 3, 1, 16, 16), generator=torch.Generator().manual_seed(3))
    x = frame.expand(1, 3, 4, 16, 16).clone().requires_grad_(True)
    out = DiffusionPurifier(tiny_net, t_star=0.02, dt=5e-3, noise="shared", grad=grad)(x, clip_ids=["s"])
    for t in range(1, 4):
        assert torch.allclose(out[:, :, t], out[:, :, 0], atol=1e-6)
    (gradient,) = torch.autograd.grad(out[:, :, 1:].square().sum(), x)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0

    independent = DiffusionPurifier(tiny_net, t_star=0.02, dt=5e-3, noise="independent")(x.detach(), clip_ids=["s"])
    assert (independent[:, :, 1] - independent[:, :, 0]).abs().max() > 1e-2


def test_adjoint_gradient_matches_autograd_on_the_same_path(tiny_net):
    """A DiffPure-like window (t* = 0.1, 20 Euler steps): the adjoint agrees with autograd through the solver."""
    x = clip(frames=2).requires_grad_(True)
    weights = torch.randn((1, 3, 2, 16, 16), generator=torch.Generator().manual_seed(5))
    gradients = {}
    for grad in ("adjoint", "direct"):
        purifier = DiffusionPurifier(tiny_net, t_star=0.1, dt=5e-3, grad=grad)
        out = purifier(x, clip_ids=["g"])
        (gradients[grad],) = torch.autograd.grad((out * weights).sum(), x)
    cosine = torch.nn.functional.cosine_similarity(gradients["adjoint"].flatten(), gradients["direct"].flatten(), dim=0)
    assert cosine >= 0.99, f"adjoint vs direct gradient cosine {cosine:.4f}"


def test_adjoint_gradient_matches_autograd_in_float64(tiny_net):
    net64 = randomized(create_adm(**TINY_ADM)).double()
    x = clip(frames=1).double().requires_grad_(True)
    gradients = {}
    for grad in ("adjoint", "direct"):
        out = DiffusionPurifier(net64, t_star=0.02, dt=2e-3, grad=grad)(x, clip_ids=["g"])
        (gradients[grad],) = torch.autograd.grad(out.square().sum(), x)
    cosine = torch.nn.functional.cosine_similarity(gradients["adjoint"].flatten(), gradients["direct"].flatten(), dim=0)
    assert cosine >= 0.999


def test_bpda_is_identity_backward_and_no_grad_builds_no_graph(tiny_net):
    x = clip().requires_grad_(True)
    out = DiffusionPurifier(tiny_net, t_star=0.02, dt=5e-3, grad="bpda")(x, clip_ids=["b"])
    (gradient,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(gradient, torch.ones_like(x))
    with torch.no_grad():
        plain = DiffusionPurifier(tiny_net, t_star=0.02, dt=5e-3)(x, clip_ids=["b"])
    assert plain.grad_fn is None and not plain.requires_grad
    assert torch.allclose(plain, out.detach(), atol=1e-6)


def test_forward_noising_matches_the_vp_marginal(tiny_net):
    purifier = DiffusionPurifier(tiny_net, t_star=0.1)
    frames = torch.full((4096, 3, 16, 16), 0.75)
    eps = torch.randn((4096, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    noised = purifier._diffuse(frames, eps)
    alpha_bar = purifier.score_model.schedule.discrete_alpha_bar()[99]
    assert abs(noised.mean().item() - alpha_bar.sqrt().item() * 0.5) < 3e-3
    assert abs(noised.std().item() - (1 - alpha_bar).sqrt().item()) < 3e-3
    continuous = purifier.score_model.schedule.alpha_bar(torch.tensor(0.1))
    assert abs(alpha_bar.item() - continuous.item()) < 2e-3


def test_clip_noise_is_per_clip_and_shared_mode_draws_one_source():
    seed = clip_seed(0, "v_ApplyEyeMakeup_g01_c01.avi")
    assert seed == clip_seed(0, "v_ApplyEyeMakeup_g01_c01.avi") != clip_seed(1, "v_ApplyEyeMakeup_g01_c01.avi")
    independent = draw_clip_noise(seed, 5, (3, 8, 8), "independent")
    shared = draw_clip_noise(seed, 5, (3, 8, 8), "shared")
    assert independent.eps.shape == (5, 3, 8, 8) and len(set(independent.entropies)) == 5
    assert shared.eps.shape == (1, 3, 8, 8) and shared.num_sources == 1
    assert torch.equal(draw_clip_noise(seed, 5, (3, 8, 8), "independent").eps, independent.eps)


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda: torch.rand(3, 4, 16, 16), "(B, C, T, H, W)"),
        (lambda: torch.rand(1, 4, 2, 16, 16), "channels"),
        (lambda: torch.rand(1, 3, 2, 16, 16) * 2, "[0, 1]"),
        (lambda: torch.full((1, 3, 2, 16, 16), float("nan")), "NaN"),
    ],
)
def test_bad_clips_are_rejected(tiny_net, make_input, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        DiffusionPurifier(tiny_net, t_star=0.02)(make_input())


@pytest.mark.parametrize("t_star", [0.0, 1.5, 0.1234])
def test_bad_t_star_is_rejected(tiny_net, t_star):
    with pytest.raises(ValueError, match="t_star"):
        DiffusionPurifier(tiny_net, t_star=t_star)


class NaNScore(ScoreModel):
    def eps(self, x, t):
        return torch.full_like(x, float("nan"))


def test_nan_in_the_solver_names_the_clip(tiny_net):
    purifier = DiffusionPurifier(NaNScore(tiny_net), t_star=0.01)
    with pytest.raises(PurificationError, match="clip-7"):
        with torch.no_grad():
            purifier(clip(), clip_ids=["clip-7"])


def test_bfloat16_autocast_stays_close_to_float32(small_net):
    """Measured: max |bf16 − fp32| ≈ 1e-3 on the fixture model (3 Euler steps); the bound leaves 10x headroom."""
    x = torch.rand((1, 3, 2, 64, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = DiffusionPurifier(small_net, t_star=0.003)(x, clip_ids=["p"])
        low = DiffusionPurifier(small_net, t_star=0.003, precision="bfloat16")(x, clip_ids=["p"])
    assert low.dtype == torch.float32
    assert 0 < (low - reference).abs().max() < 1e-2  # > 0: autocast really ran in bf16
