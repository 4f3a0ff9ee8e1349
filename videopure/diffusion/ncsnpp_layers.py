"""Building blocks of the Score-SDE NCSN++ / DDPM++ network.

Submodule and parameter names (``GroupNorm_0``, ``Conv_0``, ``Dense_0``, ``NIN_0.W`` ...) follow the
official Score-SDE checkpoints, so their state dicts load unchanged. The FIR resampling functions
implement StyleGAN2's ``upfirdn2d`` family with plain torch ops (valid on any device and dtype).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AttnBlock",
    "Combine",
    "Downsample",
    "FirConv2d",
    "GaussianFourierProjection",
    "NIN",
    "ResnetBlockBigGAN",
    "ResnetBlockDDPM",
    "Upsample",
    "conv1x1",
    "conv3x3",
    "conv_downsample_2d",
    "default_init_",
    "dense",
    "downsample_2d",
    "group_norm",
    "timestep_embedding",
    "upfirdn2d",
    "upsample_2d",
    "upsample_conv_2d",
]

_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------------------------------
# Initialisation and basic layers
# --------------------------------------------------------------------------------------------------
def default_init_(weight: Tensor, scale: float = 1.0) -> Tensor:
    """Fill ``weight`` in place with DDPM's init: variance scaling, fan-average, uniform.

    The fans are read from ``weight.shape[:2]`` (times the receptive field); ``scale == 0`` stands for
    1e-10, so zero-initialised output layers still carry a (tiny) random direction.
    """
    scale = scale if scale != 0 else 1e-10
    receptive = math.prod(weight.shape[2:])
    fan_avg = (weight.shape[0] + weight.shape[1]) * receptive / 2
    bound = math.sqrt(3.0 * scale / fan_avg)
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def _ddpm_conv(in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int, bias: bool,
               init_scale: float) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias)
    default_init_(conv.weight, init_scale)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, padding: int = 1, bias: bool = True,
            init_scale: float = 1.0) -> nn.Conv2d:
    """3x3 convolution with DDPM initialisation."""
    return _ddpm_conv(in_ch, out_ch, 3, stride, padding, bias, init_scale)


def conv1x1(in_ch: int, out_ch: int, bias: bool = True, init_scale: float = 1.0) -> nn.Conv2d:
    """1x1 convolution with DDPM initialisation."""
    return _ddpm_conv(in_ch, out_ch, 1, 1, 0, bias, init_scale)


def dense(in_features: int, out_features: int) -> nn.Linear:
    """Linear layer with DDPM initialisation."""
    linear = nn.Linear(in_features, out_features)
    default_init_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with Score-SDE's group rule ``min(channels // 4, 32)`` and eps 1e-6."""
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


def _merge(a: Tensor, b: Tensor, skip_rescale: bool) -> Tensor:
    """Residual sum, divided by sqrt(2) when ``skip_rescale``."""
    return (a + b) / _SQRT2 if skip_rescale else a + b


