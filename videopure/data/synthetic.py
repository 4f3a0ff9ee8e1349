"""A synthetic action dataset: one shape on a textured, noisy background; the class is how the shape moves.

The classes (:data:`MOTIONS`) differ only in motion: left/right/up/down, clockwise/counter-clockwise rotation,
growing/shrinking. Shape, colours, size, speed, start position and background are drawn at random for every
video, from a generator seeded by ``(seed, class, video index)``, so a video does not depend on which other
classes or how many videos are written. The videos are real encoded files (AVI/MPEG-4 with B-frames like the
originals, or MP4/H.264) in the UCF-101 or HMDB-51 layout, with the official split files for splits 1-3.
"""

from __future__ import annotations

import logging
import zlib
from os import PathLike
from pathlib import Path
from typing import Callable, Literal, NamedTuple, Sequence

import numpy as np

from videopure.data.encode import VIDEO_FORMATS, write_video
from videopure.data.splits import HMDB51_ANNOTATIONS, SPLITS, UCF101_ANNOTATIONS

logger = logging.getLogger(__name__)

__all__ = ["MOTIONS", "SYNTHETIC_LAYOUTS", "make_synthetic_dataset", "render_video", "class_name"]

SYNTHETIC_LAYOUTS: tuple[str, ...] = ("ucf101", "hmdb51")
MIN_VIDEOS_PER_CLASS = 6  # two clips per group, groups 1, 2, 3 are the test groups of splits 1, 2, 3
_SUPERSAMPLING = 4  # anti-aliasing: samples per pixel side
_MAX_SCALE = 1.6  # growing/shrinking shapes reach this multiple of their radius


class _Trajectory(NamedTuple):
    centres: np.ndarray  # (T, 2) pixel x, y
    angles: np.ndarray  # (T,) radians; positive turns clockwise on screen (y points down)
    scales: np.ndarray  # (T,) multiples of the shape's radius


MotionFn = Callable[[np.random.Generator, int, int, int, float], _Trajectory]


def _translation(axis: int, sign: int) -> MotionFn:
    """Constant speed along x (axis 0) or y (axis 1), towards larger (sign 1) or smaller (sign -1) coordinates."""

    def motion(rng: np.random.Generator, num_frames: int, height: int, width: int, radius: float) -> _Trajectory:
        extent = (width, height)
        distance = rng.uniform(0.35, 0.6) * extent[axis]
        along = rng.uniform(radius, extent[axis] - radius - distance) + distance * np.linspace(0, 1, num_frames)
        along = along if sign > 0 else extent[axis] - along
        across = np.full(num_frames, rng.uniform(radius, extent[1 - axis] - radius))
        centres = np.stack((along, across) if axis == 0 else (across, along), axis=1)
        return _Trajectory(centres, np.full(num_frames, rng.uniform(0, 2 * np.pi)), np.ones(num_frames))

    return motion


def _rotation(sign: int) -> MotionFn:
    """0.6 to 0.9 of a turn about a fixed centre, clockwise (sign 1) or counter-clockwise (sign -1)."""

    def motion(rng: np.random.Generator, num_frames: int, height: int, width: int, radius: float) -> _Trajectory:
        centre = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
        turn = rng.uniform(0.6, 0.9) * 2 * np.pi
        angles = rng.uniform(0, 2 * np.pi) + sign * turn * np.linspace(0, 1, num_frames)
        return _Trajectory(np.tile(centre, (num_frames, 1)), angles, np.ones(num_frames))

    return motion


def _scaling(grow: bool) -> MotionFn:
    """Size changing geometrically by a factor of 2.5 to 4 about a fixed centre."""

    def motion(rng: np.random.Generator, num_frames: int, height: int, width: int, radius: float) -> _Trajectory:
        scales = np.geomspace(_MAX_SCALE / rng.uniform(2.5, 4.0), _MAX_SCALE, num_frames)
        reach = radius * _MAX_SCALE
        centre = (rng.uniform(reach, width - reach), rng.uniform(reach, height - reach))
        angles = np.full(num_frames, rng.uniform(0, 2 * np.pi))
        return _Trajectory(np.tile(centre, (num_frames, 1)), angles, scales if grow else scales[::-1].copy())

    return motion


_MOTION_FNS: dict[str, MotionFn] = {
    "move_left": _translation(0, -1),
    "move_right": _translation(0, 1),
    "move_up": _translation(1, -1),
    "move_down": _translation(1, 1),
    "rotate_clockwise": _rotation(1),
    "rotate_counterclockwise": _rotation(-1),
    "grow": _scaling(True),
    "shrink": _scaling(False),
}
MOTIONS: tuple[str, ...] = tuple(_MOTION_FNS)


def _circle(radius: float, centre: tuple[float, float] = (0.0, 0.0), sides: int = 32) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    return np.stack((centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)), axis=1)


