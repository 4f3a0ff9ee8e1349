"""The VP-SDE noise schedule DiffPure uses (linear beta from 0.1 to 20 over diffusion time in [0, 1])."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class VPSchedule:
    """beta(t) = beta_min + t (beta_max - beta_min) for t in [0, 1]; ``num_steps`` discrete steps of the same line.

    The discrete schedule is guided-diffusion's: ``betas = linspace(beta_min, beta_max, N) / N``.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    num_steps: int = 1000

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def alpha_bar(self, t: Tensor) -> Tensor:
        """Continuous signal fraction exp(-1/2 t^2 (beta_max - beta_min) - beta_min t)."""
        return torch.exp(-0.5 * (self.beta_max - self.beta_min) * t**2 - self.beta_min * t)

    def std(self, t: Tensor) -> Tensor:
        """Marginal standard deviation sqrt(1 - alpha_bar(t)) of x(t) given x(0)."""
        return torch.sqrt(1.0 - self.alpha_bar(t))

    def discrete_alpha_bar(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """Discrete cumulative product of (1 - beta_i), i = 1..N, as guided-diffusion computes it."""
        n = self.num_steps
        betas = torch.linspace(self.beta_min / n, self.beta_max / n, n, dtype=torch.float64).to(dtype)
        return torch.cumprod(1.0 - betas, dim=0)
