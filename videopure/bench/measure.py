"""Wall time and peak memory of a piece of work, on CPU or CUDA."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import torch

T = TypeVar("T")

_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_memory_mb: float | None  # CUDA: peak allocated; CPU (Linux): peak resident set size of the process


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif _PROC_CLEAR_REFS.exists():
        try:
            _PROC_CLEAR_REFS.write_text("5")  # resets VmHWM, the peak resident set size
        except OSError:
            pass


def _peak_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if _PROC_STATUS.exists():
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def measure(work: Callable[[], T], device: torch.device) -> tuple[T, Measurement]:
    """Run ``work`` once; its result, wall time (device synchronised) and peak memory."""
    synchronize(device)
    _reset_peak(device)
    start = time.perf_counter()
    result = work()
    synchronize(device)
    return result, Measurement(time.perf_counter() - start, _peak_mb(device))


def forward_flops(net: torch.nn.Module, *inputs) -> int:
    """FLOPs of one forward pass (matmuls and convolutions), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(*inputs)
    return int(counter.get_total_flops())