# Each shape: polygons in units of its radius, each with colour 0 (main) or 1 (accent). None has a rotational
# symmetry, so rotation is visible.
_SHAPES: dict[str, tuple[tuple[np.ndarray, int], ...]] = {
    "triangle": ((np.array([[1.0, 0.0], [-0.8, 0.65], [-0.8, -0.65]]), 0),),
    "arrow": ((np.array([[1.0, 0], [0.2, 0.7], [0.2, 0.3], [-1, 0.3], [-1, -0.3], [0.2, -0.3], [0.2, -0.7]]), 0),),
    "ell": ((np.array([[-0.8, -0.9], [-0.2, -0.9], [-0.2, 0.4], [0.9, 0.4], [0.9, 0.9], [-0.8, 0.9]]), 0),),
    "split_square": (
        (np.array([[-0.75, -0.75], [0.0, -0.75], [0.0, 0.75], [-0.75, 0.75]]), 0),
        (np.array([[0.0, -0.75], [0.75, -0.75], [0.75, 0.75], [0.0, 0.75]]), 1),
    ),
    "dotted_disk": ((_circle(0.9), 0), (_circle(0.3, (0.45, 0.0)), 1)),
}


def _inside(polygon: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points of the grid ``x`` (1, N) × ``y`` (M, 1) lie inside ``polygon`` (V, 2)."""
    inside = np.zeros((y.shape[0], x.shape[1]), dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0)):
        if y1 != y2:
            inside ^= ((y1 > y) != (y2 > y)) & (x < x1 + (y - y1) * (x2 - x1) / (y2 - y1))
    return inside


def _paint(canvas: np.ndarray, polygon: np.ndarray, colour: np.ndarray) -> None:
    """Blend ``colour`` into ``canvas`` (H, W, 3) over ``polygon`` (pixel x, y), anti-aliased, in place."""
    height, width = canvas.shape[:2]
    left, top = np.maximum(np.floor(polygon.min(axis=0)).astype(int), 0)
    right, bottom = np.minimum(np.ceil(polygon.max(axis=0)).astype(int), (width, height))
    if right <= left or bottom <= top:
        return
    xs = left + (np.arange((right - left) * _SUPERSAMPLING) + 0.5) / _SUPERSAMPLING
    ys = top + (np.arange((bottom - top) * _SUPERSAMPLING) + 0.5) / _SUPERSAMPLING
    inside = _inside(polygon, xs[None, :], ys[:, None])
    alpha = inside.reshape(bottom - top, _SUPERSAMPLING, right - left, _SUPERSAMPLING).mean(axis=(1, 3))
    region = canvas[top:bottom, left:right]
    region += alpha[..., None] * (colour - region)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted colour with three random sinusoidal gratings and grain, float (H, W, 3)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.broadcast_to(rng.uniform(0.25, 0.6, 3), (height, width, 3)).copy()
    for _ in range(3):
        theta, frequency, phase = rng.uniform(0, np.pi), rng.uniform(1.5, 6.0), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * frequency * (x * np.cos(theta) + y * np.sin(theta)) + phase)
        image += wave[..., None] * rng.uniform(-0.08, 0.08, 3)
    return image + rng.normal(0.0, 0.03, image.shape)


def render_video(
    motion: str, rng: np.random.Generator, num_frames: int = 16, size: tuple[int, int] = (64, 64)
) -> np.ndarray:
    """One random video of class ``motion`` (one of :data:`MOTIONS`) → uint8 ``(T, H, W, 3)``."""
    if motion not in _MOTION_FNS:
        raise ValueError(f"unknown motion {motion!r}; choose from {', '.join(MOTIONS)}")
    height, width = size
    shape = _SHAPES[list(_SHAPES)[rng.integers(len(_SHAPES))]]
    colour = np.array([1.0, rng.uniform(0, 1), 0.0])[rng.permutation(3)] * rng.uniform(0.8, 1.0)
    colours = (colour, 1.0 - colour)
    radius = rng.uniform(0.11, 0.18) * min(height, width)
    trajectory = _MOTION_FNS[motion](rng, num_frames, height, width, radius)
    background = _background(rng, height, width)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        canvas = background + rng.normal(0.0, 0.02, background.shape)
        cos, sin = np.cos(trajectory.angles[t]), np.sin(trajectory.angles[t])
        transform = trajectory.scales[t] * radius * np.array([[cos, sin], [-sin, cos]])  # row vectors: p @ R^T
        for polygon, part in shape:
            _paint(canvas, trajectory.centres[t] + polygon @ transform, colours[part])
        frames[t] = np.clip(canvas * 255.0 + 0.5, 0, 255)
    return frames


def class_name(motion: str, layout: Literal["ucf101", "hmdb51"]) -> str:
    """The class name of ``motion`` in a layout's style: ``MoveLeft`` (UCF-101) or ``move_left`` (HMDB-51)."""
    return "".join(word.capitalize() for word in motion.split("_")) if layout == "ucf101" else motion


class _Video(NamedTuple):
    label: int
    path: str  # relative to the dataset root
    test_split: int  # the split whose test set holds this video


def make_synthetic_dataset(
    out: str | PathLike[str],
    layout: Literal["ucf101", "hmdb51"] = "ucf101",
    *,
    classes: Sequence[str] | None = None,
    videos_per_class: int = 30,
    num_frames: int = 16,
    size: tuple[int, int] = (64, 64),
    seed: int = 0,
    video_format: Literal["avi", "mp4"] = "avi",
    fps: int = 25,
) -> Path:
    """Write the synthetic dataset to the new or empty folder ``out``; return ``out``.

    ``classes`` are motions from :data:`MOTIONS` (default: all 8). Video ``v`` of a class is clip ``v % 2 + 1``
    of group ``v // 2 + 1``; group ``g`` is in the test set of split ``(g - 1) % 3 + 1`` and in the training
    set of the two others (UCF-101: ``v_<Class>_gGG_cCC.avi``; HMDB-51: flags 1/2 in ``<class>_test_split<N>.txt``).
    """
    out = Path(out)
    classes = tuple(MOTIONS if classes is None else classes)
    _check_arguments(out, layout, classes, videos_per_class, num_frames, size, video_format)
    names = [class_name(motion, layout) for motion in classes]
    videos = []
    for label, (motion, name) in enumerate(zip(classes, names)):
        (out / name).mkdir(parents=True, exist_ok=True)
        for index in range(videos_per_class):
            group, clip = index // 2 + 1, index % 2 + 1
            stem = f"v_{name}_g{group:02d}_c{clip:02d}" if layout == "ucf101" else f"synthetic_{name}_{index:03d}"
            video = _Video(label, f"{name}/{stem}.{video_format}", (group - 1) % len(SPLITS) + 1)
            rng = np.random.default_rng([seed, zlib.crc32(motion.encode()), index])
            write_video(out / video.path, render_video(motion, rng, num_frames, size), fps)
            videos.append(video)
    (_write_ucf101_splits if layout == "ucf101" else _write_hmdb51_splits)(out, names, videos)
    logger.info("wrote %d synthetic videos (%d classes, %s layout) to %s", len(videos), len(names), layout, out)
    return out


def _check_arguments(
    out: Path,
    layout: str,
    classes: tuple[str, ...],
    videos_per_class: int,
    num_frames: int,
    size: tuple[int, int],
    video_format: str,
) -> None:
    if layout not in SYNTHETIC_LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(SYNTHETIC_LAYOUTS)}, got {layout!r}")
    unknown = [motion for motion in classes if motion not in _MOTION_FNS]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be 2 or more distinct motions from {', '.join(MOTIONS)}; got {list(classes)}")
    if videos_per_class < MIN_VIDEOS_PER_CLASS:
        raise ValueError(f"videos_per_class must be >= {MIN_VIDEOS_PER_CLASS} (a test group per split)")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2 (motion needs two frames), got {num_frames}")
    if len(size) != 2 or min(size) < 16 or size[0] % 2 or size[1] % 2:
        raise ValueError(f"size must be (height, width), both even and >= 16, got {size}")
    if video_format not in VIDEO_FORMATS:
        raise ValueError(f"video_format must be one of {', '.join(VIDEO_FORMATS)}, got {video_format!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder: choose a new output folder")


