"""Classifiers by name: ``create_classifier('x3d_m', num_classes=101)``, ``list_classifiers('x3d*')``."""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any

from torch import nn

from videopure.models.classifier import VideoClassifier
from videopure.models.spec import ClassifierEntry, InputSpec, spec_fields
from videopure.models.zoo import ZOO_ENTRIES

_REGISTRY: dict[str, ClassifierEntry] = {}


def register_classifier(entry: ClassifierEntry) -> ClassifierEntry:
    """Add ``entry`` to the registry; a name may be registered once."""
    if entry.name in _REGISTRY:
        raise ValueError(f"classifier '{entry.name}' is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def list_classifiers(pattern: str = "*") -> list[str]:
    """Sorted registered names matching the shell-style ``pattern``."""
    return sorted(fnmatch.filter(_REGISTRY, pattern))


def get_classifier_entry(name: str) -> ClassifierEntry:
    """The registry entry ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown classifier '{name}'; known: {', '.join(list_classifiers())}") from None


def create_classifier(name: str, num_classes: int = 400, **overrides: Any) -> VideoClassifier:
    """Build the registered classifier ``name`` with a ``num_classes``-way head (random weights).

    ``overrides`` are :class:`InputSpec` fields (``num_frames``, ``crop_size``, ...; the net is built for the
    new size) or arguments of the entry's pytorchvideo builder (``dropout_rate``, ``width_factor``, ...).
    Load weights afterwards with :func:`~videopure.models.load_zoo_weights`.
    """
    entry = get_classifier_entry(name)
    spec_changes = {k: v for k, v in overrides.items() if k in spec_fields()}
    arch_overrides = {k: v for k, v in overrides.items() if k not in spec_fields()}
    try:
        spec = entry.input_spec.replace(**spec_changes)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    return build_classifier(entry, spec, num_classes, arch_overrides)


def build_classifier(
    entry: ClassifierEntry, spec: InputSpec, num_classes: int, arch_overrides: dict[str, Any]
) -> VideoClassifier:
    """The classifier of ``entry`` built for ``spec``; ``arch_overrides`` go to the pytorchvideo builder."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{entry.name}: num_classes must be a positive integer, got {num_classes!r}")
    try:
        size_kwargs = entry.size_kwargs(spec)
    except ValueError as exc:
        raise ValueError(f"{entry.name}: input spec {spec} does not fit: {exc}") from exc
    _check_arch_overrides(entry, arch_overrides, set(size_kwargs))
    kwargs = {
        **entry.arch_kwargs,
        **arch_overrides,
        **size_kwargs,
        entry.num_classes_kwarg: num_classes,
        "head_activation": None,
    }
    try:
        net = entry.builder(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{entry.name}: {exc}") from exc
    _check_head(entry, net, num_classes)
    return VideoClassifier(
        net, spec, name=entry.name, num_classes=num_classes, head_name=entry.head_name, arch_overrides=arch_overrides
    )


def _check_arch_overrides(entry: ClassifierEntry, overrides: dict[str, Any], size_keys: set[str]) -> None:
    accepted = set(inspect.signature(entry.builder).parameters)
    derived = {
        **{key: "the input spec (num_frames, crop_size, ...)" for key in size_keys},
        entry.num_classes_kwarg: "num_classes",
        "head_activation": "VideoClassifier (it always returns logits)",
    }
    for key in overrides:
        if key in derived:
            raise ValueError(f"{entry.name}: '{key}' is set from {derived[key]}; do not pass it")
        if key not in accepted:
            options = sorted(spec_fields()) + sorted(accepted - set(derived))
            raise ValueError(f"{entry.name}: unknown override '{key}'; accepted: {', '.join(options)}")


def _check_head(entry: ClassifierEntry, net: nn.Module, num_classes: int) -> None:
    proj = net.get_submodule(entry.head_name)
    assert isinstance(proj, nn.Linear) and proj.out_features == num_classes, f"{entry.name}: bad head {proj}"
    owner = net.get_submodule(entry.head_name.rpartition(".")[0])
    assert getattr(owner, "activation", None) is None, f"{entry.name}: head still has an activation"


for _entry in ZOO_ENTRIES:
    register_classifier(_entry)
