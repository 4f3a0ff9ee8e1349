"""Per-clip attack losses on logits (B, K) and labels (B,) → (B,); attacks maximise them.

DLR (difference of logits ratio, Croce & Hein 2020) is invariant to shifting and scaling the logits, so it does
not saturate like the cross-entropy; it needs at least 3 classes (4 for the targeted version).
"""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]
_TINY = 1e-12


def ce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy per clip."""
    return F.cross_entropy(logits, labels, reduction="none")


def dlr_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3), π sorting the logits in decreasing order."""
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None])[:, 0]
    top_is_true = logits.argmax(dim=1) == labels
    best_other = ordered[:, 1].where(top_is_true, ordered[:, 0])
    return -(true - best_other) / (ordered[:, 0] - ordered[:, 2] + _TINY)


def dlr_targeted_loss(targets: Tensor) -> LossFn:
    """−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) towards target classes ``targets`` (B,)."""

    def loss(logits: Tensor, labels: Tensor) -> Tensor:
        ordered = logits.sort(dim=1, descending=True).values
        true = logits.gather(1, labels[:, None])[:, 0]
        target = logits.gather(1, targets[:, None])[:, 0]
        return -(true - target) / (ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + _TINY)

    return loss


LOSSES: dict[str, LossFn] = {"ce": ce_loss, "dlr": dlr_loss}
MIN_CLASSES: dict[str, int] = {"ce": 2, "dlr": 3, "dlr-targeted": 4}


def check_num_classes(loss: str, num_classes: int) -> None:
    """DLR needs the third (targeted: fourth) largest logit."""
    if num_classes < MIN_CLASSES[loss]:
        raise ValueError(f"the {loss} loss needs at least {MIN_CLASSES[loss]} classes; the model has {num_classes}")


def get_loss(name: str) -> LossFn:
    """The untargeted loss called ``name`` (``"ce"`` or ``"dlr"``)."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return LOSSES[name]
