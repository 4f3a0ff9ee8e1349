"""Classifier weights from local files: pytorchvideo model-zoo ``.pyth`` files and videopure's own checkpoints.

Every file is read with ``torch.load(..., weights_only=True)``, so a pickle that would run code is refused.
A key mismatch is a :class:`CheckpointError` naming the missing, unexpected and mis-shaped keys and the model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from videopure.checkpoints import CheckpointError, load_strict, read_checkpoint
from videopure.models.classifier import VideoClassifier
from videopure.models.registry import build_classifier, get_classifier_entry
from videopure.models.spec import InputSpec

logger = logging.getLogger(__name__)

FORMAT = "videopure.classifier"
FORMAT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ClassifierCheckpoint:
    """The contents of a videopure classifier checkpoint."""

    model_name: str
    num_classes: int
    input_spec: InputSpec
    state_dict: dict[str, Tensor] = field(repr=False)
    class_names: tuple[str, ...] | None = None
    arch_overrides: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    split: str | int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_zoo_weights(classifier: VideoClassifier, path: str | Path) -> None:
    """Load a pytorchvideo model-zoo ``.pyth`` file (``{'model_state': state_dict, ...}``) into ``classifier``.

    When the file's head has another class count (Kinetics-400 weights into a 101-class model), the head
    projection is dropped and the classifier's freshly initialised head is kept.
    """
    what = f"{path} (model '{classifier.name}')"
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model_state"), Mapping):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointError(f"{what}: not a model-zoo checkpoint: expected a dict with 'model_state', found {found}")
    state = dict(checkpoint["model_state"])
    head_keys = frozenset(f"{classifier.head_name}.{p}" for p in ("weight", "bias"))
    file_head = state.get(f"{classifier.head_name}.weight")
    dropped: frozenset[str] = frozenset()
    if isinstance(file_head, Tensor) and file_head.shape[0] != classifier.num_classes:
        dropped = head_keys
        for key in head_keys:
            state.pop(key, None)
        logger.info(
            "%s: dropped the %d-class head (%s); the %d-class head keeps its fresh initialisation",
            what, file_head.shape[0], classifier.head_name, classifier.num_classes,
        )
    load_strict(classifier.net, state, what, allow_missing=dropped)
    logger.info("loaded model-zoo weights %s", what)


def save_classifier(
    classifier: VideoClassifier,
    path: str | Path,
    *,
    dataset: str | None = None,
    split: str | int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``classifier`` with what rebuilds it (name, classes, input spec, overrides) and where it was trained.

    ``extra`` holds plain metadata (epoch, accuracy, ...). The file is written atomically and loads with
    ``weights_only=True``.
    """
    path = Path(path)
    record = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model_name": classifier.name,
        "num_classes": classifier.num_classes,
        "class_names": list(classifier.class_names) if classifier.class_names is not None else None,
        "input_spec": classifier.spec.to_dict(),
        "arch_overrides": dict(classifier.arch_overrides),
        "dataset": dataset,
        "split": split,
        "extra": dict(extra or {}),
    }
    for key, value in record.items():
        _check_plain(value, key)
    record["state_dict"] = {k: v.detach().cpu() for k, v in classifier.net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(record, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_classifier_checkpoint(path: str | Path) -> ClassifierCheckpoint:
    """Read a file written by :func:`save_classifier` (weights not yet in a model)."""
    record = read_checkpoint(path)
    if not isinstance(record, Mapping) or record.get("format") != FORMAT:
        is_zoo_file = isinstance(record, Mapping) and "model_state" in record
        hint = " (a model-zoo file: use load_zoo_weights)" if is_zoo_file else ""
        raise CheckpointError(f"{path}: not a videopure classifier checkpoint{hint}")
    if record.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {record.get('version')!r}, expected {FORMAT_VERSION}")
    try:
        names = record["class_names"]
        return ClassifierCheckpoint(
            model_name=record["model_name"],
            num_classes=record["num_classes"],
            input_spec=InputSpec.from_dict(record["input_spec"]),
            state_dict=dict(record["state_dict"]),
            class_names=tuple(names) if names is not None else None,
            arch_overrides=dict(record["arch_overrides"]),
            dataset=record["dataset"],
            split=record["split"],
            extra=dict(record["extra"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed classifier checkpoint: {exc!r}") from exc


def load_classifier(path: str | Path) -> VideoClassifier:
    """Rebuild the classifier recorded in ``path`` (by its registry name) and load its weights, on the CPU."""
    ckpt = read_classifier_checkpoint(path)
    classifier = build_classifier(
        get_classifier_entry(ckpt.model_name), ckpt.input_spec, ckpt.num_classes, ckpt.arch_overrides
    )
    load_strict(classifier.net, ckpt.state_dict, f"{path} (model '{ckpt.model_name}')")
    classifier.class_names = ckpt.class_names
    return classifier


def _check_plain(value: Any, where: str) -> None:
    """Only values ``weights_only=True`` loads: plain scalars, and lists/tuples/str-keyed dicts of them."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"checkpoint field '{where}': keys must be strings, got {key!r}")
            _check_plain(item, f"{where}.{key}")
        return
    raise ValueError(
        f"checkpoint field '{where}' holds a {type(value).__name__}; only plain values (str, int, float, bool, "
        "None, lists, tuples, dicts) can be saved"
    )
