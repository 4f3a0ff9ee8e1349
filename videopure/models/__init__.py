"""Action classifiers from pytorchvideo: clips in ``[0, 1]`` → logits, built by name, weights from local files."""

from videopure.models.checkpoint import (
    CheckpointError,
    ClassifierCheckpoint,
    load_classifier,
    load_zoo_weights,
    read_classifier_checkpoint,
    save_classifier,
)
from videopure.models.classifier import VideoClassifier
from videopure.models.registry import (
    create_classifier,
    get_classifier_entry,
    list_classifiers,
    register_classifier,
)
from videopure.models.spec import ClassifierEntry, InputSpec

__all__ = [
    "CheckpointError",
    "ClassifierCheckpoint",
    "ClassifierEntry",
    "InputSpec",
    "VideoClassifier",
    "create_classifier",
    "get_classifier_entry",
    "list_classifiers",
    "load_classifier",
    "load_zoo_weights",
    "read_classifier_checkpoint",
    "register_classifier",
    "save_classifier",
]
