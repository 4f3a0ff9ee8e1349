"""Score-SDE NCSN++ / DDPM++ score network (Song et al., 2021), weight-compatible with the official
checkpoints: same modules, same flat ``all_modules.<i>`` state-dict keys in the same order, and the
float64 ``sigmas`` buffer first.

``create_ncsnpp(config)`` builds the network from a Score-SDE config (``model`` and ``data`` sections);
``NCSNpp(NCSNppConfig(...))`` builds it from typed options.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from videopure.diffusion.ncsnpp_layers import (
    AttnBlock,
    Combine,
    Downsample,
    GaussianFourierProjection,
    ResnetBlockBigGAN,
    ResnetBlockDDPM,
    Upsample,
    conv3x3,
    dense,
    group_norm,
    timestep_embedding,
)

__all__ = ["NCSNpp", "NCSNppConfig", "create_ncsnpp", "geometric_sigmas"]

_CHOICES: dict[str, tuple[Any, ...]] = {
    "resblock_type": ("ddpm", "biggan"),
    "progressive": ("none", "output_skip", "residual"),
    "progressive_input": ("none", "input_skip", "residual"),
    "progressive_combine": ("sum", "cat"),
    "embedding_type": ("positional", "fourier"),
    "attention_type": ("ddpm",),
    "nonlinearity": ("swish", "elu", "relu", "lrelu"),
    "normalization": ("groupnorm",),
    "conv_size": (3,),
}

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "swish": nn.SiLU,
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "lrelu": partial(nn.LeakyReLU, negative_slope=0.2),
}

# Fields a Score-SDE config may leave out: the reference network never reads them.
_OPTIONAL_FIELDS = ("attention_type", "normalization", "conv_size")
_DATA_FIELDS = ("image_size", "num_channels", "centered")


@dataclass(frozen=True)
class NCSNppConfig:
    """Network options, named as in Score-SDE's ``config.model`` / ``config.data``.

    Defaults are DiffPure's CIFAR-10 "DDPM++ deep continuous" VP network. String options are
    case-insensitive; an unsupported value raises ``ValueError`` naming the option and allowed values.
    """

    image_size: int = 32
    num_channels: int = 3
    centered: bool = True
    nf: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 8
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    resamp_with_conv: bool = True
    conditional: bool = True
    fir: bool = False
    fir_kernel: tuple[float, ...] = (1, 3, 3, 1)
    skip_rescale: bool = True
    resblock_type: str = "biggan"
    progressive: str = "none"
    progressive_input: str = "none"
    progressive_combine: str = "sum"
    attention_type: str = "ddpm"
    init_scale: float = 0.0
    embedding_type: str = "positional"
    fourier_scale: float = 16.0
    nonlinearity: str = "swish"
    normalization: str = "GroupNorm"
    scale_by_sigma: bool = False
    sigma_min: float = 0.01
    sigma_max: float = 50.0
    num_scales: int = 1000
    conv_size: int = 3

    def __post_init__(self) -> None:
        for name in ("ch_mult", "attn_resolutions", "fir_kernel"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            key = value.lower() if isinstance(value, str) else value
            if key not in allowed:
                raise ValueError(f"NCSNpp option {name}={value!r} is not supported; allowed: {list(allowed)}")
            object.__setattr__(self, name, key)
        if not self.ch_mult or any(m < 1 for m in self.ch_mult):
            raise ValueError(f"NCSNpp option ch_mult={self.ch_mult!r} must be a non-empty list of positive ints")
        for name in ("nf", "num_channels", "num_scales", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"NCSNpp option {name}={getattr(self, name)!r} must be positive")
        if self.num_res_blocks < 0:
            raise ValueError(f"NCSNpp option num_res_blocks={self.num_res_blocks!r} must be >= 0")
        if self.image_size % 2 ** (len(self.ch_mult) - 1):
            raise ValueError(f"NCSNpp option image_size={self.image_size} must be divisible by "
                             f"2**(len(ch_mult) - 1) = {2 ** (len(self.ch_mult) - 1)}")
        if not self.fir_kernel or sum(self.fir_kernel) == 0:
            raise ValueError(f"NCSNpp option fir_kernel={self.fir_kernel!r} must be non-empty with a non-zero sum")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"NCSNpp option dropout={self.dropout!r} must be in [0, 1)")

    @classmethod
    def from_score_sde(cls, config: Any) -> NCSNppConfig:
        """Read the network options from a Score-SDE config with ``model`` and ``data`` sections.

        ``config`` may be a nested mapping (e.g. loaded JSON/YAML), an ``ml_collections.ConfigDict``
        or a namespace. Keys that configure training or the SDE (``beta_min``, ``ema_rate`` ...) are
        ignored; a missing network key raises ``ValueError`` naming it.
        """
        model, data = _section(config, "model"), _section(config, "data")
        name = model.get("name", "ncsnpp")
        if name != "ncsnpp":
            raise ValueError(f"config model.name is {name!r}; this builds 'ncsnpp' only")
        values: dict[str, Any] = {}
        missing: list[str] = []
        for field in dataclasses.fields(cls):
            section, prefix = (data, "data") if field.name in _DATA_FIELDS else (model, "model")
            if field.name in section:
                values[field.name] = section[field.name]
            elif field.name not in _OPTIONAL_FIELDS:
                missing.append(f"{prefix}.{field.name}")
        if missing:
            raise ValueError(f"Score-SDE config lacks NCSNpp keys: {', '.join(missing)}")
        return cls(**values)


def _section(config: Any, name: str) -> dict[str, Any]:
    """One config section as a plain dict (mapping, ConfigDict or namespace)."""
    section = config[name] if isinstance(config, Mapping) else getattr(config, name, None)
    if section is None:
        raise ValueError(f"Score-SDE config has no {name!r} section")
    if isinstance(section, Mapping):
        return dict(section)
    if hasattr(section, "to_dict"):
        return dict(section.to_dict())
    return dict(vars(section))


def geometric_sigmas(sigma_max: float, sigma_min: float, num_scales: int) -> Tensor:
    """``num_scales`` noise levels from ``sigma_max`` down to ``sigma_min``, geometric, float64."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_scales, dtype=torch.float64))


