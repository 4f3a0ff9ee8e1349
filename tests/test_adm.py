"""guided-diffusion ADM UNet: layout and numbers pinned to fixtures made with the reference code."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from videopure.diffusion.adm import (
    NUM_CLASSES,
    Downsample,
    QKVAttention,
    QKVAttentionLegacy,
    UNetModel,
    Upsample,
    create_adm,
    timestep_embedding,
)

FIXTURES = Path(
    os.environ.get("VIDEOPURE_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures")
)
ADM = FIXTURES / "adm"

# A tiny model for option tests: 2 levels, attention at 16x16 (rate 2), runs in milliseconds.
TINY = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2", attention_resolutions="16")


@pytest.fixture(scope="module")
def full_layout() -> dict:
    return json.loads((ADM / "full_256_uncond_keys.json").read_text())


@pytest.fixture(scope="module")
def small_config() -> dict:
    return json.loads((ADM / "small_config.json").read_text())


@pytest.fixture(scope="module")
def small_state_dict() -> dict[str, torch.Tensor]:
    return torch.load(ADM / "small_state_dict.pt", weights_only=True)


@pytest.fixture(scope="module")
def small_io() -> dict[str, torch.Tensor]:
    return torch.load(ADM / "small_io.pt", weights_only=True)


def load_small(config: dict, state_dict: dict[str, torch.Tensor], **overrides) -> UNetModel:
    model = create_adm(**{**config, **overrides})
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def layout(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(key, list(value.shape)) for key, value in model.state_dict().items()]


def test_full_256_layout_matches_official_checkpoint(full_layout):
    with torch.device("meta"):
        model = create_adm(**{**full_layout["create_model_args"], "use_fp16": False})
    assert layout(model) == [(key, shape) for key, shape, _ in full_layout["keys"]]
    assert sum(p.numel() for p in model.parameters()) == full_layout["total_parameters"] == 552_814_086
    assert list(model.buffers()) == []
    assert all(value.dtype == torch.float32 for value in model.state_dict().values())


def test_full_256_fp16_converts_exactly_the_reference_tensors(full_layout):
    with torch.device("meta"):
        model = create_adm(**full_layout["create_model_args"])  # use_fp16=True, as DiffPure builds it
    half = [key for key, value in model.state_dict().items() if value.dtype == torch.float16]
    assert half == full_layout["keys_float16_after_convert_to_fp16"]
    others = {value.dtype for key, value in model.state_dict().items() if key not in set(half)}
    assert others == {torch.float32}
    assert model.torso_dtype == torch.float16


def test_small_model_reproduces_reference_output(small_config, small_state_dict, small_io):
    model = load_small(small_config, small_state_dict)
    with torch.no_grad():
        out = model(small_io["x"], small_io["t"])
    assert out.shape == (4, 6, 64, 64) and out.dtype == torch.float32
    assert (out - small_io["out"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("use_checkpoint", [False, True])
def test_input_gradient_with_frozen_parameters(small_config, small_state_dict, small_io, use_checkpoint):
    model = load_small(small_config, small_state_dict, use_checkpoint=use_checkpoint).requires_grad_(False)
    x = small_io["x"][:2].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x, small_io["t"][:2]).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    if use_checkpoint:
        plain = load_small(small_config, small_state_dict).requires_grad_(False)
        (expected,) = torch.autograd.grad(plain(x, small_io["t"][:2]).sum(), x)
        torch.testing.assert_close(grad, expected)


def test_checkpointed_model_trains_its_parameters(small_config, small_state_dict, small_io):
    model = load_small(small_config, small_state_dict, use_checkpoint=True)
    model(small_io["x"][:1], small_io["t"][:1]).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_new_attention_order_uses_same_weights_and_differs(small_config, small_state_dict, small_io):
    legacy = load_small(small_config, small_state_dict)
    new = load_small(small_config, small_state_dict, use_new_attention_order=True)
    assert layout(new) == layout(legacy)
    x, t = small_io["x"][:2], small_io["t"][:2]
    with torch.no_grad():
        assert (new(x, t) - legacy(x, t)).abs().max() > 1e-2


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, C, T) per head → (B, C, T)."""
    weights = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(q.shape[1]), dim=-1)
    return torch.einsum("bts,bcs->bct", weights, v)


