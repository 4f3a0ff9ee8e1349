"""Weights from local files: model-zoo ``.pyth`` layout and videopure's own checkpoints."""

from __future__ import annotations

import logging
from collections import OrderedDict

import pytest
import torch
from torch import nn

from videopure.models import (
    CheckpointError,
    create_classifier,
    load_classifier,
    load_zoo_weights,
    read_classifier_checkpoint,
    save_classifier,
)

SMALL = {"num_frames": 4, "crop_size": 32}


def same_state(a: nn.Module, b: nn.Module, skip: tuple[str, ...] = ()) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith(skip))


def write_zoo_file(path, name: str, **overrides) -> nn.Module:
    """A file in the model zoo's layout: ``{'model_state': <pytorchvideo state dict>, ...}``."""
    torch.manual_seed(1)
    net = create_classifier(name, num_classes=400, **overrides).net
    torch.save({"epoch": 196, "model_state": OrderedDict(net.state_dict())}, path)
    return net


@pytest.mark.parametrize("name", ["x3d_xs", "slow_r50"])
def test_zoo_file_loads_exactly_with_400_classes(tmp_path, name):
    zoo_net = write_zoo_file(tmp_path / "zoo.pyth", name, **SMALL)
    torch.manual_seed(2)
    classifier = create_classifier(name, **SMALL)
    load_zoo_weights(classifier, tmp_path / "zoo.pyth")
    assert same_state(classifier.net, zoo_net)


def test_zoo_file_into_101_classes_replaces_the_head(tmp_path, caplog):
    zoo_net = write_zoo_file(tmp_path / "X3D_XS.pyth", "x3d_xs", **SMALL)
    torch.manual_seed(2)
    classifier = create_classifier("x3d_xs", num_classes=101, **SMALL)
    fresh_head = classifier.net.blocks[5].proj.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="videopure.models.checkpoint"):
        load_zoo_weights(classifier, tmp_path / "X3D_XS.pyth")
    assert "dropped the 400-class head (blocks.5.proj)" in caplog.text
    assert torch.equal(classifier.net.blocks[5].proj.weight, fresh_head)
    assert classifier.net.blocks[5].proj.out_features == 101
    zoo_state = zoo_net.state_dict()
    for key, value in classifier.net.state_dict().items():
        if not key.startswith("blocks.5.proj"):
            assert torch.equal(value, zoo_state[key]), key
    with torch.no_grad():
        assert classifier.eval()(torch.rand(1, 3, 4, 32, 32)).shape == (1, 101)


def test_zoo_file_of_another_model_names_the_keys(tmp_path):
    write_zoo_file(tmp_path / "zoo.pyth", "x3d_tiny")
    classifier = create_classifier("x3d_xs", **SMALL)
    message = r"model 'x3d_xs'\) does not match the network: missing keys: .*wrong shape keys: blocks"
    with pytest.raises(CheckpointError, match=message):
        load_zoo_weights(classifier, tmp_path / "zoo.pyth")


def test_zoo_file_with_unexpected_keys(tmp_path):
    net = create_classifier("x3d_tiny").net
    state = dict(net.state_dict(), **{"blocks.9.extra": torch.zeros(1)})
    torch.save({"model_state": state}, tmp_path / "zoo.pyth")
    with pytest.raises(CheckpointError, match=r"unexpected keys: blocks\.9\.extra"):
        load_zoo_weights(create_classifier("x3d_tiny"), tmp_path / "zoo.pyth")


def test_bad_files_are_refused(tmp_path):
    classifier = create_classifier("x3d_tiny")
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_zoo_weights(classifier, tmp_path / "missing.pyth")
    torch.save(classifier.net.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match=r"not a model-zoo checkpoint: expected a dict with 'model_state'"):
        load_zoo_weights(classifier, tmp_path / "bare.pth")
    torch.save({"model_state": classifier.net.state_dict(), "cfg": nn.Identity()}, tmp_path / "unsafe.pyth")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_zoo_weights(classifier, tmp_path / "unsafe.pyth")
    (tmp_path / "junk.pyth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_zoo_weights(classifier, tmp_path / "junk.pyth")


def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    classifier = create_classifier("x3d_tiny", num_classes=3, crop_size=48, dropout_rate=0.2)
    classifier.class_names = ["ApplyEyeMakeup", "Archery", "Biking"]
    path = save_classifier(
        classifier, tmp_path / "ckpt" / "best.pt", dataset="ucf101", split=1, extra={"epoch": 4, "val_top1": 0.5}
    )
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]

    record = read_classifier_checkpoint(path)
    assert (record.model_name, record.num_classes, record.dataset, record.split) == ("x3d_tiny", 3, "ucf101", 1)
    assert record.class_names == ("ApplyEyeMakeup", "Archery", "Biking")
    assert record.input_spec == classifier.spec and record.input_spec.crop_size == 48
    assert record.arch_overrides == {"dropout_rate": 0.2} and record.extra == {"epoch": 4, "val_top1": 0.5}

    restored = load_classifier(path)
    assert restored.name == "x3d_tiny" and restored.spec == classifier.spec
    assert restored.class_names == classifier.class_names and restored.arch_overrides == {"dropout_rate": 0.2}
    assert same_state(restored.net, classifier.net)
    clips = torch.rand(2, 3, 8, 48, 48)
    with torch.no_grad():
        assert torch.equal(restored.eval()(clips), classifier.eval()(clips))


def test_own_checkpoint_saves_only_plain_values(tmp_path):
    classifier = create_classifier("x3d_tiny", norm=nn.BatchNorm3d)
    with pytest.raises(ValueError, match=r"checkpoint field 'arch_overrides.norm' holds a type"):
        save_classifier(classifier, tmp_path / "a.pt")
    with pytest.raises(ValueError, match=r"checkpoint field 'extra.when' holds a"):
        save_classifier(create_classifier("x3d_tiny"), tmp_path / "a.pt", extra={"when": object()})
    assert not list(tmp_path.iterdir())


def test_own_checkpoint_errors(tmp_path):
    torch.save({"model_state": {}}, tmp_path / "zoo.pyth")
    with pytest.raises(CheckpointError, match=r"not a videopure classifier checkpoint \(a model-zoo file"):
        load_classifier(tmp_path / "zoo.pyth")
    path = save_classifier(create_classifier("x3d_tiny", num_classes=3), tmp_path / "c.pt")
    record = torch.load(path, weights_only=True)
    record["state_dict"]["blocks.5.proj.weight"] = torch.zeros(4, 256)
    torch.save(record, path)
    message = r"'x3d_tiny'\) does not match the network: wrong shape keys: blocks\.5\.proj\.weight \(file \(4, 256\), network"
    with pytest.raises(CheckpointError, match=message):
        load_classifier(path)
    record["model_name"] = "x3d_gone"
    torch.save(record, path)
    with pytest.raises(ValueError, match="unknown classifier 'x3d_gone'"):
        load_classifier(path)
