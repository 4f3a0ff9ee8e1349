"""The pytorchvideo Kinetics-400 models, with the architecture arguments of pytorchvideo's hub entries.

Architecture arguments and checkpoint names follow ``pytorchvideo/models/hub/*.py`` (0.1.5); input specs
follow the model zoo ("frame length x sample rate", https://pytorchvideo.readthedocs.io/en/latest/model_zoo.html)
and PySlowFast's configs (crop = the size the net is built for, short side = the evaluation scale).
"""

from __future__ import annotations

from typing import Any, Callable

from pytorchvideo.models.csn import create_csn
from pytorchvideo.models.hub.vision_transformers import mvit_video_base_32x3_config, mvit_video_base_config
from pytorchvideo.models.r2plus1d import create_r2plus1d
from pytorchvideo.models.resnet import create_resnet
from pytorchvideo.models.slowfast import create_slowfast
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