@pytest.mark.parametrize("order", ["legacy", "new"])
def test_qkv_attention_head_splits(order):
    batch, heads, channels, length = 2, 3, 4, 5
    qkv = torch.randn(batch, 3 * heads * channels, length, generator=torch.Generator().manual_seed(0))
    if order == "legacy":  # per head: q, k, v
        q, k, v = qkv.reshape(batch * heads, 3 * channels, length).split(channels, dim=1)
        out = QKVAttentionLegacy(heads)(qkv)
    else:  # q, k, v each holding all heads
        q, k, v = (part.reshape(batch * heads, channels, length) for part in qkv.chunk(3, dim=1))
        out = QKVAttention(heads)(qkv)
    expected = naive_attention(q, k, v).reshape(batch, heads * channels, length)
    torch.testing.assert_close(out, expected)


def test_class_conditional_model_needs_labels():
    model = create_adm(**TINY, class_cond=True).eval()
    keys = list(model.state_dict())
    assert keys[4] == "label_emb.weight"
    assert model.label_emb.weight.shape == (NUM_CLASSES, 4 * 32)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([1, 500])
    with torch.no_grad():
        out = model(x, t, torch.tensor([3, 999]))
    assert out.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="labels y"):
        model(x, t)
    with pytest.raises(ValueError, match="not class-conditional"):
        create_adm(**TINY)(x, t, torch.tensor([0, 1]))


def test_num_heads_upsample_sets_heads_on_the_way_up():
    model = create_adm(**TINY, num_heads=2, num_heads_upsample=4)
    assert model.input_blocks[3][1].num_heads == 2
    assert model.middle_block[1].num_heads == 2
    assert {block[1].num_heads for block in model.output_blocks[:2]} == {4}
    by_width = create_adm(**TINY, num_heads=2, num_heads_upsample=4, num_head_channels=16)
    assert by_width.middle_block[1].num_heads == 64 // 16
    assert by_width.output_blocks[0][1].num_heads == 64 // 16


def test_convolutional_resampling_layout():
    model = create_adm(**TINY, resblock_updown=False)
    keys = set(model.state_dict())
    assert isinstance(model.input_blocks[2][0], Downsample)
    assert {"input_blocks.2.0.op.weight", "input_blocks.2.0.op.bias"} <= keys
    assert isinstance(model.output_blocks[1][-1], Upsample)
    assert {"output_blocks.1.2.conv.weight", "output_blocks.1.2.conv.bias"} <= keys
    resblocks = create_adm(**TINY, resblock_updown=True)
    assert "input_blocks.2.0.in_layers.0.weight" in resblocks.state_dict()
    assert not any(".op." in key or ".conv." in key for key in resblocks.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert model(x, torch.tensor([7])).shape == resblocks(x, torch.tensor([7])).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(("learn_sigma", "channels"), [(False, 3), (True, 6)])
def test_learn_sigma_sets_output_channels(learn_sigma, channels):
    model = create_adm(**TINY, learn_sigma=learn_sigma)
    assert model.state_dict()["out.2.weight"].shape == (channels, 32, 3, 3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32), torch.tensor([0])).shape == (1, channels, 32, 32)


@pytest.mark.parametrize(
    ("image_size", "mult"),
    [(64, (1, 2, 3, 4)), (128, (1, 1, 2, 3, 4)), (256, (1, 1, 2, 2, 4, 4)), (512, (0.5, 1, 1, 2, 2, 4, 4))],
)
def test_default_channel_mult_per_image_size(image_size, mult):
    with torch.device("meta"):
        model = create_adm(image_size=image_size, num_channels=64, num_res_blocks=1)
    assert model.channel_mult == mult
    assert model.input_blocks[0][0].out_channels == int(mult[0] * 64)
    assert model.out[2].in_channels == int(mult[0] * 64)
    assert len(model.input_blocks) == 1 + len(mult) * 2 - 1


