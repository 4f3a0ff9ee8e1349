"""The ADM UNet of guided-diffusion (Dhariwal & Nichol, 2021), weight-compatible with OpenAI's checkpoints.

Module names, parameter shapes and registration order follow guided-diffusion's ``UNetModel``, so the
official checkpoints (e.g. ``256x256_diffusion_uncond.pt``, the one DiffPure uses on ImageNet) load with
``load_state_dict(..., strict=True)`` and give the same outputs. :func:`create_adm` takes the keyword
arguments of guided-diffusion's ``script_util.create_model`` with the same defaults.

Differences from the reference that change no numbers beyond float rounding:

- attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`;
- ``use_checkpoint`` uses :func:`torch.utils.checkpoint.checkpoint` (non-reentrant), so gradients with
  respect to the input work with frozen parameters; attention is checkpointed only when asked;
- ``use_fp16=True`` converts the torso at construction (the reference needs a separate
  ``convert_to_fp16()`` call), and the torso runs in whatever dtype its weights have;
- the model works under :func:`torch.autocast`, with group norms still computed in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "DEFAULT_CHANNEL_MULT",
    "NUM_CLASSES",
    "AttentionBlock",
    "Downsample",
    "GroupNorm32",
    "QKVAttention",
    "QKVAttentionLegacy",
    "ResBlock",
    "TimestepEmbedSequential",
    "UNetModel",
    "Upsample",
    "create_adm",
    "timestep_embedding",
]

NUM_CLASSES = 1000
"""Number of labels of the class-conditional (ImageNet) models."""

DEFAULT_CHANNEL_MULT: dict[int, tuple[float, ...]] = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}
"""Per-level channel multipliers ``create_adm`` uses when ``channel_mult`` is empty, by image size."""

_NORM_GROUPS = 32
_NORM_EPS = 1e-5

Resample = Literal["up", "down"]


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as guided-diffusion computes it.

    Args:
        timesteps: ``(N,)`` timesteps.
        dim: embedding width; an odd width gets a trailing zero column.
        max_period: the longest period, which sets the lowest frequency.

    Returns:
        ``(N, dim)`` float32 tensor ``[cos(t·f), sin(t·f)]`` with ``f_i = max_period^(-i / (dim // 2))``.
    """
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(-math.log(max_period) * steps / half)
    angles = timesteps.float()[:, None] * freqs[None, :]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class GroupNorm32(nn.GroupNorm):
    """Group norm with 32 groups and eps 1e-5, computed in float32 and returned in the input dtype.

    Float32 holds under float16 torsos and under ``torch.autocast`` alike.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__(_NORM_GROUPS, num_channels, eps=_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


class Upsample(nn.Module):
    """Nearest-neighbour 2× upsampling, optionally followed by a 3×3 convolution (``conv``)."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x if self.conv is None else self.conv(x)


class Downsample(nn.Module):
    """2× downsampling: a strided 3×3 convolution, or 2×2 average pooling (``op`` either way)."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.channels = channels
        self.op: nn.Module = (
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding, optionally resampling by 2.

    Args:
        channels: input channels.
        emb_channels: width of the timestep embedding.
        out_channels: output channels (default: ``channels``); a 1×1 convolution adapts the skip path.
        dropout: dropout rate before the last convolution.
        use_scale_shift_norm: condition as ``norm(h)·(1 + scale) + shift`` (FiLM) instead of ``h + emb``.
        resample: ``"up"`` or ``"down"`` to resample both paths (no learned weights), or ``None``.
        use_checkpoint: recompute activations in the backward pass to save memory.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        *,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = False,
        resample: Resample | None = None,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.channels = channels
        self.out_channels = out_channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.use_checkpoint = use_checkpoint

        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.h_upd = _resampler(resample, channels)
        self.x_upd = _resampler(resample, channels)
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels)
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        _zero_(self.out_layers[-1])
        self.skip_connection: nn.Module = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """``(N, channels, H, W)``, ``(N, emb_channels)`` → ``(N, out_channels, H', W')``."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, emb, use_reentrant=False)
        return self._forward(x, emb)

    def _forward(self, x: Tensor, emb: Tensor) -> Tensor:
        in_norm, in_act, in_conv = self.in_layers
        h = in_conv(self.h_upd(in_act(in_norm(x))))
        x = self.x_upd(x)

        emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        out_norm, out_act, out_drop, out_conv = self.out_layers
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = out_norm(h) * (1 + scale) + shift
        else:
            h = out_norm(h + emb_out)
        h = out_conv(out_drop(out_act(h)))
        return self.skip_connection(x) + h


