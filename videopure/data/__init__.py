"""Video data: dataset splits, deterministic and hang-safe decoding, clip transforms, a synthetic dataset.

- :func:`load_split` (UCF-101, HMDB-51, mmaction2-style lists, folder trees) → :class:`DatasetSplit` of
  :class:`ClipRecord` s, with missing videos reported in ``problems``.
- :func:`read_clip` / :func:`read_clips` → uint8 ``(T, H, W, C)`` / ``(K, T, H, W, C)``; bad files raise a
  :class:`VideoDecodeError` subclass naming the file and the reason; ``timeout=`` decodes in a killable
  :class:`DecodeWorker` process. :func:`to_float_clip` → float ``(C, T, H, W)`` in [0, 1].
- :func:`make_synthetic_dataset`: real videos of motion classes in the UCF-101 or HMDB-51 layout.
- :func:`dataset_stats`: counts per subset and class, missing and unreadable files.
"""

from videopure.data.decode import (
    BACKENDS,
    VideoInfo,
    check_video,
    decode_clips,
    decode_frames,
    frames_needed,
    probe_video,
    sample_indices,
)
from videopure.data.encode import VIDEO_FORMATS, write_video
from videopure.data.errors import (
    DecodeTimeoutError,
    EmptyVideoError,
    NotAVideoError,
    UnreadableVideoError,
    VideoDecodeError,
    VideoNotFoundError,
    VideoTooShortError,
    VideoTruncatedError,
)
from videopure.data.reader import read_clip, read_clips
from videopure.data.splits import (
    LAYOUTS,
    SPLITS,
    SUBSETS,
    ClipRecord,
    DatasetSplit,
    SplitFileError,
    SplitProblem,
    detect_layout,
    load_folder,
    load_hmdb51,
    load_list,
    load_split,
    load_ucf101,
)
from videopure.data.stats import DatasetStats, SubsetStats, UnreadableVideo, check_videos, dataset_stats
from videopure.data.synthetic import MOTIONS, make_synthetic_dataset, render_video
from videopure.data.transforms import center_crop, resize_short_side, to_float_clip
from videopure.data.worker import DecodeWorker

__all__ = [
    "BACKENDS",
    "LAYOUTS",
    "MOTIONS",
    "SPLITS",
    "SUBSETS",
    "VIDEO_FORMATS",
    "ClipRecord",
    "DatasetSplit",
    "DatasetStats",
    "DecodeTimeoutError",
    "DecodeWorker",
    "EmptyVideoError",
    "NotAVideoError",
    "SplitFileError",
    "SplitProblem",
    "SubsetStats",
    "UnreadableVideo",
    "UnreadableVideoError",
    "VideoDecodeError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoTooShortError",
    "VideoTruncatedError",
    "center_crop",
    "check_video",
    "check_videos",
    "dataset_stats",
    "decode_clips",
    "decode_frames",
    "detect_layout",
    "frames_needed",
    "load_folder",
    "load_hmdb51",
    "load_list",
    "load_split",
    "load_ucf101",
    "make_synthetic_dataset",
    "probe_video",
    "read_clip",
    "read_clips",
    "render_video",
    "resize_short_side",
    "sample_indices",
    "to_float_clip",
    "write_video",
]
