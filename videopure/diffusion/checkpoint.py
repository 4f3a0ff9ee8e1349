"""Safe loading of official diffusion checkpoints into videopure's networks.

Files are read with ``torch.load(..., weights_only=True)``: a pickle that would run code is refused. Key
mismatches are errors that name the missing, unexpected and mis-shaped entries and the preset expected.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

MAX_KEYS_SHOWN = 8


class CheckpointError(ValueError):
    """A checkpoint file is missing, unsafe, or does not fit the network it is loaded into."""


def read_checkpoint(path: str | Path) -> Any:
    """Load a checkpoint file with ``weights_only=True`` onto the CPU, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file holds pickled objects that could run code "
            f"(only tensors and plain containers are accepted). Detail: {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {exc}") from exc


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Drop a DataParallel-style prefix when every key carries it."""
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def load_strict(net: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> None:
    """``load_state_dict(strict=True, assign=True)`` with an error naming missing, unexpected and mis-shaped keys.

    ``assign`` lets a network built on the meta device take the file's tensors without a random initialisation.
    """
    expected = net.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k} (file {tuple(state_dict[k].shape)}, network {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
            if keys:
                shown = ", ".join(keys[:MAX_KEYS_SHOWN]) + (f", ... ({len(keys)} in all)" if len(keys) > MAX_KEYS_SHOWN else "")
                parts.append(f"{label} keys: {shown}")
        raise CheckpointError(f"{what} does not match the network: " + "; ".join(parts))
    net.load_state_dict(state_dict, strict=True, assign=True)
    still_meta = [name for name, t in (*net.named_parameters(), *net.named_buffers()) if t.is_meta]
    if still_meta:
        raise CheckpointError(f"{what}: no values for {', '.join(still_meta[:MAX_KEYS_SHOWN])}")


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
        load_strict(net, strip_prefix(state["model"]), what)
        _copy_ema(net, state.get("ema"), what)
    elif isinstance(state, Mapping) and state and all(isinstance(v, Tensor) for v in state.values()):
        load_strict(net, strip_prefix(state), what)
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
