"""VideoClassifier: input checks, the differentiable input pipeline, SlowFast packing, logits."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from videopure.models import InputSpec, VideoClassifier, create_classifier
from videopure.models.classifier import center_crop, pack_slowfast, resize_short_side, temporal_subsample


class Recorder(nn.Module):
    """Stands in for a network: records what it is given, returns zeros of shape (B, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Tensor | list[Tensor] | None = None

    def forward(self, x: Tensor | list[Tensor]) -> Tensor:
        self.seen = x
        batch = (x[0] if isinstance(x, list) else x).shape[0]
        return torch.zeros(batch, 4)


def recorder_classifier(**spec_changes) -> VideoClassifier:
    spec = InputSpec(num_frames=4, sampling_rate=8, crop_size=32, short_side=40).replace(**spec_changes)
    return VideoClassifier(Recorder(), spec, name="recorder", num_classes=4, head_name="proj")


def test_temporal_subsample_is_uniform():
    clips = torch.arange(16.0).view(1, 1, 16, 1, 1)
    assert temporal_subsample(clips, 4).flatten().tolist() == [0, 5, 10, 15]
    assert temporal_subsample(clips, 16) is clips
    assert temporal_subsample(clips[:, :, :2], 4).flatten().tolist() == [0, 0, 0, 1]


def test_resize_short_side_and_center_crop():
    clips = torch.rand(2, 3, 4, 60, 80)
    resized = resize_short_side(clips, 30)
    assert resized.shape == (2, 3, 4, 30, 40)
    assert resize_short_side(torch.rand(1, 3, 2, 90, 45), 30).shape == (1, 3, 2, 60, 30)
    assert resize_short_side(clips, 60) is clips
    grid = torch.arange(36.0).view(1, 1, 1, 6, 6)
    assert center_crop(grid, 2).flatten().tolist() == [14, 15, 20, 21]
    with pytest.raises(ValueError, match="cannot center-crop 8x8 from frames of 6x6"):
        center_crop(grid, 8)


def test_pack_slowfast_uses_uniform_slow_frames_and_a_fresh_list():
    clips = torch.arange(32.0).view(1, 1, 32, 1, 1)
    first = pack_slowfast(clips, 4)
    slow, fast = first
    assert slow.flatten().tolist() == [0, 4, 8, 13, 17, 22, 26, 31]  # PySlowFast's linspace packing
    assert fast is clips
    assert pack_slowfast(clips, 4) is not first


def test_preprocess_brings_any_clip_to_the_spec_and_normalises():
    classifier = recorder_classifier()
    clips = torch.full((2, 3, 10, 48, 64), 0.45)
    classifier(clips)
    assert classifier.net.seen.shape == (2, 3, 4, 32, 32)
    assert torch.allclose(classifier.net.seen, torch.zeros(()), atol=1e-6)  # (0.45 - mean) / std
    classifier(torch.ones(1, 3, 4, 32, 32))
    assert torch.allclose(classifier.net.seen, torch.full((), 0.55 / 0.225))


def test_preprocess_packs_slowfast_pathways():
    classifier = recorder_classifier(num_frames=8, slowfast_alpha=4)
    classifier(torch.rand(1, 3, 8, 32, 32))
    slow, fast = classifier.net.seen
    assert slow.shape == (1, 3, 2, 32, 32) and fast.shape == (1, 3, 8, 32, 32)


@pytest.mark.parametrize(
    ("clips", "message"),
    [
        (torch.rand(3, 8, 32, 32), r"expected clips of shape \(B, 3, T, H, W\), float in \[0, 1\], got shape \(3, 8"),
        (torch.rand(1, 1, 8, 32, 32), r"got shape \(1, 1, 8, 32, 32\)"),
        (torch.randint(0, 255, (1, 3, 8, 32, 32), dtype=torch.uint8), r"got dtype torch.uint8 \(divide uint8 by 255\)"),
        (torch.rand(1, 3, 8, 32, 32) * 255, r"got values in \[.*, .*\]"),
        (torch.rand(1, 3, 8, 32, 32) - 0.5, r"got values in \[-"),
        (torch.full((1, 3, 8, 32, 32), float("nan")), r"got values in \[nan, nan\]"),
        (torch.rand(0, 3, 8, 32, 32), r"got an empty tensor"),
        (torch.rand(1, 3, 8, 32, 32).numpy(), r"expected a tensor of clips .* got ndarray"),
    ],
)
def test_bad_inputs_are_rejected_with_the_expected_shape_and_range(clips, message):
    with pytest.raises(ValueError, match=message):
        recorder_classifier()(clips)


def test_range_check_can_be_turned_off():
    classifier = recorder_classifier()
    classifier.check_range = False
    classifier(torch.rand(1, 3, 4, 32, 32) * 1.1 - 0.05)


def test_class_names_must_match_the_head():
    classifier = recorder_classifier()
    classifier.class_names = ["a", "b", "c", "d"]
    assert classifier.class_names == ("a", "b", "c", "d")
    with pytest.raises(ValueError, match="3 class names given for a 4-class classifier"):
        classifier.class_names = ["a", "b", "c"]


def test_spec_validation():
    with pytest.raises(ValueError, match=r"short_side \(20\) must be >= crop_size \(32\)"):
        InputSpec(num_frames=4, sampling_rate=1, crop_size=32, short_side=20)
    with pytest.raises(ValueError, match="num_frames must be a positive integer"):
        InputSpec(num_frames=0, sampling_rate=1, crop_size=32, short_side=32)
    with pytest.raises(ValueError, match=r"unknown InputSpec field\(s\) \['frames'\]"):
        InputSpec(num_frames=4, sampling_rate=1, crop_size=32, short_side=32).replace(frames=3)
    spec = InputSpec(num_frames=4, sampling_rate=1, crop_size=32, short_side=36, mean=[0.5, 0.5, 0.5])
    assert spec.mean == (0.5, 0.5, 0.5) and InputSpec.from_dict(spec.to_dict()) == spec


def test_slowfast_twice_on_the_same_input_gives_the_same_logits():
    """pytorchvideo's SlowFast overwrites its input list; the classifier packs a new one every call."""
    classifier = create_classifier("slowfast_r50", num_classes=5, num_frames=8, crop_size=32).eval()
    clips = torch.rand(1, 3, 8, 32, 32)
    original = clips.clone()
    with torch.no_grad():
        first, second = classifier(clips), classifier(clips)
    assert torch.equal(first, second)
    assert torch.equal(clips, original)


def test_x3d_returns_logits_in_train_and_eval_mode():
    """pytorchvideo's X3D head ends in Softmax by default; ours has none."""
    torch.manual_seed(0)
    classifier = create_classifier("x3d_tiny", num_classes=10)
    assert classifier.net.blocks[-1].activation is None
    clips = torch.rand(2, 3, 8, 64, 64)
    for mode in (True, False):
        classifier.train(mode)
        logits = classifier(clips)
        assert not torch.allclose(logits.sum(dim=1), torch.ones(2), atol=1e-3)
        assert (logits < 0).any()
