"""Score adapters against the reference outputs, safe checkpoint loading, presets."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from videopure.diffusion import create_adm, create_ncsnpp, list_presets, load_preset
from videopure.diffusion.checkpoint import CheckpointError, load_weights
from videopure.diffusion.score import ADMScore, ScoreSDEScore, as_score_model
from videopure.diffusion.schedule import VPSchedule


@pytest.fixture(scope="module")
def adm_small(fixtures_dir):
    config = json.loads((fixtures_dir / "adm" / "small_config.json").read_text())
    state = torch.load(fixtures_dir / "adm" / "small_state_dict.pt", weights_only=True)
    return config, state


@pytest.fixture(scope="module")
def ncsnpp_small(fixtures_dir):
    config = json.loads((fixtures_dir / "ncsnpp" / "small_config.json").read_text())
    state = torch.load(fixtures_dir / "ncsnpp" / "small_state_dict.pt", weights_only=True)
    return config, state


def test_schedule_matches_diffpure_reference_values():
    schedule = VPSchedule()
    alpha_bar = schedule.discrete_alpha_bar(torch.float64)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(alpha_bar, torch.cumprod(1 - betas, 0))
    t = torch.tensor([0.1, 0.15], dtype=torch.float64)
    assert torch.allclose(schedule.alpha_bar(t), torch.exp(-0.5 * t**2 * 19.9 - 0.1 * t))
    assert torch.allclose(schedule.beta(t), 0.1 + t * 19.9)


def test_adm_score_is_minus_eps_over_continuous_std(adm_small, fixtures_dir):
    config, state = adm_small
    net = create_adm(**config)
    net.load_state_dict(state)
    score_model = as_score_model(net.eval())
    assert isinstance(score_model, ADMScore)
    ref = torch.load(fixtures_dir / "adm" / "small_io.pt", weights_only=True)
    tau = ref["t"].float() / 1000  # floor(1000 tau) recovers the reference integer steps
    with torch.no_grad():
        score = score_model(ref["x"], tau)
    std = torch.sqrt(1 - torch.exp(-0.5 * 19.9 * tau**2 - 0.1 * tau)).view(-1, 1, 1, 1)
    expected = -ref["out"][:, :3] / std
    keep = ref["t"] > 0  # at tau = 0 the continuous std is 0
    assert torch.allclose(score[keep], expected[keep], rtol=1e-4, atol=1e-3)


def test_score_sde_score_uses_label_999t(ncsnpp_small, fixtures_dir):
    config, state = ncsnpp_small
    net = create_ncsnpp(config)
    net.load_state_dict(state)
    score_model = as_score_model(net.eval())
    assert isinstance(score_model, ScoreSDEScore)
    ref = torch.load(fixtures_dir / "ncsnpp" / "small_io.pt", weights_only=True)
    assert torch.allclose(ref["labels"], 999 * ref["t"])
    with torch.no_grad():
        score = score_model(ref["x"], ref["t"])
    t = ref["t"][1:]  # sigma is cancellation-limited in float32 at t = 1e-5
    sigma = torch.sqrt(1 - torch.exp(-0.5 * t**2 * 19.9 - 0.1 * t)).view(-1, 1, 1, 1)
    assert torch.allclose(score[1:], -ref["out"][1:] / sigma, rtol=1e-4, atol=1e-3)


def test_adm_checkpoint_loads_plain_and_module_prefixed(adm_small, tmp_path):
    config, state = adm_small
    for name, saved in (("plain.pt", state), ("ddp.pt", {f"module.{k}": v for k, v in state.items()})):
        torch.save(saved, tmp_path / name)
        net = create_adm(**config)
        load_weights(net, tmp_path / name, "small")
        assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_key_mismatch_names_missing_and_unexpected_keys(adm_small, tmp_path):
    config, state = adm_small
    broken = dict(state)
    broken.pop("out.2.weight")
    broken["extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(create_adm(**config), tmp_path / "broken.pt", "small")
    assert "missing keys: out.2.weight" in str(info.value)
    assert "unexpected keys: extra.weight" in str(info.value)
    assert "(small)" in str(info.value)


def test_wrong_file_for_a_preset_names_the_preset(adm_small, tmp_path, fixtures_dir):
    with pytest.raises(CheckpointError) as info:
        load_preset("adm-256-uncond", fixtures_dir / "adm" / "small_state_dict.pt")
    assert "preset 'adm-256-uncond'" in str(info.value) and "wrong shape" in str(info.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_preset("adm-256-uncond", tmp_path / "absent.pt")
    with pytest.raises(KeyError, match="known presets: adm-256-uncond, ddpmpp-cifar10"):
        load_preset("adm-512", tmp_path / "absent.pt")


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    marker = tmp_path / "ran"
    code = (
        "import os, torch\n"
        "class Evil:\n"
        f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'w': Evil()}}, '{path}')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(CheckpointError, match="refused"):
        load_weights(torch.nn.Linear(1, 1), path, "small")
    assert not marker.exists()


def test_score_sde_checkpoint_uses_ema_weights_in_parameter_order(ncsnpp_small, tmp_path):
    config, state = ncsnpp_small
    net = create_ncsnpp(config)
    names = [name for name, _ in net.named_parameters()]
    shadow = [state[name] + 1.0 for name in names]  # EMA weights differ from the raw weights
    checkpoint = {
        "model": {f"module.{k}": v for k, v in state.items()},
        "ema": {"decay": 0.9999, "num_updates": 10, "shadow_params": shadow},
        "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4, "params": list(range(len(names)))}]},
        "step": 8,
    }
    torch.save(checkpoint, tmp_path / "checkpoint_8.pth")
    load_weights(net, tmp_path / "checkpoint_8.pth", "small")
    params = dict(net.named_parameters())
    assert all(torch.equal(params[name], value) for name, value in zip(names, shadow))
    assert torch.equal(net.sigmas, state["sigmas"])

    checkpoint["ema"]["shadow_params"] = shadow[:-1]
    torch.save(checkpoint, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match="shadow_params"):
        load_weights(create_ncsnpp(config), tmp_path / "short.pth", "small")


def test_presets_match_the_official_layouts(fixtures_dir):
    assert list_presets() == ["adm-256-uncond", "ddpmpp-cifar10", "demo"]
    adm_keys = json.loads((fixtures_dir / "adm" / "full_256_uncond_keys.json").read_text())
    ncsnpp_keys = json.loads((fixtures_dir / "ncsnpp" / "full_cifar10_ddpmpp_deep_keys.json").read_text())
    from videopure.diffusion.presets import get_preset

    adm, ddpmpp = get_preset("adm-256-uncond"), get_preset("ddpmpp-cifar10")
    assert {**adm.config, "use_fp16": True} == adm_keys["create_model_args"]
    assert ddpmpp.config["model"] == ncsnpp_keys["model_config"]
    assert ddpmpp.config["data"] == ncsnpp_keys["data_config"]
    with torch.device("meta"):
        for preset, keys in ((adm, adm_keys), (ddpmpp, ncsnpp_keys)):
            net = preset.build()
            assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == [[k, s] for k, s, _ in keys["keys"]]


def test_load_preset_returns_a_frozen_network(ncsnpp_small, tmp_path, monkeypatch):
    """load_preset on a (small) Score-SDE checkpoint: strict load, eval mode, no parameter gradients."""
    from videopure.diffusion import presets

    config, state = ncsnpp_small
    small = dataclasses.replace(presets.get_preset("ddpmpp-cifar10"), name="small", config=config)
    monkeypatch.setitem(presets.PRESETS, "small", small)
    torch.save({"model": state, "step": 1}, tmp_path / "ckpt.pth")
    net = load_preset("small", tmp_path / "ckpt.pth")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(as_score_model(net)(x * 2 - 1, torch.tensor([0.1])).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert math.isfinite(float(grad.sum()))


def test_the_demo_preset_loads_its_bundled_weights_and_only_it_counts_as_trained():
    from videopure.diffusion.presets import get_preset, has_weights, load_network
    from videopure.jobs.stages import DiffusionConfig, check_diffusion_weights

    preset = get_preset("demo")
    assert preset.bundled_checkpoint.is_file() and preset.bundled_checkpoint.stat().st_size < 10_000_000
    net = load_network("demo", None)
    shipped = torch.load(preset.bundled_checkpoint, weights_only=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in shipped.items())
    assert has_weights("demo", None) and not has_weights("adm-256-uncond", None) and has_weights("adm-256-uncond", "x.pt")
    check_diffusion_weights(DiffusionConfig(model="demo"))
    with pytest.raises(ValueError, match="'adm-256-uncond' ships no weights"):
        check_diffusion_weights(DiffusionConfig(model="adm-256-uncond"))
