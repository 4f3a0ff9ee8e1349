"""Score-SDE NCSN++ / DDPM++: checkpoint layout, reference numerics, FIR resampling and every option."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from videopure.diffusion.ncsnpp import NCSNpp, NCSNppConfig, create_ncsnpp
from videopure.diffusion.ncsnpp_layers import (
    conv_downsample_2d,
    downsample_2d,
    upfirdn2d,
    upsample_2d,
    upsample_conv_2d,
)

FIXTURES = Path(
    os.environ.get("VIDEOPURE_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures")
)
NCSNPP_FIXTURES = FIXTURES / "ncsnpp"

TINY = NCSNppConfig(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0)
# NCSN++ as in Score-SDE's VE CIFAR-10 config, shrunk.
TINY_VE = replace(TINY, fir=True, progressive="output_skip", progressive_input="input_skip", embedding_type="fourier",
                  scale_by_sigma=True, centered=False, sigma_min=0.01, sigma_max=50.0)


def _fixture(name: str) -> Path:
    path = NCSNPP_FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(f"reference fixture {path} not found; set VIDEOPURE_FIXTURES")
    return path


def _small_config() -> dict:
    return json.loads(_fixture("small_config.json").read_text())


@pytest.fixture(scope="module")
def small_model() -> NCSNpp:
    model = create_ncsnpp(_small_config())
    model.load_state_dict(torch.load(_fixture("small_state_dict.pt"), weights_only=True), strict=True)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def small_io() -> dict[str, torch.Tensor]:
    return torch.load(_fixture("small_io.pt"), weights_only=True)


# -- checkpoint layout -------------------------------------------------------------------------------
def test_full_ddpmpp_layout_matches_official_checkpoint() -> None:
    ref = json.loads(_fixture("full_cifar10_ddpmpp_deep_keys.json").read_text())
    with torch.device("meta"):
        model = create_ncsnpp({"model": ref["model_config"], "data": ref["data_config"]})
    entries = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert len(entries) == ref["num_state_dict_entries"] == 957
    assert entries == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["total_parameters"] == 106_632_579
    assert [n for n, _ in model.named_parameters()] == ref["ema_shadow_param_order"]
    assert model.config == NCSNppConfig()  # defaults are this network


# -- reference numerics ------------------------------------------------------------------------------
def test_small_model_reproduces_reference_output(small_model: NCSNpp, small_io: dict) -> None:
    with torch.no_grad():
        out = small_model(small_io["x"], small_io["labels"])
    assert out.dtype == torch.float32
    assert (out - small_io["out"]).abs().max().item() <= 1e-4


def test_sigmas_buffer_is_geometric(small_model: NCSNpp) -> None:
    fresh = create_ncsnpp(_small_config()).sigmas
    assert fresh.dtype == torch.float64 and fresh.shape == (1000,)
    torch.testing.assert_close(fresh, small_model.sigmas, rtol=1e-12, atol=0)


def test_input_gradient_with_frozen_parameters(small_model: NCSNpp, small_io: dict) -> None:
    assert not any(p.requires_grad for p in small_model.parameters())
    x = small_io["x"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(small_model(x, small_io["labels"]).sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_bf16_autocast_stays_close(small_model: NCSNpp, small_io: dict) -> None:
    x = small_io["x"].clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = small_model(x, small_io["labels"])
    rel = (out.float() - small_io["out"]).norm() / small_io["out"].norm()
    assert rel < 0.05
    (grad,) = torch.autograd.grad(out.float().sum(), x)
    assert torch.isfinite(grad).all()


def test_attribute_style_config_and_scalar_time(small_model: NCSNpp, small_io: dict) -> None:
    cfg = _small_config()
    namespace = SimpleNamespace(model=SimpleNamespace(**cfg["model"]), data=SimpleNamespace(**cfg["data"]))
    assert create_ncsnpp(namespace).config == small_model.config
    x = small_io["x"][:2]
    with torch.no_grad():
        torch.testing.assert_close(small_model(x, torch.tensor(49.95)), small_model(x, torch.full((2,), 49.95)))


# -- FIR resampling ----------------------------------------------------------------------------------
def _up_1d(a: torch.Tensor) -> torch.Tensor:
    """[1,3,3,1] upsampling by hand: y[2i] = (a[i-1] + 3 a[i]) / 4, y[2i+1] = (3 a[i] + a[i+1]) / 4."""
    padded = F.pad(a, (1, 1))
    out = torch.empty(2 * a.numel(), dtype=a.dtype)
    out[0::2] = (padded[:-2] + 3 * a) / 4
    out[1::2] = (3 * a + padded[2:]) / 4
    return out


def _down_1d(a: torch.Tensor) -> torch.Tensor:
    """[1,3,3,1] downsampling by hand: y[i] = (a[2i-1] + 3 a[2i] + 3 a[2i+1] + a[2i+2]) / 8."""
    p = F.pad(a, (1, 1))
    return (p[0:-2:2] + 3 * p[1:-1:2] + 3 * p[2::2] + p[3::2]) / 8


def test_fir_resampling_matches_hand_computation() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    image = torch.outer(a, b)[None, None]  # separable kernel: rows and columns resample independently
    torch.testing.assert_close(upsample_2d(image, (1, 3, 3, 1))[0, 0], torch.outer(_up_1d(a), _up_1d(b)))
    torch.testing.assert_close(downsample_2d(image, (1, 3, 3, 1))[0, 0], torch.outer(_down_1d(a), _down_1d(b)))


def test_fir_resampling_keeps_constants_and_box_kernel_is_nearest_and_mean() -> None:
    const = torch.full((1, 2, 8, 8), 0.7, dtype=torch.float64)
    torch.testing.assert_close(upsample_2d(const, (1, 3, 3, 1))[..., 1:-1, 1:-1], torch.full((1, 2, 14, 14), 0.7,
                                                                                             dtype=torch.float64))
    torch.testing.assert_close(downsample_2d(const, (1, 3, 3, 1))[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 0.7,
                                                                                              dtype=torch.float64))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(upsample_2d(x, (1, 1)), F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(downsample_2d(x, (1, 1)), F.avg_pool2d(x, 2))


def test_upfirdn2d_is_a_true_convolution() -> None:
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0
    kernel = torch.arange(1.0, 10.0).reshape(3, 3)  # asymmetric: an impulse must reproduce it unflipped
    torch.testing.assert_close(upfirdn2d(x, kernel, pad=(1, 1)), kernel[None, None])


def test_fused_fir_convolutions_equal_unfused_on_zero_extended_images() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 6, 6, dtype=torch.float64), torch.randn(5, 3, 3, 3, dtype=torch.float64)
    m, k = 3, (1, 3, 3, 1)
    up_ref = F.conv2d(upsample_2d(F.pad(x, (m,) * 4), k), w, padding=1)[..., 2 * m:-2 * m, 2 * m:-2 * m]
    torch.testing.assert_close(upsample_conv_2d(x, w, k), up_ref)
    down_ref = downsample_2d(F.conv2d(F.pad(x, (2 * m,) * 4), w, padding=1), k)[..., m:-m, m:-m]
    torch.testing.assert_close(conv_downsample_2d(x, w, k), down_ref)


# -- every option ------------------------------------------------------------------------------------
VARIANTS = {
    "ncsnpp_ve": TINY_VE,
    "fir_ddpm_resblocks": replace(TINY_VE, resblock_type="ddpm"),
    "progressive_residual": replace(TINY, progressive="residual", progressive_input="residual"),
    "progressive_residual_fir": replace(TINY, fir=True, progressive="residual", progressive_input="residual",
                                        skip_rescale=False),
    "combine_cat": replace(TINY, progressive="output_skip", progressive_input="input_skip", progressive_combine="cat"),
    "fourier": replace(TINY, embedding_type="fourier"),
    "resblock_ddpm": replace(TINY, resblock_type="ddpm", nonlinearity="elu"),
    "resblock_ddpm_no_resamp_conv": replace(TINY, resblock_type="ddpm", resamp_with_conv=False, nonlinearity="relu"),
    "unconditional": replace(TINY, conditional=False, nonlinearity="lrelu"),
    "scale_by_sigma_positional": replace(TINY, scale_by_sigma=True, init_scale=0.5),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_option_variants_build_and_run(name: str) -> None:
    config = VARIANTS[name]
    torch.manual_seed(0)
    model = NCSNpp(config).eval()
    twin = NCSNpp(config).eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    t = torch.tensor([0.5, 20.0]) if config.embedding_type == "fourier" else torch.tensor([3.0, 700.0])
    with torch.no_grad():
        out = model(x, t)
        torch.testing.assert_close(twin(x, t), out)
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.abs().sum() > 0


def test_unconditional_model_ignores_time() -> None:
    model = NCSNpp(replace(TINY, conditional=False)).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor([1.0])), model(x, torch.tensor([900.0])))


@pytest.mark.parametrize(
    ("option", "value"),
    [("progressive", "skip"), ("progressive_input", "output_skip"), ("progressive_combine", "max"),
     ("resblock_type", "unet"), ("embedding_type", "learned"), ("attention_type", "legacy"),
     ("nonlinearity", "gelu"), ("normalization", "InstanceNorm"), ("conv_size", 5)],
)
def test_invalid_option_raises_naming_it(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option) as info:
        replace(TINY, **{option: value})
    assert str(value) in str(info.value)


def test_config_errors_name_the_problem() -> None:
    config = {"model": {"name": "ncsnpp", "nf": 16}, "data": {"image_size": 16}}
    with pytest.raises(ValueError, match="model.ch_mult"):
        create_ncsnpp(config)
    with pytest.raises(ValueError, match="ddpm"):
        create_ncsnpp({"model": {"name": "ddpm"}, "data": {}})
    with pytest.raises(ValueError, match="image_size"):
        replace(TINY, image_size=18)


def test_forward_checks_input_shapes() -> None:
    model = NCSNpp(TINY)
    with pytest.raises(ValueError, match=r"\(N, 3, 16, 16\)"):
        model(torch.zeros(1, 3, 32, 32), torch.zeros(1))
    with pytest.raises(ValueError, match="time_cond"):
        model(torch.zeros(2, 3, 16, 16), torch.zeros(3))

