"""``videopure train-diffusion``: DDPM training of an ADM on video frames, resumable, loadable by the purifier."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.tiny_models import TINY_ADM
from videopure.cli import train_diffusion as cli
from videopure.config import ConfigError, apply_overrides, from_dict, load_config
from videopure.data import make_synthetic_dataset
from videopure.diffusion.presets import PRESETS, load_network
from videopure.diffusion.schedule import VPSchedule
from videopure.diffusion.train import (
    FrameDataConfig,
    TrainDiffusionConfig,
    adm_arguments,
    batch_indices,
    ema_update,
    load_frames,
    sample_ddpm,
    train_diffusion,
)
from videopure.manifest import Manifest
from videopure.purify import DiffusionPurifier


@pytest.fixture(autouse=True)
def _one_thread():
    """Batches of 8 frames of 16x16 gain nothing from threads; on a loaded machine extra threads cost 5-10x."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """2 classes x 6 videos of 4 frames at 16x16: split 1 has 8 training videos (32 frames) and 4 test videos."""
    root = tmp_path_factory.mktemp("frames") / "synthetic"
    return make_synthetic_dataset(root, classes=("move_left", "grow"), videos_per_class=6, num_frames=4, size=(16, 16))


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("net") / "tiny_adm.json"
    path.write_text(json.dumps(TINY_ADM))
    return path


def settings(dataset: Path, model: Path, out: Path) -> dict:
    """A few steps of batch 8, a checkpoint every 2 steps, a train row every step, no figures."""
    return {
        "model": str(model),
        "data": {"root": str(dataset), "frames_per_video": 4, "decode_timeout": None},
        "output_dir": str(out),
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "validation": {"videos": 2, "frames": 8, "timesteps": [50, 500]},
        "preview": {"clips": 0, "samples": 0},
        "steps": 4,
        "batch_size": 8,
        "checkpoint_every": 2,
        "log_every": 1,
        "device": "cpu",
    }


def make_config(dataset: Path, model: Path, out: Path, *overrides: str) -> TrainDiffusionConfig:
    return from_dict(TrainDiffusionConfig, apply_overrides(settings(dataset, model, out), overrides))


def rows(out: Path, kind: str) -> list[dict]:
    return [row for row in Manifest(out / "metrics.jsonl").rows() if row["kind"] == kind]


def test_loss_decreases_on_a_tiny_frame_set(dataset, tiny_json, tmp_path):
    config = make_config(
        dataset, tiny_json, tmp_path / "run", "steps=30", "optim.lr=0.002", "optim.warmup_steps=0",
        "ema_rate=0.0", "checkpoint_every=30", "log_every=10", "validation.frames=16",
    )
    result = train_diffusion(config)
    val = rows(config.output_dir, "val")
    assert [row["step"] for row in val] == [0, 30]
    assert val[0]["val_loss"] == pytest.approx(1.0, abs=0.1)  # zero-initialised output: ε̂ = 0
    assert result.val_loss == val[-1]["val_loss"] < 0.7 * val[0]["val_loss"]
    train = rows(config.output_dir, "train")
    assert train[-1]["loss"] < train[0]["loss"]


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(dataset, tiny_json, tmp_path):
    noisy = tmp_path / "dropout_adm.json"
    noisy.write_text(json.dumps({**TINY_ADM, "dropout": 0.1}))  # dropout and flips draw randomness every step
    config = make_config(dataset, noisy, tmp_path / "straight", "data.hflip=true", "steps=5")
    train_diffusion(config)

    interrupted = make_config(dataset, noisy, tmp_path / "interrupted", "data.hflip=true", "steps=5")

    def stop(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_diffusion(interrupted, on_checkpoint=stop)
    assert rows(interrupted.output_dir, "train")[-1]["step"] == 2
    with pytest.raises(ValueError, match="already holds"):
        train_diffusion(interrupted)
    result = train_diffusion(interrupted, resume=True)

    assert result.step == 5
    for name in ("model.pt", "ema.pt"):
        expected = torch.load(config.output_dir / name, weights_only=True)
        got = torch.load(interrupted.output_dir / name, weights_only=True)
        assert all(torch.equal(expected[key], got[key]) for key in expected), name
    straight = torch.load(config.output_dir / "resume.pt", weights_only=True)["optimizer"]["state"]
    resumed = torch.load(interrupted.output_dir / "resume.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(straight[i]["exp_avg_sq"], resumed[i]["exp_avg_sq"]) for i in straight)
    loss = lambda out: [(row["step"], row["loss"]) for row in rows(out, "train")]  # noqa: E731
    assert loss(interrupted.output_dir) == loss(config.output_dir)
    assert [r["step"] for r in rows(interrupted.output_dir, "val")] == [0, 2, 4, 5]


def test_resume_needs_a_run(dataset, tiny_json, tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        train_diffusion(make_config(dataset, tiny_json, tmp_path / "empty"), resume=True)


def test_ema_update_is_an_exponential_moving_average():
    net, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        ema.weight.zero_()
        net.running_mean.fill_(5.0)
    ema_update(ema, net, rate=0.9)
    torch.testing.assert_close(ema.weight, torch.tensor([0.1, 0.2, 0.3]))
    ema_update(ema, net, rate=0.9)
    torch.testing.assert_close(ema.weight, 0.9 * torch.tensor([0.1, 0.2, 0.3]) + 0.1 * net.weight)
    torch.testing.assert_close(ema.running_mean, net.running_mean)  # buffers are copied


def test_batches_visit_every_frame_once_per_epoch():
    indices = torch.cat([batch_indices(10, 4, seed=3, step=s) for s in range(1, 6)])  # 20 = two epochs
    assert sorted(indices[:10].tolist()) == list(range(10)) == sorted(indices[10:].tolist())
    assert not torch.equal(indices[:10], indices[10:])
    assert torch.equal(batch_indices(10, 4, seed=3, step=3), indices[8:12])


def test_ancestral_sampler_recovers_a_point_mass():
    """With the exact ε of data concentrated at one image c, every sample ends at c."""
    alpha_bar = VPSchedule().discrete_alpha_bar()
    target = torch.linspace(-0.8, 0.8, 3 * 4 * 4).reshape(1, 3, 4, 4)

    class ExactEps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(()))

        def forward(self, x, t):
            a = alpha_bar[t].view(-1, 1, 1, 1)
            return (x - a.sqrt() * target) / (1 - a).sqrt()

    samples = sample_ddpm(ExactEps(), (2, 3, 4, 4), num_steps=20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples, target.expand(2, -1, -1, -1), atol=1e-3, rtol=0)


def test_bad_config_names_the_field_and_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: net.json\ndata: {root: data}\noutput_dir: out\nsteps: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'steps'"):
        load_config(path, TrainDiffusionConfig)
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'optim\.learning_rate'"):
        load_config(path, TrainDiffusionConfig, ["steps=10", "optim.learning_rate=0.1"])
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'checkpoint_every'.*'log_every'"):
        load_config(path, TrainDiffusionConfig, ["steps=10", "checkpoint_every=30", "log_every=20"])


def test_only_unconditional_adm_networks_are_trained(tmp_path):
    assert adm_arguments("adm-256-uncond")["image_size"] == 256
    with pytest.raises(ValueError, match="ncsnpp preset"):
        adm_arguments("ddpmpp-cifar10")
    conditional = tmp_path / "cond.json"
    conditional.write_text(json.dumps({**TINY_ADM, "class_cond": True}))
    with pytest.raises(ValueError, match="class_cond"):
        adm_arguments(str(conditional))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        adm_arguments(str(tmp_path / "missing.json"))


def test_the_synthetic_config_is_valid():
    config = load_config(Path(__file__).parents[1] / "configs" / "train_diffusion_demo.yaml", TrainDiffusionConfig)
    assert config.model.endswith("adm_tiny_32.json") and config.device == "cpu"
    # the bundled preset `demo` is this config's network: the two copies of its architecture must agree
    assert json.loads((Path(__file__).parents[1] / config.model).read_text()) == PRESETS["demo"].config


def test_a_corrupt_video_is_skipped_with_its_path_and_reason(dataset, tmp_path, caplog):
    bad = sorted(dataset.glob("MoveLeft/*.avi"))[-1]  # a training video of split 1 (group 3)
    copy = tmp_path / "data"
    copy.mkdir()
    for item in dataset.iterdir():
        (copy / item.name).symlink_to(item)
    (copy / "MoveLeft").unlink()
    (copy / "MoveLeft").mkdir()
    for video in dataset.glob("MoveLeft/*.avi"):
        (copy / "MoveLeft" / video.name).write_bytes(b"RIFF\0\0\0\0AVI garbage" if video == bad else video.read_bytes())
    frames = load_frames(FrameDataConfig(root=copy, frames_per_video=4, decode_timeout=None), image_size=16, val_videos=2)
    assert [Path(video.path).name for video in frames.skipped] == [bad.name]
    assert frames.train.shape == (7 * 4, 16, 16, 3) and frames.val.shape == (2, 4, 16, 16, 3)
    assert f"{bad.name}" in caplog.text and frames.skipped[0].reason in caplog.text


@pytest.fixture(scope="module")
def cli_run(dataset, tiny_json, tmp_path_factory) -> Path:
    """A short run through the command line, with the figures."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli") / "run"
    path = out.parent / "train.yaml"
    path.write_text(json.dumps(settings(dataset, tiny_json, out)))  # JSON is YAML
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "train-diffusion", "--config", str(path), "--set", "steps=3",
        "--set", "preview={clips: 1, frames: 2, t_star: 0.01, samples: 2, sample_steps: 3}",
    ])
    assert args.func(args) == 0
    return out


