"""Image diffusion networks DiffPure purifies with, and one score interface over them."""

from videopure.diffusion.adm import UNetModel, create_adm
from videopure.diffusion.checkpoint import CheckpointError
from videopure.diffusion.ncsnpp import NCSNpp, create_ncsnpp
from videopure.diffusion.presets import DiffusionPreset, get_preset, list_presets, load_preset
from videopure.diffusion.schedule import VPSchedule
from videopure.diffusion.score import ADMScore, ScoreModel, ScoreSDEScore, as_score_model

__all__ = [
    "UNetModel",
    "NCSNpp",
    "create_adm",
    "create_ncsnpp",
    "load_preset",
    "get_preset",
    "list_presets",
    "DiffusionPreset",
    "CheckpointError",
    "VPSchedule",
    "ScoreModel",
    "ADMScore",
    "ScoreSDEScore",
    "as_score_model",
]