def test_attention_resolutions_become_downsampling_rates():
    model = create_adm(**{**TINY, "attention_resolutions": "32,16"})
    assert any(isinstance(m, QKVAttentionLegacy) for m in model.input_blocks[1].modules())  # 32x32, rate 1
    assert any(isinstance(m, QKVAttentionLegacy) for m in model.input_blocks[3].modules())  # 16x16, rate 2
    assert not any(isinstance(m, QKVAttentionLegacy) for m in create_adm(**TINY).input_blocks[1].modules())


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="image_size=100"):
        create_adm(image_size=100, num_channels=32, num_res_blocks=1)
    create_adm(image_size=100, num_channels=32, num_res_blocks=1, channel_mult="1,2", attention_resolutions="50")
    with pytest.raises(TypeError, match="num_chanels"):
        create_adm(image_size=64, num_chanels=32, num_res_blocks=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="num_head_channels"):
        create_adm(**TINY, num_head_channels=24)


def test_bad_inputs_are_reported():
    model = create_adm(**TINY)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 1, 32, 32), torch.tensor([0]))
    with pytest.raises(ValueError, match="multiples of 2"):
        model(torch.randn(1, 3, 33, 32), torch.tensor([0]))
    with pytest.raises(ValueError, match="timesteps"):
        model(torch.randn(2, 3, 32, 32), torch.tensor([0, 1, 2]))
    with torch.no_grad():  # a scalar timestep applies to the whole batch
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(model(x, torch.tensor(5)), model(x, torch.tensor([5, 5])))


def test_timestep_embedding():
    t = torch.tensor([0.0, 3.0, 999.0])
    emb = timestep_embedding(t, 7)
    freqs = 10000.0 ** (-torch.arange(3, dtype=torch.float64) / 3)
    angles = t.double()[:, None] * freqs
    expected = torch.cat([angles.cos(), angles.sin(), torch.zeros(3, 1, dtype=torch.float64)], dim=1)
    assert emb.shape == (3, 7) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.double(), expected, atol=1e-4, rtol=0)
    integer, fractional = timestep_embedding(torch.tensor([2, 5]), 8), timestep_embedding(torch.tensor([2.0, 5.0]), 8)
    torch.testing.assert_close(integer, fractional)


def test_bfloat16_autocast_stays_close_to_float32(small_config, small_state_dict, small_io):
    model = load_small(small_config, small_state_dict)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(small_io["x"], small_io["t"])
    reference = small_io["out"]
    assert torch.isfinite(out).all()
    # measured: relative L2 error 1.6e-2, max |error| / max |ref| 1.8e-2
    assert ((out.float() - reference).norm() / reference.norm()).item() < 5e-2


def test_fp16_torso_runs_and_returns_input_dtype(small_config, small_state_dict, small_io):
    model = load_small(small_config, small_state_dict, use_fp16=True)
    assert model.torso_dtype == torch.float16
    assert model.input_blocks[1][0].in_layers[0].weight.dtype == torch.float32  # norms stay float32
    with torch.no_grad():
        out = model(small_io["x"][:2], small_io["t"][:2])
    reference = small_io["out"][:2]
    assert out.dtype == torch.float32
    # measured: relative L2 error 2e-3
    assert ((out - reference).norm() / reference.norm()).item() < 1e-2


def test_dropout_is_active_in_training_only():
    model = create_adm(**TINY, dropout=0.5)
    for p in model.parameters():  # non-zero output convs, so dropout shows in the output
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([10])
    with torch.no_grad():
        assert not torch.equal(model.train()(x, t), model(x, t))
        torch.testing.assert_close(model.eval()(x, t), model(x, t))


def test_float64_model_runs_in_float64():
    model = create_adm(**TINY).double()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32, dtype=torch.float64), torch.tensor([3]))
    assert out.dtype == torch.float64
