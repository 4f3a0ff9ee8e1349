"""Named diffusion presets: the official DiffPure networks, their checkpoint formats and default purification time.

``load_preset(name, checkpoint_path)`` builds the network, loads the file strictly and returns it frozen in
``eval()`` mode. An unknown name is an error that lists the known ones. The ``demo`` preset's weights ship inside
the package (``videopure/assets``): ``load_network("demo", None)`` loads them.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from videopure.diffusion.checkpoint import load_weights

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclass(frozen=True)
class DiffusionPreset:
    """A named network: how to build it, how its checkpoint file is laid out, and where to get the file."""

    name: str
    family: str  # "adm" | "ncsnpp"
    config: Mapping[str, Any]
    image_size: int
    default_t_star: float
    checkpoint_file: str
    source: str
    description: str
    builder: Callable[[Mapping[str, Any]], nn.Module] = field(repr=False, compare=False)
    bundled: bool = False  # ``checkpoint_file`` ships in videopure/assets

    @property
    def bundled_checkpoint(self) -> Path | None:
        """The weights shipped with the package, if this preset has them."""
        return ASSETS / self.checkpoint_file if self.bundled else None

    def build(self) -> nn.Module:
        """The randomly initialised network (no weights loaded)."""
        return self.builder(self.config)


def _build_adm(config: Mapping[str, Any]) -> nn.Module:
    from videopure.diffusion.adm import create_adm

    return create_adm(**config)


def _build_ncsnpp(config: Mapping[str, Any]) -> nn.Module:
    from videopure.diffusion.ncsnpp import create_ncsnpp

    return create_ncsnpp(config)


ADM_256_UNCOND = {
    "image_size": 256,
    "num_channels": 256,
    "num_res_blocks": 2,
    "channel_mult": "",
    "learn_sigma": True,
    "class_cond": False,
    "use_checkpoint": False,
    "attention_resolutions": "32,16,8",
    "num_heads": 4,
    "num_head_channels": 64,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": True,
    "dropout": 0.0,
    "resblock_updown": True,
    "use_fp16": False,
    "use_new_attention_order": False,
}

DDPMPP_CIFAR10_DEEP = {
    "data": {
        "dataset": "CIFAR10",
        "category": "cifar10",
        "image_size": 32,
        "num_channels": 3,
        "random_flip": True,
        "centered": True,
        "uniform_dequantization": False,
    },
    "model": {
        "name": "ncsnpp",
        "sigma_min": 0.01,
        "sigma_max": 50,
        "num_scales": 1000,
        "beta_min": 0.1,
        "beta_max": 20.0,
        "dropout": 0.1,
        "scale_by_sigma": False,
        "ema_rate": 0.9999,
        "normalization": "GroupNorm",
        "nonlinearity": "swish",
        "nf": 128,
        "ch_mult": [1, 2, 2, 2],
        "num_res_blocks": 8,
        "attn_resolutions": [16],
        "resamp_with_conv": True,
        "conditional": True,
        "fir": False,
        "fir_kernel": [1, 3, 3, 1],
        "skip_rescale": True,
        "resblock_type": "biggan",
        "progressive": "none",
        "progressive_input": "none",
        "progressive_combine": "sum",
        "attention_type": "ddpm",
        "init_scale": 0.0,
        "embedding_type": "positional",
        "fourier_scale": 16,
        "conv_size": 3,
    },
}

# The demo's purifier: trained by `videopure train-diffusion --config configs/train_diffusion_demo.yaml` on the
# frames of the 32x32 synthetic dataset (configs/diffusion/adm_tiny_32.json).
ADM_TINY_32 = {
    "image_size": 32,
    "num_channels": 32,
    "num_res_blocks": 1,
    "channel_mult": "1,2",
    "learn_sigma": True,
    "class_cond": False,
    "use_checkpoint": False,
    "attention_resolutions": "16",
    "num_heads": 4,
    "num_head_channels": 16,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": True,
    "dropout": 0.0,
    "resblock_updown": True,
    "use_fp16": False,
    "use_new_attention_order": False,
}

PRESETS: dict[str, DiffusionPreset] = {
    preset.name: preset
    for preset in (
        DiffusionPreset(
            name="adm-256-uncond",
            family="adm",
            config=ADM_256_UNCOND,
            image_size=256,
            default_t_star=0.15,
            checkpoint_file="256x256_diffusion_uncond.pt",
            source="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt",
            description="guided-diffusion 256x256 unconditional ImageNet model (DiffPure's ImageNet purifier)",
            builder=_build_adm,
        ),
        DiffusionPreset(
            name="ddpmpp-cifar10",
            family="ncsnpp",
            config=DDPMPP_CIFAR10_DEEP,
            image_size=32,
            default_t_star=0.1,
            checkpoint_file="checkpoint_8.pth",
            source="Score-SDE release: vp/cifar10_ddpmpp_deep_continuous/checkpoints/checkpoint_8.pth",
            description="Score-SDE DDPM++ deep continuous VP model for CIFAR-10 (DiffPure's CIFAR-10 purifier)",
            builder=_build_ncsnpp,
        ),
        DiffusionPreset(
            name="demo",
            family="adm",
            config=ADM_TINY_32,
            image_size=32,
            default_t_star=0.1,
            checkpoint_file="demo_adm.pt",
            source="shipped with videopure (configs/train_diffusion_demo.yaml reproduces it)",
            description="tiny 32x32 ADM trained on the synthetic action dataset's frames (the offline demo's purifier)",
            builder=_build_adm,
            bundled=True,
        ),
    )
}


def list_presets(pattern: str = "*") -> list[str]:
    """Names of the presets matching a shell-style pattern."""
    return sorted(name for name in PRESETS if fnmatch.fnmatch(name, pattern))


def get_preset(name: str) -> DiffusionPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown diffusion preset '{name}'; known presets: {', '.join(list_presets())}") from None


def has_weights(model: str | Path, checkpoint: str | Path | None) -> bool:
    """Whether :func:`load_network` gets trained weights for ``model`` (a checkpoint, or a bundled preset)."""
    return checkpoint is not None or (str(model) in PRESETS and PRESETS[str(model)].bundled)


def freeze(net: nn.Module) -> nn.Module:
    """Evaluation mode, no parameter gradients (input gradients still flow)."""
    net.eval()
    net.requires_grad_(False)
    return net


def load_preset(name: str, checkpoint_path: str | Path) -> nn.Module:
    """Build preset ``name``, load ``checkpoint_path`` strictly (``weights_only=True``) and return it frozen."""
    preset = get_preset(name)
    with torch.device("meta"):
        net = preset.build()
    load_weights(net, checkpoint_path, f"preset '{preset.name}'")
    return freeze(net)


def network_from_config_file(path: str | Path) -> nn.Module:
    """A randomly initialised network from a JSON file: ``create_adm`` kwargs, or a Score-SDE config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"diffusion config file not found: {path}")
    config = json.loads(path.read_text(encoding="utf-8"))
    return _build_ncsnpp(config) if "model" in config else _build_adm(config)


def load_network(model: str | Path, checkpoint: str | Path | None) -> nn.Module:
    """A frozen network from a preset name or a JSON config file, with weights from ``checkpoint``.

    ``checkpoint=None`` loads a preset's bundled weights (``demo``), else keeps the family's initialisation
    (untrained; for speed tests and dry runs only).
    """
    if str(model) in PRESETS:
        checkpoint = checkpoint if checkpoint is not None else get_preset(str(model)).bundled_checkpoint
        if checkpoint is not None:
            return load_preset(str(model), checkpoint)
        net = get_preset(str(model)).build()
    else:
        if not Path(model).is_file():
            raise FileNotFoundError(f"diffusion model {str(model)!r} is neither a preset ({', '.join(list_presets())}) nor a JSON config file")
        net = network_from_config_file(model)
        if checkpoint is not None:
            load_weights(net, checkpoint, f"network of {model}")
    return freeze(net)
