"""The pytorchvideo Kinetics-400 models, with the architecture arguments of pytorchvideo's hub entries.

Architecture arguments and checkpoint names follow ``pytorchvideo/models/hub/*.py`` (0.1.5); input specs
follow the model zoo ("frame length x sample rate", https://pytorchvideo.readthedocs.io/en/latest/model_zoo.html)
and PySlowFast's configs (crop = the size the net is built for, short side = the evaluation scale).
Two small nets without zoo weights are for CPU work: ``x3d_tiny`` and ``r3d_tiny`` (:func:`create_r3d_tiny`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Optional

from pytorchvideo.models.csn import create_csn
from pytorchvideo.models.head import create_res_basic_head
from pytorchvideo.models.hub.vision_transformers import mvit_video_base_32x3_config, mvit_video_base_config
from pytorchvideo.models.net import Net
from pytorchvideo.models.r2plus1d import create_r2plus1d
from pytorchvideo.models.resnet import create_bottleneck_block, create_res_stage, create_resnet
from pytorchvideo.models.slowfast import create_slowfast
from pytorchvideo.models.stem import create_res_basic_stem
from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers
from pytorchvideo.models.x3d import create_x3d
from torch import nn

from videopure.models.spec import ClassifierEntry, InputSpec

SizeKwargs = Callable[[InputSpec], dict[str, Any]]

SPATIAL_STRIDE = 32  # total spatial stride of every ResNet-style pytorchvideo net


def _multiple(value: int, factor: int, what: str) -> int:
    if value % factor:
        raise ValueError(f"{what} must be a multiple of {factor} for this architecture, got {value}")
    return value // factor


def _x3d_sizes(spec: InputSpec) -> dict[str, Any]:
    return {"input_clip_length": spec.num_frames, "input_crop_size": spec.crop_size}


def _resnet_sizes(temporal_stride: int) -> SizeKwargs:
    """Head pooling over the whole final feature map, for a net of the given total temporal stride."""

    def sizes(spec: InputSpec) -> dict[str, Any]:
        side = _multiple(spec.crop_size, SPATIAL_STRIDE, "crop_size")
        return {"head_pool_kernel_size": (_multiple(spec.num_frames, temporal_stride, "num_frames"), side, side)}

    return sizes


def _slowfast_sizes(spec: InputSpec) -> dict[str, Any]:
    if spec.slowfast_alpha is None:
        raise ValueError("a SlowFast input spec needs slowfast_alpha")
    side = _multiple(spec.crop_size, SPATIAL_STRIDE, "crop_size")
    slow = spec.num_frames // spec.slowfast_alpha
    return {"head_pool_kernel_sizes": ((slow, side, side), (spec.num_frames, side, side))}


def _mvit_sizes(spec: InputSpec) -> dict[str, Any]:
    return {"spatial_size": spec.crop_size, "temporal_size": spec.num_frames}


def _without_sizes(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("spatial_size", "temporal_size")}


_HEAD_POOLS: dict[str, Callable[..., nn.Module]] = {"max": nn.MaxPool3d, "avg": nn.AvgPool3d}


def create_r3d_tiny(
    *,
    input_channel: int = 3,
    input_clip_length: int = 8,
    input_crop_size: int = 32,
    model_num_class: int = 400,
    stem_dim_out: int = 16,
    stage_depth: tuple[int, int, int] = (1, 1, 1),
    stage_spatial_stride: tuple[int, int, int] = (2, 2, 1),
    head_pool: Literal["max", "avg"] = "max",
    dropout_rate: float = 0.0,
    zero_init_residual: bool = False,
    head_activation: Optional[Callable[..., nn.Module]] = None,
) -> Net:
    """A small 3D ResNet from pytorchvideo's ResNet builders, for motion classes learnt from scratch on a CPU.

    Stem: a 3×3×3 conv, spatial stride 2, no pooling. Three stages of bottleneck blocks (1×1×1, 3×3×3, 1×1×1),
    widths doubling from ``2 × stem_dim_out``, the first block of stage ``i`` with spatial stride
    ``stage_spatial_stride[i]``; no temporal stride. Head: pytorchvideo's basic head pooling the whole final
    map (``max`` by default), then the linear layer.

    Two choices differ from pytorchvideo's big ResNets, both for small moving objects learnt in a few hundred
    steps: global *max* pooling, since averaging dilutes the few positions where the object moves with the
    background (with ``avg`` the synthetic motions stay near chance); and the last BatchNorm of every residual
    branch starting at 1, not 0 (``zero_init_residual``: pytorchvideo's init, which leaves the branches
    nearly shut for the first ~1/lr optimizer steps).
    """
    if len(stage_depth) != 3 or len(stage_spatial_stride) != 3:
        raise ValueError(f"stage_depth and stage_spatial_stride need 3 values, got {stage_depth}, {stage_spatial_stride}")
    if head_pool not in _HEAD_POOLS:
        raise ValueError(f"head_pool must be one of {', '.join(_HEAD_POOLS)}, got {head_pool!r}")
    total_stride = 2 * math.prod(stage_spatial_stride)
    if input_crop_size % total_stride:
        raise ValueError(f"input_crop_size must be a multiple of the total spatial stride {total_stride}, got {input_crop_size}")
    blocks = [
        create_res_basic_stem(
            in_channels=input_channel, out_channels=stem_dim_out, conv_kernel_size=(3, 3, 3),
            conv_stride=(1, 2, 2), conv_padding=(1, 1, 1), pool=None,
        )
    ]
    dim_in = stem_dim_out
    for depth, stride in zip(stage_depth, stage_spatial_stride):
        blocks.append(
            create_res_stage(
                depth=depth, dim_in=dim_in, dim_inner=dim_in, dim_out=2 * dim_in, bottleneck=create_bottleneck_block,
                conv_a_kernel_size=(1, 1, 1), conv_a_stride=(1, 1, 1), conv_a_padding=(0, 0, 0),
                conv_b_kernel_size=(3, 3, 3), conv_b_stride=(1, stride, stride), conv_b_padding=(1, 1, 1),
            )
        )
        dim_in *= 2
    side = input_crop_size // total_stride
    blocks.append(
        create_res_basic_head(
            in_features=dim_in, out_features=model_num_class, pool=_HEAD_POOLS[head_pool],
            pool_kernel_size=(input_clip_length, side, side), dropout_rate=dropout_rate, activation=head_activation,
        )
    )
    net = Net(blocks=nn.ModuleList(blocks))
    if not zero_init_residual:
        for module in net.modules():
            if getattr(module, "block_final_bn", False):
                nn.init.ones_(module.weight)
    return net



def _spec(num_frames: int, sampling_rate: int, crop_size: int, short_side: int, alpha: int | None = None) -> InputSpec:
    return InputSpec(num_frames, sampling_rate, crop_size, short_side, slowfast_alpha=alpha)


_C2D_CONV_A = ((1, 1, 1),) * 4
_I3D_CONV_A = ((3, 1, 1), ((3, 1, 1), (1, 1, 1)), ((3, 1, 1), (1, 1, 1)), ((1, 1, 1), (3, 1, 1)))
# slowfast_16x8_r101_50_50: 6 conv blocks with kernel (3, 1, 1) in stage 4 of both pathways.
_R101_50_50_STAGE4 = ((3, 1, 1),) * 6 + ((1, 1, 1),) * (23 - 6)
_R101_50_50_CONV_A = (
    ((1, 1, 1), (1, 1, 1), _R101_50_50_STAGE4, (3, 1, 1)),
    ((3, 1, 1), (3, 1, 1), _R101_50_50_STAGE4, (3, 1, 1)),
)

ZOO_ENTRIES: tuple[ClassifierEntry, ...] = (
    ClassifierEntry("x3d_xs", create_x3d, _spec(4, 12, 160, 182), _x3d_sizes, zoo_file="X3D_XS.pyth"),
    ClassifierEntry("x3d_s", create_x3d, _spec(13, 6, 160, 182), _x3d_sizes, zoo_file="X3D_S.pyth"),
    ClassifierEntry("x3d_m", create_x3d, _spec(16, 5, 224, 256), _x3d_sizes, zoo_file="X3D_M.pyth"),
    ClassifierEntry(
        "x3d_l", create_x3d, _spec(16, 5, 312, 356), _x3d_sizes, {"depth_factor": 5.0}, zoo_file="X3D_L.pyth"
    ),
    # A real X3D, narrow and shallow (0.4M parameters): the CPU demo and test model. No zoo weights.
    ClassifierEntry(
        "x3d_tiny",
        create_x3d,
        _spec(8, 8, 64, 72),
        _x3d_sizes,
        {"width_factor": 1.0, "depth_factor": 1.0, "head_dim_out": 256},
    ),
    # A small 3D ResNet (0.18M parameters) that learns the synthetic motions from scratch in CPU minutes: the demo's.
    ClassifierEntry("r3d_tiny", create_r3d_tiny, _spec(8, 1, 32, 32), _x3d_sizes, head_name="blocks.4.proj"),
    ClassifierEntry(
        "slow_r50",
        create_resnet,
        _spec(8, 8, 224, 256),
        _resnet_sizes(1),
        {"model_depth": 50, "stem_conv_kernel_size": (1, 7, 7)},
        zoo_file="SLOW_8x8_R50.pyth",
    ),
    ClassifierEntry(
        "c2d_r50",
        create_resnet,
        _spec(8, 8, 224, 256),
        _resnet_sizes(2),
        {"stem_conv_kernel_size": (1, 7, 7), "stage1_pool": nn.MaxPool3d, "stage_conv_a_kernel_size": _C2D_CONV_A},
        head_name="blocks.6.proj",
        zoo_file="C2D_8x8_R50.pyth",
    ),
    ClassifierEntry(
        "i3d_r50",
        create_resnet,
        _spec(8, 8, 224, 256),
        _resnet_sizes(2),
        {"stem_conv_kernel_size": (5, 7, 7), "stage1_pool": nn.MaxPool3d, "stage_conv_a_kernel_size": _I3D_CONV_A},
        head_name="blocks.6.proj",
        zoo_file="I3D_8x8_R50.pyth",
    ),
    ClassifierEntry(
        "slowfast_r50",
        create_slowfast,
        _spec(32, 2, 224, 256, alpha=4),
        _slowfast_sizes,
        {"model_depth": 50, "slowfast_fusion_conv_kernel_size": (7, 1, 1)},
        head_name="blocks.6.proj",
        zoo_file="SLOWFAST_8x8_R50.pyth",
    ),
    ClassifierEntry(
        "slowfast_r101",
        create_slowfast,
        _spec(32, 2, 224, 256, alpha=4),
        _slowfast_sizes,
        {"model_depth": 101, "slowfast_fusion_conv_kernel_size": (5, 1, 1)},
        head_name="blocks.6.proj",
        zoo_file="SLOWFAST_8x8_R101.pyth",
    ),
    ClassifierEntry(
        "slowfast_16x8_r101_50_50",
        create_slowfast,
        _spec(64, 2, 224, 256, alpha=4),
        _slowfast_sizes,
        {
            "model_depth": 101,
            "slowfast_fusion_conv_kernel_size": (5, 1, 1),
            "stage_conv_a_kernel_sizes": _R101_50_50_CONV_A,
        },
        head_name="blocks.6.proj",
        zoo_file="SLOWFAST_16x8_R101_50_50.pyth",
    ),
    ClassifierEntry(
        "csn_r101",
        create_csn,
        _spec(32, 2, 224, 256),
        _resnet_sizes(8),
        {"model_depth": 101, "stem_pool": nn.MaxPool3d},
        zoo_file="CSN_32x2_R101.pyth",
    ),
    ClassifierEntry(
        "r2plus1d_r50",
        create_r2plus1d,
        _spec(16, 4, 224, 256),
        _resnet_sizes(4),
        {"dropout_rate": 0.5},
        zoo_file="R2PLUS1D_16x4_R50.pyth",
    ),
    ClassifierEntry(
        "mvit_base_16x4",
        create_multiscale_vision_transformers,
        _spec(16, 4, 224, 256),
        _mvit_sizes,
        _without_sizes(mvit_video_base_config),
        head_name="head.proj",
        num_classes_kwarg="head_num_classes",
        zoo_file="MVIT_B_16x4.pyth",
    ),
    ClassifierEntry(
        "mvit_base_32x3",
        create_multiscale_vision_transformers,
        _spec(32, 3, 224, 256),
        _mvit_sizes,
        _without_sizes(mvit_video_base_32x3_config),
        head_name="head.proj",
        num_classes_kwarg="head_num_classes",
        zoo_file="MVIT_B_32x3_f294077834.pyth",
    ),
)
