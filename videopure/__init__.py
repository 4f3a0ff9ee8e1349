"""videopure: diffusion purification (DiffPure) for video action recognition and its robustness evaluation.

The public API is re-exported here and imported on first use, so ``import videopure`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "videopure.data": ("ClipRecord", "VideoDecodeError", "load_split", "read_clip", "to_float_clip"),
    "videopure.diffusion": ("create_adm", "create_ncsnpp", "list_presets", "load_preset"),
    "videopure.models": ("VideoClassifier", "create_classifier", "list_classifiers", "load_classifier"),
    "videopure.purify": ("DiffusionPurifier", "PurificationError"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'videopure' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