def _write_lines(path: Path, lines: Sequence[str], newline: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline=newline) as handle:
        handle.writelines(f"{line}\n" for line in lines)


def _write_ucf101_splits(out: Path, names: Sequence[str], videos: Sequence[_Video]) -> None:
    """``classInd.txt``, ``trainlist0N.txt`` (with 1-based labels), ``testlist0N.txt`` (without), CRLF as the originals."""
    folder = out / UCF101_ANNOTATIONS
    _write_lines(folder / "classInd.txt", [f"{label + 1} {name}" for label, name in enumerate(names)], "\r\n")
    for split in SPLITS:
        train = [f"{v.path} {v.label + 1}" for v in videos if v.test_split != split]
        _write_lines(folder / f"trainlist{split:02d}.txt", train, "\r\n")
        _write_lines(folder / f"testlist{split:02d}.txt", [v.path for v in videos if v.test_split == split], "\r\n")


def _write_hmdb51_splits(out: Path, names: Sequence[str], videos: Sequence[_Video]) -> None:
    """``<class>_test_split<N>.txt``: ``<video> <1|2> `` (1 = train, 2 = test), trailing space as the originals."""
    folder = out / HMDB51_ANNOTATIONS
    for label, name in enumerate(names):
        for split in SPLITS:
            lines = [f"{Path(v.path).name} {2 if v.test_split == split else 1} " for v in videos if v.label == label]
            _write_lines(folder / f"{name}_test_split{split}.txt", lines, "\n")
