"""Loading the official diffusion checkpoint layouts into videopure's networks (read safely, loaded strictly)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from videopure.checkpoints import CheckpointError, load_strict, read_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["CheckpointError", "load_weights", "strip_prefix"]


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Drop a DataParallel-style prefix when every key carries it."""
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items()}
    return dict(state_dict)



def load_weights(net: nn.Module, path: str | Path, what: str) -> None:
    """Load an official checkpoint file into ``net``, strictly; ``what`` names the expected network in errors.

    Two layouts are recognised: a plain state dict (guided-diffusion's ``256x256_diffusion_uncond.pt``; keys may
    carry ``module.``) and a Score-SDE training checkpoint (``checkpoint_8.pth``: ``model``, ``ema``,
    ``optimizer``, ``step``). For the latter the ``model`` entry is loaded strictly, then the EMA
    ``shadow_params`` are copied onto the parameters in registration order: the EMA weights are the ones
    DiffPure uses.
    """
    state = read_checkpoint(path)
    what = f"{path} ({what})"
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        load_strict(net, strip_prefix(state["model"]), what, assign=True)
        _copy_ema(net, state.get("ema"), what)
    elif isinstance(state, Mapping) and state and all(isinstance(v, Tensor) for v in state.values()):
        load_strict(net, strip_prefix(state), what, assign=True)
    else:
        raise CheckpointError(f"{what}: expected a state dict (name → tensor) or a Score-SDE checkpoint with a 'model' entry")


def _copy_ema(net: nn.Module, ema: Any, what: str) -> None:
    if ema is None:
        logger.warning("%s has no 'ema' entry: using the raw (non-EMA) model weights", what)
        return
    shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else None
    params = list(net.parameters())
    if not isinstance(shadow, (list, tuple)) or len(shadow) != len(params):
        count = len(shadow) if isinstance(shadow, (list, tuple)) else "no"
        raise CheckpointError(f"{what}: 'ema' has {count} shadow_params; the network has {len(params)} parameters")
    names = [name for name, _ in net.named_parameters()]
    with torch.no_grad():
        for name, param, value in zip(names, params, shadow):
            if tuple(value.shape) != tuple(param.shape):
                raise CheckpointError(
                    f"{what}: EMA shadow param for '{name}' has shape {tuple(value.shape)}, expected {tuple(param.shape)}"
                )
            param.copy_(value)
