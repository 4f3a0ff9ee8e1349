"""Registry: every model builds with the zoo's architecture, runs on a tiny clip and returns logits."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from pytorchvideo.models import hub
from torch import nn

from videopure.models import VideoClassifier, create_classifier, get_classifier_entry, list_classifiers

REQUIRED = ("x3d_xs", "x3d_s", "x3d_m", "slow_r50", "slowfast_r50", "i3d_r50", "r2plus1d_r50", "mvit_base_16x4")
ZOO_MODELS = [name for name in list_classifiers() if get_classifier_entry(name).zoo_file]
TINY = {"num_frames": 8, "crop_size": 32}  # every architecture accepts this size


@functools.lru_cache(maxsize=None)
def tiny_classifier(name: str, num_classes: int = 5) -> VideoClassifier:
    torch.manual_seed(0)
    return create_classifier(name, num_classes=num_classes, **TINY)


def test_registry_lists_required_models():
    names = list_classifiers()
    assert set(REQUIRED) <= set(names)
    assert "x3d_tiny" in names
    assert list_classifiers("x3d_*") == ["x3d_l", "x3d_m", "x3d_s", "x3d_tiny", "x3d_xs"]
    assert list_classifiers("nothing*") == []


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown classifier 'x3d_xxl'; known: .*slowfast_r50.*x3d_xs"):
        create_classifier("x3d_xxl")


def test_zoo_specs():
    xs, s, m = (get_classifier_entry(n).input_spec for n in ("x3d_xs", "x3d_s", "x3d_m"))
    assert (xs.num_frames, xs.sampling_rate, xs.crop_size, xs.short_side) == (4, 12, 160, 182)
    assert (s.num_frames, s.sampling_rate, s.crop_size) == (13, 6, 160)
    assert (m.num_frames, m.sampling_rate, m.crop_size, m.short_side) == (16, 5, 224, 256)
    sf = get_classifier_entry("slowfast_r50").input_spec
    assert (sf.num_frames, sf.sampling_rate, sf.slowfast_alpha) == (32, 2, 4)
    for name in ZOO_MODELS:
        entry = get_classifier_entry(name)
        assert entry.input_spec.mean == (0.45, 0.45, 0.45) and entry.input_spec.std == (0.225, 0.225, 0.225)
        assert entry.zoo_num_classes == 400


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_architecture_matches_pytorchvideo_hub(name):
    """At the zoo's input spec the net is pytorchvideo's hub model minus the head activation: zoo files fit."""
    # MViT's builder calls .item() while building, which the meta device cannot do: build it for real.
    device = "cpu" if name.startswith("mvit") else "meta"
    with torch.device(device):
        ours = create_classifier(name).net
        reference = getattr(hub, name)(pretrained=False)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert str(ours) == re.sub(r"\n\s*\(activation\): Softmax\(dim=1\)", "", str(reference))


@pytest.mark.parametrize("name", list_classifiers())
def test_every_model_runs_a_tiny_clip_and_returns_logits(name):
    classifier = tiny_classifier(name).eval()
    assert not any(isinstance(m, nn.Softmax) for m in classifier.modules())
    clips = torch.rand(2, 3, 12, 36, 44)  # subsampled to 8 frames, resized and cropped to 32x32 inside
    with torch.no_grad():
        logits = classifier(clips)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    assert (logits < 0).any(), "logits are never all non-negative at random init"
    assert not torch.allclose(logits.sum(dim=1), torch.ones(2), atol=1e-3)


@pytest.mark.parametrize("name", ["x3d_tiny", "r3d_tiny", "slowfast_r50", "mvit_base_16x4"])
def test_gradients_reach_the_pixels(name):
    classifier = tiny_classifier(name).train()
    clips = torch.rand(2, 3, 10, 40, 40, requires_grad=True)
    classifier(clips).logsumexp(dim=1).sum().backward()
    assert clips.grad is not None and torch.isfinite(clips.grad).all()
    assert clips.grad.abs().sum() > 0


@pytest.mark.parametrize("num_classes", [51, 101])
def test_any_number_of_classes(num_classes):
    classifier = create_classifier("x3d_tiny", num_classes=num_classes).eval()
    assert classifier.net.get_submodule(classifier.head_name).out_features == num_classes
    with torch.no_grad():
        assert classifier(torch.rand(1, 3, 8, 64, 64)).shape == (1, num_classes)


def test_x3d_tiny_is_a_small_real_x3d():
    classifier = create_classifier("x3d_tiny")
    assert type(classifier.net).__name__ == "Net"
    assert (classifier.spec.num_frames, classifier.spec.crop_size) == (8, 64)
    assert sum(p.numel() for p in classifier.parameters()) < 1_000_000


def test_r3d_tiny_pools_by_max_and_starts_with_open_residual_branches():
    """What lets it learn small moving shapes from scratch in a few hundred steps (see ``create_r3d_tiny``)."""
    classifier = create_classifier("r3d_tiny", num_classes=8)
    spec = classifier.spec
    assert (spec.num_frames, spec.sampling_rate, spec.crop_size, spec.short_side) == (8, 1, 32, 32)
    assert 100_000 < sum(p.numel() for p in classifier.parameters()) < 1_000_000
    head = classifier.net.get_submodule("blocks.4")
    assert isinstance(head.pool, nn.MaxPool3d) and head.pool.kernel_size == (8, 4, 4)
    final_norms = [m for m in classifier.modules() if getattr(m, "block_final_bn", False)]
    assert len(final_norms) == 3 and all(torch.all(m.weight == 1) for m in final_norms)
    pytorchvideo_init = create_classifier("r3d_tiny", zero_init_residual=True, head_pool="avg")
    assert isinstance(pytorchvideo_init.net.get_submodule("blocks.4").pool, nn.AvgPool3d)
    assert all(torch.all(m.weight == 0) for m in pytorchvideo_init.modules() if getattr(m, "block_final_bn", False))
    with pytest.raises(ValueError, match=r"r3d_tiny: input_crop_size must be a multiple of the total spatial stride 8"):
        create_classifier("r3d_tiny", crop_size=36)


def test_overrides_split_between_spec_and_builder():
    classifier = create_classifier("x3d_tiny", num_classes=3, num_frames=4, crop_size=96, dropout_rate=0.0)
    assert classifier.spec.num_frames == 4 and classifier.spec.crop_size == 96
    assert classifier.spec.short_side == 108  # follows crop_size (72/64 of it)
    assert classifier.arch_overrides == {"dropout_rate": 0.0}
    assert classifier.net.get_submodule("blocks.5").dropout is None


def test_bad_overrides_are_named():
    with pytest.raises(ValueError, match=r"unknown override 'widht_factor'; accepted: .*width_factor"):
        create_classifier("x3d_tiny", widht_factor=0.5)
    with pytest.raises(ValueError, match=r"'input_clip_length' is set from the input spec"):
        create_classifier("x3d_tiny", input_clip_length=4)
    with pytest.raises(ValueError, match=r"'model_num_class' is set from num_classes"):
        create_classifier("x3d_tiny", model_num_class=4)
    with pytest.raises(ValueError, match=r"'head_activation' is set from VideoClassifier"):
        create_classifier("x3d_tiny", head_activation=nn.Softmax)
    with pytest.raises(ValueError, match=r"slow_r50: .*crop_size must be a multiple of 32"):
        create_classifier("slow_r50", crop_size=48)
    with pytest.raises(ValueError, match=r"slowfast_r50: .*num_frames \(10\) must be a multiple of slowfast_alpha"):
        create_classifier("slowfast_r50", num_frames=10)
    with pytest.raises(ValueError, match=r"num_classes must be a positive integer"):
        create_classifier("x3d_tiny", num_classes=0)