class NCSNpp(nn.Module):
    """NCSN++ / DDPM++ U-Net: ``forward(x, time_cond)`` → output shaped like ``x``.

    All layers live in one flat ``all_modules`` list in the reference's registration order; ``forward``
    walks it in the same order. ``time_cond`` is the positional-embedding time (VP: 999·t) or, with the
    Fourier embedding, the noise level σ (embedded as log σ).
    """

    def __init__(self, config: NCSNppConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.act = act = _ACTIVATIONS[cfg.nonlinearity]()
        self.register_buffer("sigmas", geometric_sigmas(cfg.sigma_max, cfg.sigma_min, cfg.num_scales))
        self.image_size = cfg.image_size
        self.in_channels = cfg.num_channels
        self.num_resolutions = levels = len(cfg.ch_mult)
        resolutions = [cfg.image_size // 2**i for i in range(levels)]
        self.attn_levels = tuple(r in cfg.attn_resolutions for r in resolutions)

        nf, channels, temb_dim = cfg.nf, cfg.num_channels, 4 * cfg.nf
        fir = {"fir": cfg.fir, "fir_kernel": cfg.fir_kernel}
        common = {"act": act, "temb_dim": temb_dim, "dropout": cfg.dropout, "init_scale": cfg.init_scale,
                  "skip_rescale": cfg.skip_rescale}
        if cfg.resblock_type == "biggan":
            resblock = partial(ResnetBlockBigGAN, **common, **fir)
        else:
            resblock = partial(ResnetBlockDDPM, **common)
        attn = partial(AttnBlock, skip_rescale=cfg.skip_rescale, init_scale=cfg.init_scale)

        modules: list[nn.Module] = []
        if cfg.embedding_type == "fourier":
            modules.append(GaussianFourierProjection(nf, cfg.fourier_scale))
        if cfg.conditional:
            embed_dim = 2 * nf if cfg.embedding_type == "fourier" else nf
            modules += [dense(embed_dim, temb_dim), dense(temb_dim, temb_dim)]

        # Encoder.
        modules.append(conv3x3(channels, nf))
        skip_channels = [nf]
        in_ch, pyramid_ch = nf, channels
        for level, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                modules.append(resblock(in_ch=in_ch, out_ch=nf * mult))
                in_ch = nf * mult
                if self.attn_levels[level]:
                    modules.append(attn(in_ch))
                skip_channels.append(in_ch)
            if level == levels - 1:
                continue
            if cfg.resblock_type == "biggan":
                modules.append(resblock(in_ch=in_ch, down=True))
            else:
                modules.append(Downsample(in_ch, with_conv=cfg.resamp_with_conv, **fir))
            if cfg.progressive_input == "input_skip":
                modules.append(Downsample(pyramid_ch, with_conv=False, **fir))
                modules.append(Combine(pyramid_ch, in_ch, method=cfg.progressive_combine))
                if cfg.progressive_combine == "cat":
                    in_ch *= 2
            elif cfg.progressive_input == "residual":
                modules.append(Downsample(pyramid_ch, in_ch, with_conv=True, **fir))
                pyramid_ch = in_ch
            skip_channels.append(in_ch)

        # Middle.
        in_ch = skip_channels[-1]
        modules += [resblock(in_ch=in_ch), attn(in_ch), resblock(in_ch=in_ch)]

        # Decoder.
        for level in reversed(range(levels)):
            out_ch = nf * cfg.ch_mult[level]
            for _ in range(cfg.num_res_blocks + 1):
                modules.append(resblock(in_ch=in_ch + skip_channels.pop(), out_ch=out_ch))
                in_ch = out_ch
            if self.attn_levels[level]:
                modules.append(attn(in_ch))
            if cfg.progressive == "output_skip":
                if level != levels - 1:
                    modules.append(Upsample(channels, with_conv=False, **fir))
                modules += [group_norm(in_ch), conv3x3(in_ch, channels, init_scale=cfg.init_scale)]
            elif cfg.progressive == "residual":
                if level == levels - 1:
                    modules += [group_norm(in_ch), conv3x3(in_ch, in_ch)]
                else:
                    modules.append(Upsample(pyramid_ch, in_ch, with_conv=True, **fir))
                pyramid_ch = in_ch
            if level != 0:
                if cfg.resblock_type == "biggan":
                    modules.append(resblock(in_ch=in_ch, up=True))
                else:
                    modules.append(Upsample(in_ch, with_conv=cfg.resamp_with_conv, **fir))
        if cfg.progressive != "output_skip":
            modules += [group_norm(in_ch), conv3x3(in_ch, channels, init_scale=cfg.init_scale)]
        self.all_modules = nn.ModuleList(modules)

    def forward(self, x: Tensor, time_cond: Tensor) -> Tensor:
        """``x``: (N, C, H, W) with H = W = ``image_size``, in [-1, 1] (or [0, 1] if not ``centered``);
        ``time_cond``: (N,) or a scalar. Returns (N, C, H, W) in the dtype of the last layer's output."""
        cfg = self.config
        time_cond = self._check_inputs(x, time_cond)
        modules = iter(self.all_modules)
        temb = self._time_embedding(modules, time_cond)
        if not cfg.centered:
            x = 2 * x - 1.0
        resample_takes_temb = cfg.resblock_type == "biggan"

        # Encoder.
        input_pyramid = x
        hs = [next(modules)(x)]
        for level in range(self.num_resolutions):
            for _ in range(cfg.num_res_blocks):
                h = next(modules)(hs[-1], temb)
                if self.attn_levels[level]:
                    h = next(modules)(h)
                hs.append(h)
            if level == self.num_resolutions - 1:
                continue
            down = next(modules)
            h = down(hs[-1], temb) if resample_takes_temb else down(hs[-1])
            if cfg.progressive_input == "input_skip":
                input_pyramid = next(modules)(input_pyramid)
                h = next(modules)(input_pyramid, h)
            elif cfg.progressive_input == "residual":
                input_pyramid = self._merge(next(modules)(input_pyramid), h)
                h = input_pyramid
            hs.append(h)

        # Middle.
        h = next(modules)(hs[-1], temb)
        h = next(modules)(h)
        h = next(modules)(h, temb)

        # Decoder.
        pyramid: Tensor | None = None
        for level in reversed(range(self.num_resolutions)):
            for _ in range(cfg.num_res_blocks + 1):
                h = next(modules)(torch.cat([h, hs.pop()], dim=1), temb)
            if self.attn_levels[level]:
                h = next(modules)(h)
            top = level == self.num_resolutions - 1
            if cfg.progressive == "output_skip":
                if top:
                    pyramid = self._output_head(modules, h)
                else:
                    pyramid = next(modules)(pyramid)
                    pyramid = pyramid + self._output_head(modules, h)
            elif cfg.progressive == "residual":
                if top:
                    pyramid = self._output_head(modules, h)
                else:
                    pyramid = self._merge(next(modules)(pyramid), h)
                    h = pyramid
            if level != 0:
                up = next(modules)
                h = up(h, temb) if resample_takes_temb else up(h)

        h = pyramid if cfg.progressive == "output_skip" else self._output_head(modules, h)
        assert next(modules, None) is None, "forward did not consume every module"

        if cfg.scale_by_sigma:
            used_sigmas = time_cond if cfg.embedding_type == "fourier" else self.sigmas[time_cond.long()]
            h = (h / used_sigmas.reshape(-1, 1, 1, 1)).to(h.dtype)
        return h

    def _check_inputs(self, x: Tensor, time_cond: Tensor) -> Tensor:
        cfg = self.config
        expected = (cfg.num_channels, cfg.image_size, cfg.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"NCSNpp expects x of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        time_cond = torch.as_tensor(time_cond, device=x.device)
        if time_cond.dim() == 0:
            return time_cond.expand(x.shape[0])
        if time_cond.shape != (x.shape[0],):
            raise ValueError(f"time_cond must be a scalar or of shape ({x.shape[0]},), got {tuple(time_cond.shape)}")
        return time_cond

    def _time_embedding(self, modules: Iterator[nn.Module], time_cond: Tensor) -> Tensor | None:
        if self.config.embedding_type == "fourier":
            temb = next(modules)(torch.log(time_cond))
        else:
            temb = timestep_embedding(time_cond, self.config.nf)
        if not self.config.conditional:
            return None
        first, second = next(modules), next(modules)
        return second(self.act(first(temb.to(first.weight.dtype))))

    def _output_head(self, modules: Iterator[nn.Module], h: Tensor) -> Tensor:
        """GroupNorm → activation → 3x3 conv, taking the next two modules."""
        norm, conv = next(modules), next(modules)
        return conv(self.act(norm(h)))

    def _merge(self, a: Tensor, b: Tensor) -> Tensor:
        return (a + b) / math.sqrt(2.0) if self.config.skip_rescale else a + b


def create_ncsnpp(config: Any) -> NCSNpp:
    """Build the NCSN++ network of a Score-SDE config (``model`` and ``data`` sections; mapping,
    ``ml_collections.ConfigDict`` or namespace). Load weights with ``load_state_dict(strict=True)``."""
    return NCSNpp(NCSNppConfig.from_score_sde(config))
