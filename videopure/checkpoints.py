"""Safe checkpoint reading and strict state-dict loading, shared by the diffusion and classifier loaders.

Files are read with ``torch.load(..., weights_only=True)``: a pickle that would run code is refused. Key
mismatches are errors that name the missing, unexpected and mis-shaped entries.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

MAX_KEYS_SHOWN = 8


class CheckpointError(ValueError):
    """A checkpoint file is missing, unsafe, malformed, or does not fit the network it is loaded into."""


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` of ``path`` onto the CPU with ``weights_only=True``, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: it holds pickled objects that could run code (only tensors and plain "
            f"containers are accepted). Detail: {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {exc}") from exc


def shorten(keys: list[str]) -> str:
    """The first few keys, and how many there are in all."""
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > MAX_KEYS_SHOWN else "")


def load_strict(
    net: nn.Module,
    state_dict: Mapping[str, Tensor],
    what: str,
    allow_missing: frozenset[str] = frozenset(),
    assign: bool = False,
) -> None:
    """Load ``state_dict`` into ``net``; any key mismatch (beyond ``allow_missing``) is a :class:`CheckpointError`.

    ``assign=True`` lets a network built on the meta device take the file's tensors without a random init.
    """
    expected = net.state_dict()
    not_tensors = [k for k, v in state_dict.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(f"{what}: entries that are not tensors: {shorten(not_tensors)}")
    problems = {
        "missing": [k for k in expected if k not in state_dict and k not in allow_missing],
        "unexpected": [k for k in state_dict if k not in expected],
        "wrong shape": [
            f"{k} (file {tuple(state_dict[k].shape)}, network {tuple(v.shape)})"
            for k, v in expected.items()
            if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
        ],
    }
    if any(problems.values()):
        parts = [f"{label} keys: {shorten(keys)}" for label, keys in problems.items() if keys]
        raise CheckpointError(f"{what} does not match the network: " + "; ".join(parts))
    net.load_state_dict(state_dict, strict=not allow_missing, assign=assign)
    still_meta = [name for name, t in (*net.named_parameters(), *net.named_buffers()) if t.is_meta]
    if still_meta:
        raise CheckpointError(f"{what}: no values for {shorten(still_meta)}")