class QKVAttentionLegacy(nn.Module):
    """Multi-head attention on packed ``qkv`` laid out per head: ``(N, heads·3·C, T)`` → ``(N, heads·C, T)``.

    The order of the official checkpoints (``use_new_attention_order=False``).
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads

    def forward(self, qkv: Tensor) -> Tensor:
        batch, width, length = qkv.shape
        head_channels = width // (3 * self.num_heads)
        q, k, v = qkv.reshape(batch, self.num_heads, 3 * head_channels, length).split(head_channels, dim=2)
        return _attend(q, k, v)


class QKVAttention(nn.Module):
    """Multi-head attention on packed ``qkv`` laid out q, k, v first: ``(N, 3·heads·C, T)`` → ``(N, heads·C, T)``.

    The same weights give different results than :class:`QKVAttentionLegacy`.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads

    def forward(self, qkv: Tensor) -> Tensor:
        batch, width, length = qkv.shape
        head_channels = width // (3 * self.num_heads)
        q, k, v = qkv.reshape(batch, 3, self.num_heads, head_channels, length).unbind(1)
        return _attend(q, k, v)


def _attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention over positions of ``(N, heads, C, T)`` tensors, returned as ``(N, heads·C, T)``."""
    out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
    batch, heads, length, channels = out.shape
    return out.transpose(-1, -2).reshape(batch, heads * channels, length)


class AttentionBlock(nn.Module):
    """Self-attention over all spatial positions, with a residual connection.

    The head count is ``channels // num_head_channels`` when ``num_head_channels`` is not -1, else ``num_heads``.
    ``use_new_attention_order`` picks how the packed ``qkv`` channels split into heads; both orders use the
    same weights and give different results.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        *,
        use_new_attention_order: bool = False,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if num_head_channels == -1:
            heads = num_heads
        elif channels % num_head_channels:
            raise ValueError(
                f"{channels} attention channels are not divisible by num_head_channels={num_head_channels}"
            )
        else:
            heads = channels // num_head_channels
        if heads < 1 or channels % heads:
            raise ValueError(f"{channels} attention channels cannot be split into {heads} heads")
        self.channels = channels
        self.num_heads = heads
        self.use_checkpoint = use_checkpoint
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.attention = QKVAttention(heads) if use_new_attention_order else QKVAttentionLegacy(heads)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        _zero_(self.proj_out)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` → ``(N, C, H, W)``."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(2)
        h = self.proj_out(self.attention(self.qkv(self.norm(flat))))
        return (flat + h).reshape(x.shape)


class TimestepEmbedSequential(nn.Sequential):
    """A sequence of layers that hands the timestep embedding to the residual blocks among them."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNetModel(nn.Module):
    """guided-diffusion's UNet with timestep embedding, attention and optional class conditioning.

    Args:
        image_size: the resolution the model was trained at (informative; any multiple of
            ``2 ** (len(channel_mult) - 1)`` runs).
        in_channels: input channels.
        model_channels: base width; level ``i`` has ``int(channel_mult[i] * model_channels)`` channels.
        out_channels: output channels (6 for learned-variance models: ε, then variance interpolation values).
        num_res_blocks: residual blocks per level on the way down (one more per level on the way up).
        attention_resolutions: downsampling rates (1, 2, 4, ...) at which attention blocks are added.
        dropout: dropout rate inside residual blocks.
        channel_mult: per-level channel multipliers.
        conv_resample: learned convolutions in ``Downsample``/``Upsample`` (when not ``resblock_updown``).
        num_classes: number of labels of a class-conditional model, ``None`` for an unconditional one.
        use_checkpoint: gradient checkpointing of residual and attention blocks.
        use_fp16: run the torso (input, middle and output blocks' convolutions) in float16.
        num_heads: attention heads, when ``num_head_channels`` is -1.
        num_head_channels: channels per attention head (-1: use ``num_heads``).
        num_heads_upsample: attention heads on the way up (-1: ``num_heads``); used when ``num_head_channels`` is -1.
        use_scale_shift_norm: FiLM-style conditioning in residual blocks.
        resblock_updown: resample with residual blocks instead of ``Downsample``/``Upsample``.
        use_new_attention_order: split ``qkv`` into q, k, v before heads (``QKVAttention``).
    """

    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[float] = (1, 2, 4, 8),
        conv_resample: bool = True,
        num_classes: int | None = None,
        use_checkpoint: bool = False,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
    ) -> None:
        super().__init__()
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.image_size = image_size
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_classes = num_classes
        self.channel_mult = tuple(channel_mult)
        attention_rates = set(attention_resolutions)
        emb_channels = 4 * model_channels

        def res_block(channels: int, out: int | None = None, resample: Resample | None = None) -> ResBlock:
            return ResBlock(
                channels,
                emb_channels,
                out,
                dropout=dropout,
                use_scale_shift_norm=use_scale_shift_norm,
                resample=resample,
                use_checkpoint=use_checkpoint,
            )

        def attention(channels: int, heads: int) -> AttentionBlock:
            return AttentionBlock(
                channels,
                heads,
                num_head_channels,
                use_new_attention_order=use_new_attention_order,
                use_checkpoint=use_checkpoint,
            )

        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_channels), nn.SiLU(), nn.Linear(emb_channels, emb_channels)
        )
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb_channels)

        ch = first_ch = int(self.channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skip_channels = [ch]
        rate = 1
        last_level = len(self.channel_mult) - 1
        for level, mult in enumerate(self.channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if rate in attention_rates:
                    layers.append(attention(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != last_level:
                down = res_block(ch, resample="down") if resblock_updown else Downsample(ch, conv_resample)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_channels.append(ch)
                rate *= 2

        self.middle_block = TimestepEmbedSequential(res_block(ch), attention(ch, num_heads), res_block(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(self.channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + skip_channels.pop(), int(mult * model_channels))]
                ch = int(mult * model_channels)
                if rate in attention_rates:
                    layers.append(attention(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res_block(ch, resample="up") if resblock_updown else Upsample(ch, conv_resample))
                    rate //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(first_ch, out_channels, 3, padding=1))
        _zero_(self.out[-1])

        if use_fp16:
            self._convert_torso(torch.float16)

    @property
    def torso_dtype(self) -> torch.dtype:
        """The dtype the input, middle and output blocks run in."""
        return self.input_blocks[0][0].weight.dtype

    def _convert_torso(self, dtype: torch.dtype) -> None:
        """Cast the convolutions of the input, middle and output blocks (the reference's ``convert_to_fp16``)."""
        for torso in (self.input_blocks, self.middle_block, self.output_blocks):
            for module in torso.modules():
                if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                    module.to(dtype)

    def forward(self, x: Tensor, timesteps: Tensor, y: Tensor | None = None) -> Tensor:
        """Predict ``(N, out_channels, H, W)`` from ``x`` ``(N, in_channels, H, W)``.

        Args:
            x: noisy images (in [-1, 1] for the official models).
            timesteps: ``(N,)`` (or scalar) diffusion steps, integer or fractional.
            y: ``(N,)`` integer labels; required by, and only accepted by, class-conditional models.

        Returns:
            the output in the dtype of ``x``.
        """
        timesteps = self._check_inputs(x, timesteps, y)
        embed_dtype = self.time_embed[0].weight.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(embed_dtype))
        if y is not None:
            emb = emb + self.label_emb(y)

        h = x.to(self.torso_dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.to(x.dtype))

    def _check_inputs(self, x: Tensor, timesteps: Tensor, y: Tensor | None) -> Tensor:
        """Validate the inputs and return ``timesteps`` as an ``(N,)`` tensor on ``x``'s device."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        factor = 2 ** (len(self.channel_mult) - 1)
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"x's height and width must be multiples of {factor}, got {tuple(x.shape[2:])}")
        batch = x.shape[0]
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(batch)
        if timesteps.shape != (batch,):
            raise ValueError(f"timesteps must have shape ({batch},) or be a scalar, got {tuple(timesteps.shape)}")
        if self.num_classes is None and y is not None:
            raise ValueError("y was given, but this model is not class-conditional")
        if self.num_classes is not None and (y is None or y.shape != (batch,)):
            got = None if y is None else tuple(y.shape)
            raise ValueError(f"this class-conditional model needs labels y of shape ({batch},), got {got}")
        return timesteps


def create_adm(
    *,
    image_size: int,
    num_channels: int,
    num_res_blocks: int,
    channel_mult: str = "",
    learn_sigma: bool = False,
    class_cond: bool = False,
    use_checkpoint: bool = False,
    attention_resolutions: str = "16",
    num_heads: int = 1,
    num_head_channels: int = -1,
    num_heads_upsample: int = -1,
    use_scale_shift_norm: bool = False,
    dropout: float = 0.0,
    resblock_updown: bool = False,
    use_fp16: bool = False,
    use_new_attention_order: bool = False,
) -> UNetModel:
    """Build a :class:`UNetModel` from guided-diffusion's ``create_model`` arguments (same names and defaults).

    ``channel_mult`` is a comma-separated string (``"1,1,2,2,4,4"``); empty picks the default for
    ``image_size`` (:data:`DEFAULT_CHANNEL_MULT`). ``attention_resolutions`` lists feature-map resolutions
    (``"32,16,8"``) that become downsampling rates ``image_size // resolution``. ``learn_sigma`` gives 6 output
    channels instead of 3; ``class_cond`` conditions on :data:`NUM_CLASSES` labels.

    Raises:
        ValueError: empty ``channel_mult`` for an image size without a default, or a malformed string.
    """
    if channel_mult:
        mults = tuple(_parse_number(part) for part in channel_mult.split(","))
    elif image_size in DEFAULT_CHANNEL_MULT:
        mults = DEFAULT_CHANNEL_MULT[image_size]
    else:
        known = ", ".join(str(size) for size in DEFAULT_CHANNEL_MULT)
        raise ValueError(f"no default channel_mult for image_size={image_size} (known: {known}); pass channel_mult")
    attention_rates = tuple(image_size // int(res) for res in attention_resolutions.split(","))
    return UNetModel(
        image_size=image_size,
        in_channels=3,
        model_channels=num_channels,
        out_channels=6 if learn_sigma else 3,
        num_res_blocks=num_res_blocks,
        attention_resolutions=attention_rates,
        dropout=dropout,
        channel_mult=mults,
        num_classes=NUM_CLASSES if class_cond else None,
        use_checkpoint=use_checkpoint,
        use_fp16=use_fp16,
        num_heads=num_heads,
        num_head_channels=num_head_channels,
        num_heads_upsample=num_heads_upsample,
        use_scale_shift_norm=use_scale_shift_norm,
        resblock_updown=resblock_updown,
        use_new_attention_order=use_new_attention_order,
    )


def _parse_number(text: str) -> float:
    """``"2"`` → 2, ``"0.5"`` → 0.5."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _resampler(resample: Resample | None, channels: int) -> nn.Module:
    """The weightless resampling a residual block applies to both of its paths."""
    if resample == "up":
        return Upsample(channels, use_conv=False)
    if resample == "down":
        return Downsample(channels, use_conv=False)
    return nn.Identity()


def _zero_(module: nn.Module) -> None:
    """Zero a module's parameters in place (the reference's initialisation of output convolutions)."""
    for param in module.parameters():
        nn.init.zeros_(param)