def test_cli_run_writes_the_run_files(cli_run):
    for name in ("ema.pt", "model.pt", "resume.pt", "metrics.jsonl", "config.json", "network.json", "purified.png", "samples.png"):
        assert (cli_run / name).is_file(), name
    assert json.loads((cli_run / "config.json").read_text())["steps"] == 3
    assert [row["step"] for row in rows(cli_run, "val")] == [0, 2, 3]


def test_ema_weights_load_through_load_network_and_purify(cli_run, tiny_json):
    net = load_network(tiny_json, cli_run / "ema.pt")
    assert torch.equal(net.out[-1].weight, torch.load(cli_run / "ema.pt", weights_only=True)["out.2.weight"])
    clips = torch.rand(1, 3, 2, 16, 16)
    purified = DiffusionPurifier(net, t_star=0.01, seed=0)(clips, clip_ids=["a"])
    assert purified.shape == clips.shape and torch.isfinite(purified).all()
    # The learned-variance channels are left untrained: their output stays exactly 0.
    with torch.no_grad():
        out = net(clips[:, :, 0] * 2 - 1, torch.tensor([5]))
    assert out[:, 3:].abs().max() == 0 and out[:, :3].abs().max() > 0
    assert load_network(cli_run / "network.json", cli_run / "ema.pt") is not None
