"""Dataset splits read from the official files: UCF-101, HMDB-51, mmaction2-style lists and folder trees.

Every loader returns a :class:`DatasetSplit` of :class:`ClipRecord` s with stable ids (the path relative to the
dataset root) and the class names in official order. A listed video that is not on disk is not a record: it is
reported in ``DatasetSplit.problems``. A malformed line, or a path that leaves the dataset root, is a
:class:`SplitFileError` naming the file and line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from os import PathLike
from pathlib import Path, PurePosixPath
from typing import Iterator, Literal, NamedTuple, Sequence

logger = logging.getLogger(__name__)

__all__ = [
    "LAYOUTS",
    "SPLITS",
    "SUBSETS",
    "VIDEO_EXTENSIONS",
    "UCF101_ANNOTATIONS",
    "HMDB51_ANNOTATIONS",
    "ClipRecord",
    "SplitProblem",
    "DatasetSplit",
    "SplitFileError",
    "Layout",
    "Subset",
    "load_split",
    "load_ucf101",
    "load_hmdb51",
    "load_list",
    "load_folder",
    "detect_layout",
]

Layout = Literal["ucf101", "hmdb51", "list", "folder"]
Subset = Literal["train", "test"]
LAYOUTS: tuple[str, ...] = ("ucf101", "hmdb51", "list", "folder")
SUBSETS: tuple[str, ...] = ("train", "test")
SPLITS: tuple[int, ...] = (1, 2, 3)
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"})
UCF101_ANNOTATIONS = "ucfTrainTestlist"
HMDB51_ANNOTATIONS = "testTrainMulti_7030_splits"
_HMDB51_FLAGS = {"train": "1", "test": "2"}  # and "0": not used in this split

PathType = str | PathLike[str]


class SplitFileError(ValueError):
    """A split or list file is malformed, or names a path outside the dataset root."""


@dataclass(frozen=True)
class ClipRecord:
    """One video: ``id`` is its path relative to the dataset root (POSIX), ``label`` is 0-based."""

    id: str
    path: Path
    label: int
    class_name: str


@dataclass(frozen=True)
class SplitProblem:
    """A listed video that cannot be used: ``path`` as written in ``source`` (``file:line``), and why."""

    path: str
    source: str
    reason: str


@dataclass(frozen=True)
class DatasetSplit:
    """The records of one split and subset, with all class names in official order (``label`` indexes them)."""

    root: Path
    layout: str
    split: int | None
    subset: str | None
    class_names: tuple[str, ...]
    records: tuple[ClipRecord, ...]
    problems: tuple[SplitProblem, ...]

    def class_counts(self) -> dict[str, int]:
        """Number of records per class, every class included, in class order."""
        counts = dict.fromkeys(self.class_names, 0)
        for record in self.records:
            counts[record.class_name] += 1
        return counts


class _Entry(NamedTuple):
    path: str  # as written in the split file
    label: int
    source: str  # file:line


def load_split(
    root: PathType,
    layout: Layout,
    split: int = 1,
    subset: Subset = "train",
    *,
    annotations: PathType | None = None,
    class_names: Sequence[str] | None = None,
) -> DatasetSplit:
    """Load a split of the dataset at ``root`` in the given layout.

    ``split`` and ``subset`` apply to ``ucf101`` and ``hmdb51``; ``annotations`` is their split-file folder
    (default: ``ucfTrainTestlist`` / ``testTrainMulti_7030_splits`` in ``root`` or beside it) or, required for
    ``list``, the list file; ``class_names`` names the labels of a ``list`` layout.
    """
    if layout == "ucf101":
        return load_ucf101(root, split, subset, annotations=annotations)
    if layout == "hmdb51":
        return load_hmdb51(root, split, subset, annotations=annotations)
    if layout == "list":
        if annotations is None:
            raise ValueError("layout 'list' needs the list file: pass annotations=PATH (--annotations PATH)")
        return load_list(root, annotations, class_names=class_names)
    if layout == "folder":
        return load_folder(root)
    raise ValueError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def detect_layout(root: PathType) -> str:
    """``ucf101`` or ``hmdb51`` when their split folder is in or beside ``root``, else ``folder``."""
    root = Path(root)
    for layout, name in (("ucf101", UCF101_ANNOTATIONS), ("hmdb51", HMDB51_ANNOTATIONS)):
        if (root / name).is_dir() or (root.parent / name).is_dir():
            return layout
    return "folder"


def load_ucf101(
    root: PathType, split: int = 1, subset: Subset = "train", *, annotations: PathType | None = None
) -> DatasetSplit:
    """UCF-101 from ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` and ``ucfTrainTestlist/``.

    ``classInd.txt`` numbers the classes from 1; ``trainlist0N.txt`` lines are ``<Class>/<video>.avi <label>``,
    ``testlist0N.txt`` lines carry no label (the class folder gives it). Path components are matched without
    regard to case when the exact spelling is missing (``HandstandPushups`` vs ``HandStandPushups``).
    """
    root = _check_root(root)
    _check_split(split, subset)
    folder = _find_annotations(root, annotations, UCF101_ANNOTATIONS)
    class_names = _read_class_index(folder / "classInd.txt")
    labels = {name.lower(): label for label, name in enumerate(class_names)}
    list_file = folder / f"{subset}list{split:02d}.txt"
    entries = [_ucf101_entry(text, source, subset, labels, class_names) for text, source in _lines(list_file)]
    return _make_split(root, "ucf101", split, subset, class_names, entries)


def _read_class_index(path: Path) -> tuple[str, ...]:
    names = []
    for text, source in _lines(path):
        fields = text.split()
        if len(fields) != 2 or fields[0] != str(len(names) + 1):
            raise SplitFileError(f"{source}: expected '<index> <ClassName>' with index {len(names) + 1}, got {text!r}")
        names.append(fields[1])
    return tuple(names)


def _ucf101_entry(
    text: str, source: str, subset: str, labels: dict[str, int], class_names: tuple[str, ...]
) -> _Entry:
    path, listed = _split_label(text, source) if subset == "train" else (text, None)
    parts = _relative_path(path, source).parts
    if len(parts) < 2 or parts[0].lower() not in labels:
        raise SplitFileError(f"{source}: {path!r} is not in a class folder named in classInd.txt")
    label = labels[parts[0].lower()]
    if listed is not None and listed != label + 1:
        raise SplitFileError(f"{source}: label {listed} does not match the class folder {class_names[label]!r}")
    return _Entry(path, label, source)


def load_hmdb51(
    root: PathType, split: int = 1, subset: Subset = "train", *, annotations: PathType | None = None
) -> DatasetSplit:
    """HMDB-51 from ``<root>/<class>/<video>.avi`` and ``testTrainMulti_7030_splits/``.

    ``<class>_test_split<N>.txt`` lines are ``<video>.avi <0|1|2>`` (1 = train, 2 = test, 0 = not used;
    whitespace may trail). Class names come from the file names, in sorted (official) order.
    """
    root = _check_root(root)
    _check_split(split, subset)
    folder = _find_annotations(root, annotations, HMDB51_ANNOTATIONS)
    suffix = f"_test_split{split}.txt"
    files = sorted((path.name.removesuffix(suffix), path) for path in folder.glob(f"*{suffix}"))
    if not files:
        raise SplitFileError(f"{folder}: no '<class>{suffix}' files")
    entries = []
    for label, (class_name, path) in enumerate(files):
        for text, source in _lines(path):
            fields = text.rsplit(None, 1)
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise SplitFileError(f"{source}: expected '<video> <0|1|2>', got {text!r}")
            if fields[1] == _HMDB51_FLAGS[subset]:
                entries.append(_Entry(f"{class_name}/{fields[0]}", label, source))
    class_names = tuple(name for name, _ in files)
    return _make_split(root, "hmdb51", split, subset, class_names, entries)


def load_list(root: PathType, list_file: PathType, *, class_names: Sequence[str] | None = None) -> DatasetSplit:
    """An mmaction2-style list: lines ``<path relative to root> <0-based label>``.

    Without ``class_names``, a label whose videos all lie in one top-level folder (each its own) is named after
    it, otherwise ``class_<label>``.
    """
    root = _check_root(root)
    entries = [_Entry(*_split_label(text, source), source) for text, source in _lines(Path(list_file))]
    for entry in entries:
        if class_names is not None and entry.label >= len(class_names):
            raise SplitFileError(f"{entry.source}: label {entry.label} but only {len(class_names)} class names")
    names = tuple(class_names) if class_names is not None else _infer_class_names(entries)
    return _make_split(root, "list", None, None, names, entries)


def _infer_class_names(entries: Sequence[_Entry]) -> tuple[str, ...]:
    num_classes = max((entry.label for entry in entries), default=-1) + 1
    folders: dict[int, set[str]] = {label: set() for label in range(num_classes)}
    for entry in entries:
        parts = PurePosixPath(entry.path).parts
        folders[entry.label].add(parts[0] if len(parts) > 1 else "")
    names = [next(iter(found)) if len(found) == 1 else "" for found in folders.values()]
    if "" in names or len(set(names)) != len(names):
        return tuple(f"class_{label}" for label in range(num_classes))
    return tuple(names)


def load_folder(root: PathType) -> DatasetSplit:
    """A folder per class: ``<root>/<class>/**/<video>``; classes sorted by name, videos by path."""
    root = _check_root(root)
    videos = {
        folder.name: sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }
    class_names = tuple(name for name, paths in videos.items() if paths)
    entries = [
        _Entry(path.relative_to(root).as_posix(), label, str(root / name))
        for label, name in enumerate(class_names)
        for path in videos[name]
    ]
    return _make_split(root, "folder", None, None, class_names, entries)


def _check_root(root: PathType) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    return root


def _check_split(split: int, subset: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")


def _find_annotations(root: Path, annotations: PathType | None, name: str) -> Path:
    candidates = [Path(annotations)] if annotations is not None else [root / name, root.parent / name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    where = " or ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"split folder not found: {where} (download it, or pass annotations=/--annotations)")


def _lines(path: Path) -> Iterator[tuple[str, str]]:
    """The non-blank lines of a text file, stripped (CRLF and trailing whitespace), with ``file:line``."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield line.strip(), f"{path}:{number}"


def _split_label(text: str, source: str) -> tuple[str, int]:
    """``'<path> <integer >= 0>'`` → (path, integer); the path may contain spaces."""
    fields = text.rsplit(None, 1)
    if len(fields) != 2 or not fields[1].isdecimal():
        raise SplitFileError(f"{source}: expected '<path> <label>', got {text!r}")
    return fields[0], int(fields[1])


def _relative_path(path: str, source: str) -> PurePosixPath:
    """The normalised relative path, or a SplitFileError when it is absolute or climbs out of the root."""
    posix = PurePosixPath(path.replace("\\", "/"))
    parts: list[str] = []
    for part in posix.parts:
        if part == "..":
            if not parts:
                raise SplitFileError(f"{source}: path {path!r} leaves the dataset root")
            parts.pop()
        elif part != ".":
            parts.append(part)
    if posix.is_absolute() or not parts:
        raise SplitFileError(f"{source}: path {path!r} must be relative to the dataset root")
    return PurePosixPath(*parts)


class _PathFinder:
    """Finds a relative path under ``root``; when it is missing, matches each component without regard to case."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[PurePosixPath, dict[str, str]] = {}

    def find(self, relative: PurePosixPath) -> PurePosixPath | None:
        if (self.root / relative).is_file():
            return relative
        found = PurePosixPath()
        for part in relative.parts:
            name = self._listing(found).get(part.lower())
            if name is None:
                return None
            found /= name
        return found if (self.root / found).is_file() else None

    def _listing(self, folder: PurePosixPath) -> dict[str, str]:
        if folder not in self._listings:
            directory = self.root / folder
            names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
            self._listings[folder] = {name.lower(): name for name in names}
        return self._listings[folder]


def _make_split(
    root: Path,
    layout: str,
    split: int | None,
    subset: str | None,
    class_names: tuple[str, ...],
    entries: Sequence[_Entry],
) -> DatasetSplit:
    finder = _PathFinder(root)
    records, problems = [], []
    for entry in entries:
        found = finder.find(_relative_path(entry.path, entry.source))
        if found is None:
            problems.append(SplitProblem(entry.path, entry.source, "missing: no such file under the dataset root"))
            continue
        records.append(ClipRecord(found.as_posix(), root / found, entry.label, class_names[entry.label]))
    if problems:
        which = f"{layout} split {split} {subset}" if split is not None else layout
        logger.warning("%s (%s): %d listed videos are missing", root, which, len(problems))
    return DatasetSplit(root, layout, split, subset, class_names, tuple(records), tuple(problems))