class NIN(nn.Module):
    """Per-pixel linear map over channels (a 1x1 convolution stored as ``W[in, out]`` and ``b``)."""

    def __init__(self, in_dim: int, num_units: int, init_scale: float = 0.1) -> None:
        super().__init__()
        self.W = nn.Parameter(default_init_(torch.empty(in_dim, num_units), init_scale))
        self.b = nn.Parameter(torch.zeros(num_units))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (N, in_dim, H, W) → (N, num_units, H, W)."""
        return F.conv2d(x, self.W.t()[:, :, None, None], self.b)


# --------------------------------------------------------------------------------------------------
# Time embeddings
# --------------------------------------------------------------------------------------------------
def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (N,) → (N, dim) in float32: ``[sin(t·f), cos(t·f)]``, f geometric."""
    half = dim // 2
    step = math.log(max_period) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=timesteps.device) * -step)
    args = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of a scalar: (N,) → (N, 2·embedding_size); ``W`` is frozen."""

    def __init__(self, embedding_size: int = 256, scale: float = 1.0) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        proj = x[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


# --------------------------------------------------------------------------------------------------
# FIR resampling (StyleGAN2's upfirdn2d)
# --------------------------------------------------------------------------------------------------
def _fir_kernel(kernel: Sequence[float], gain: float, like: Tensor) -> Tensor:
    """Normalised 2-D FIR kernel (outer product for a 1-D ``kernel``), times ``gain``."""
    k = torch.as_tensor(kernel, dtype=torch.float32, device=like.device)
    if k.dim() == 1:
        k = torch.outer(k, k)
    if k.dim() != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"fir_kernel must be 1-D or square 2-D, got shape {tuple(k.shape)}")
    return (k / k.sum() * gain).to(like.dtype)


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, convolve with a 2-D FIR ``kernel``, then subsample.

    ``x``: (N, C, H, W). Each spatial axis is padded by ``pad = (before, after)`` (negative crops);
    the kernel is applied as a true convolution (flipped), identically to every channel.
    Output side: ``(H·up + before + after − kernel_size) // down + 1``.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    before, after = pad
    x = F.pad(x, (before, after, before, after))
    weight = torch.flip(kernel, dims=(0, 1))[None, None].to(x.dtype)
    out = F.conv2d(x.reshape(n * c, 1, *x.shape[2:]), weight, stride=down)
    return out.reshape(n, c, *out.shape[2:])


def upsample_2d(x: Tensor, kernel: Sequence[float], factor: int = 2) -> Tensor:
    """FIR upsampling (N, C, H, W) → (N, C, H·factor, W·factor); a constant image stays constant."""
    k = _fir_kernel(kernel, factor**2, x)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x: Tensor, kernel: Sequence[float], factor: int = 2) -> Tensor:
    """FIR downsampling (N, C, H, W) → (N, C, H // factor, W // factor)."""
    k = _fir_kernel(kernel, 1.0, x)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, down=factor, pad=((p + 1) // 2, p // 2))


def upsample_conv_2d(x: Tensor, weight: Tensor, kernel: Sequence[float], factor: int = 2) -> Tensor:
    """Fused FIR upsampling and convolution with ``weight`` (out, in, k, k): a strided transposed
    convolution with the spatially flipped weight, then the FIR filter; padded once, so border
    values see the filter tails that an unfused pipeline would cut off."""
    size = weight.shape[-1]
    k = _fir_kernel(kernel, factor**2, x)
    p = (k.shape[0] - factor) - (size - 1)
    x = F.conv_transpose2d(x, torch.flip(weight, dims=(2, 3)).transpose(0, 1), stride=factor)
    return upfirdn2d(x, k, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))


def conv_downsample_2d(x: Tensor, weight: Tensor, kernel: Sequence[float], factor: int = 2) -> Tensor:
    """Fused convolution with ``weight`` (out, in, k, k) and FIR downsampling (padded once)."""
    size = weight.shape[-1]
    k = _fir_kernel(kernel, 1.0, x)
    p = (k.shape[0] - factor) + (size - 1)
    x = upfirdn2d(x, k, pad=((p + 1) // 2, p // 2))
    return F.conv2d(x, weight, stride=factor)


class FirConv2d(nn.Module):
    """Convolution fused with FIR up- or downsampling by 2 (StyleGAN2); keys ``weight`` and ``bias``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, *, up: bool = False, down: bool = False,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if up == down:
            raise ValueError("FirConv2d resamples: exactly one of up and down must be True")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.weight = nn.Parameter(default_init_(torch.empty(out_ch, in_ch, kernel_size, kernel_size)))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.up = up
        self.fir_kernel = tuple(fir_kernel)

    def forward(self, x: Tensor) -> Tensor:
        resample = upsample_conv_2d if self.up else conv_downsample_2d
        return resample(x, self.weight, self.fir_kernel) + self.bias[None, :, None, None]


def _naive_upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def _naive_downsample(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2)


# --------------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------------
class Upsample(nn.Module):
    """2x upsampling: nearest (+3x3 conv) or, with ``fir``, the FIR filter (fused with the conv)."""

    def __init__(self, in_ch: int, out_ch: int | None = None, *, with_conv: bool = False, fir: bool = False,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        if with_conv and fir:
            self.Conv2d_0 = FirConv2d(in_ch, out_ch, 3, up=True, fir_kernel=fir_kernel)
        elif with_conv:
            self.Conv_0 = conv3x3(in_ch, out_ch)
        elif out_ch != in_ch:
            raise ValueError("Upsample without a convolution cannot change the channel count")
        self.with_conv = with_conv
        self.fir = fir
        self.fir_kernel = tuple(fir_kernel)

    def forward(self, x: Tensor) -> Tensor:
        if self.fir:
            return self.Conv2d_0(x) if self.with_conv else upsample_2d(x, self.fir_kernel)
        h = _naive_upsample(x)
        return self.Conv_0(h) if self.with_conv else h


class Downsample(nn.Module):
    """2x downsampling: 'SAME'-padded strided 3x3 conv or average pool; with ``fir``, FIR filtering."""

    def __init__(self, in_ch: int, out_ch: int | None = None, *, with_conv: bool = False, fir: bool = False,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        if with_conv and fir:
            self.Conv2d_0 = FirConv2d(in_ch, out_ch, 3, down=True, fir_kernel=fir_kernel)
        elif with_conv:
            self.Conv_0 = conv3x3(in_ch, out_ch, stride=2, padding=0)
        elif out_ch != in_ch:
            raise ValueError("Downsample without a convolution cannot change the channel count")
        self.with_conv = with_conv
        self.fir = fir
        self.fir_kernel = tuple(fir_kernel)

    def forward(self, x: Tensor) -> Tensor:
        if self.fir:
            return self.Conv2d_0(x) if self.with_conv else downsample_2d(x, self.fir_kernel)
        x = F.pad(x, (0, 1, 0, 1))
        return self.Conv_0(x) if self.with_conv else F.avg_pool2d(x, 2, stride=2)


class Combine(nn.Module):
    """Merges an input-pyramid image ``x`` into features ``y``: 1x1 conv of ``x``, then sum or concat."""

    def __init__(self, dim1: int, dim2: int, method: str = "cat") -> None:
        super().__init__()
        if method not in ("cat", "sum"):
            raise ValueError(f"Combine method must be 'cat' or 'sum', got {method!r}")
        self.Conv = conv1x1(dim1, dim2)
        self.method = method

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.Conv(x)
        return torch.cat([h, y], dim=1) if self.method == "cat" else h + y


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, with a residual connection (DDPM style)."""

    def __init__(self, channels: int, skip_rescale: bool = False, init_scale: float = 0.0) -> None:
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        normed = self.GroupNorm_0(x)
        q, k, v = (nin(normed).flatten(2).transpose(1, 2) for nin in (self.NIN_0, self.NIN_1, self.NIN_2))
        out = F.scaled_dot_product_attention(q, k, v)  # (N, H·W, C), scaled by C^-1/2
        out = self.NIN_3(out.transpose(1, 2).reshape(n, c, h, w))
        return _merge(x, out, self.skip_rescale)


class ResnetBlockDDPM(nn.Module):
    """DDPM residual block: norm-act-conv, + time bias, norm-act-dropout-conv; NIN shortcut."""

    def __init__(self, act: nn.Module, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 dropout: float = 0.1, skip_rescale: bool = False, init_scale: float = 0.0) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        self.project_skip = in_ch != out_ch
        if self.project_skip:
            self.NIN_0 = NIN(in_ch, out_ch)
        self.act = act
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self.Conv_0(self.act(self.GroupNorm_0(x)))
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if self.project_skip:
            x = self.NIN_0(x)
        return _merge(x, h, self.skip_rescale)


class ResnetBlockBigGAN(nn.Module):
    """BigGAN residual block, optionally resampling (nearest/average or FIR) inside the block."""

    def __init__(self, act: nn.Module, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 up: bool = False, down: bool = False, dropout: float = 0.1, fir: bool = False,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1), skip_rescale: bool = True,
                 init_scale: float = 0.0) -> None:
        super().__init__()
        if up and down:
            raise ValueError("a residual block cannot both upsample and downsample")
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        self.project_skip = in_ch != out_ch or up or down
        if self.project_skip:
            self.Conv_2 = conv1x1(in_ch, out_ch)
        self.act = act
        self.up = up
        self.down = down
        self.fir = fir
        self.fir_kernel = tuple(fir_kernel)
        self.skip_rescale = skip_rescale

    def _resample(self, x: Tensor) -> Tensor:
        if self.up:
            return upsample_2d(x, self.fir_kernel) if self.fir else _naive_upsample(x)
        if self.down:
            return downsample_2d(x, self.fir_kernel) if self.fir else _naive_downsample(x)
        return x

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self._resample(self.act(self.GroupNorm_0(x)))
        x = self._resample(x)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if self.project_skip:
            x = self.Conv_2(x)
        return _merge(x, h, self.skip_rescale)
