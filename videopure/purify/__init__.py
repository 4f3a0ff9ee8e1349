"""Per-frame diffusion purification of clips (DiffPure on video)."""

from videopure.purify.noise import FrameBrownian, clip_seed
from videopure.purify.purifier import DiffusionPurifier, PurificationError, PurifierSettings

__all__ = ["DiffusionPurifier", "PurifierSettings", "PurificationError", "FrameBrownian", "clip_seed"]
