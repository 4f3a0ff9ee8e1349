"""Decoding: temporal sampling, decord == PyAV frame for frame, a typed error for every kind of bad file, transforms."""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import decord
import numpy as np
import pytest
import torch
from data_helpers import moving_square

from videopure.data import (
    EmptyVideoError,
    NotAVideoError,
    UnreadableVideoError,
    VideoDecodeError,
    VideoNotFoundError,
    VideoTooShortError,
    VideoTruncatedError,
    center_crop,
    check_video,
    decode_frames,
    load_split,
    make_synthetic_dataset,
    probe_video,
    read_clip,
    read_clips,
    resize_short_side,
    sample_indices,
    to_float_clip,
    write_video,
)

BACKENDS = ("decord", "pyav")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Six AVI (MPEG-4 with B-frames, as the originals) and six MP4 (H.264) synthetic videos of 24 frames."""
    paths = []
    for video_format in ("avi", "mp4"):
        root = tmp_path_factory.mktemp(video_format)
        make_synthetic_dataset(
            root, classes=["move_left", "rotate_clockwise"], videos_per_class=6, num_frames=24, video_format=video_format
        )
        paths += [record.path for record in load_split(root, "ucf101", 1, "train").records[::2]]
    return paths


def pyav_all_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_uniform_sampling_takes_segment_centres_and_spreads_clips():
    np.testing.assert_array_equal(sample_indices(100, 8), [[6, 18, 31, 43, 56, 68, 81, 93]])
    np.testing.assert_array_equal(sample_indices(8, 8), [np.arange(8)])
    two = sample_indices(100, 4, num_clips=2)
    np.testing.assert_array_equal(two, [[6, 31, 56, 81], [18, 43, 68, 93]])


def test_stride_sampling_centres_one_clip_and_spreads_several():
    np.testing.assert_array_equal(sample_indices(100, 4, stride=5), [[42, 47, 52, 57]])
    np.testing.assert_array_equal(sample_indices(100, 4, stride=5, num_clips=3)[:, 0], [0, 42, 84])
    assert sample_indices(16, 4, stride=5)[0, -1] == 15
    with pytest.raises(ValueError, match="a clip needs 16 frames, the video has 15"):
        sample_indices(15, 4, stride=5)


def test_probe_reads_the_header(videos):
    info = probe_video(videos[0])
    assert (info.num_frames, info.height, info.width, info.fps, info.codec) == (24, 64, 64, 25.0, "mpeg4")
    assert probe_video(videos[-1]).codec == "h264"


def test_decord_and_pyav_give_identical_frames(videos):
    for path in videos:
        reference = pyav_all_frames(path)
        assert len(reference) == 24
        for backend in BACKENDS:
            np.testing.assert_array_equal(decode_frames(path, range(24), backend), reference, err_msg=f"{backend} {path}")
            clips = read_clips(path, 5, num_clips=3, backend=backend)
            np.testing.assert_array_equal(clips, reference[sample_indices(24, 5, num_clips=3)])
            clip = read_clip(path, 4, stride=3, backend=backend)
            np.testing.assert_array_equal(clip, reference[sample_indices(24, 4, stride=3)[0]])


def test_containers_without_a_frame_count_are_counted_by_packets(tmp_path):
    path = tmp_path / "square.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in moving_square(20):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # Matroska headers carry no frame count
    assert probe_video(path).num_frames == 20
    np.testing.assert_array_equal(read_clip(path, 8, backend="decord"), read_clip(path, 8, backend="pyav"))


@pytest.mark.parametrize("width", [24, 48, 72])
def test_widths_that_decord_pads_decode_identically(tmp_path, width):
    frames = np.random.default_rng(width).integers(0, 256, (3, 32, width, 3), dtype=np.uint8)
    path = write_video(tmp_path / f"w{width}.avi", frames)
    np.testing.assert_array_equal(decode_frames(path, [0, 2], "decord"), decode_frames(path, [0, 2], "pyav"))


def test_the_synthetic_avis_reproduce_decords_random_access_bug(videos):
    """Why decoding is sequential: on B-frame AVIs decord's get_batch returns other frames than the file holds."""
    indices = [3, 11, 19, 23]
    wrong = 0
    for path in (p for p in videos if p.suffix == ".avi"):
        batch = decord.VideoReader(str(path), num_threads=1).get_batch(indices).asnumpy()
        wrong += not np.array_equal(batch, pyav_all_frames(path)[indices])
    assert wrong > 0


def test_decoding_is_repeatable_and_in_requested_order(videos):
    frames = decode_frames(videos[0], [5, 2, 5, 0])
    np.testing.assert_array_equal(frames, pyav_all_frames(videos[0])[[5, 2, 5, 0]])
    np.testing.assert_array_equal(read_clip(videos[0], 8), read_clip(videos[0], 8))


def _truncated(tmp_path: Path, videos: list[Path]) -> Path:
    data = videos[0].read_bytes()
    return _write(tmp_path / "truncated.avi", data[: len(data) * 6 // 10])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _audio_only(tmp_path: Path, videos: list[Path]) -> Path:
    path = tmp_path / "audio.avi"
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


BAD_FILES = {
    "missing": (lambda tmp, videos: tmp / "missing.avi", VideoNotFoundError, "no such file"),
    "zero-byte": (lambda tmp, videos: _write(tmp / "empty.avi", b""), EmptyVideoError, "empty"),
    "random bytes": (
        lambda tmp, videos: _write(tmp / "random.avi", np.random.default_rng(0).bytes(5000)),
        NotAVideoError,
        "not a recognised video container",
    ),
    "text": (lambda tmp, videos: _write(tmp / "notes.mp4", b"hello\n" * 100), NotAVideoError, "not a recognised"),
    "audio only": (_audio_only, NotAVideoError, "no video stream"),
    "damaged header": (
        lambda tmp, videos: _write(tmp / "header.avi", videos[0].read_bytes()[:600]),
        UnreadableVideoError,
        "damaged AVI file",
    ),
    "truncated": (_truncated, VideoTruncatedError, r"only \d+ of the 24 frames in the header can be decoded"),
    "too short": (
        lambda tmp, videos: write_video(tmp / "short.avi", moving_square(4)),
        VideoTooShortError,
        "a clip needs 8 frames, the video has 4",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_every_bad_file_kind_gives_its_typed_error_naming_the_file(tmp_path, videos, kind, backend):
    make, error, reason = BAD_FILES[kind]
    path = make(tmp_path, videos)
    with pytest.raises(error, match=reason) as raised:
        read_clip(path, 8, backend=backend)
    assert str(raised.value).startswith(f"{path}: ")
    assert raised.value.path == str(path)
    if kind == "too short":
        assert not isinstance(raised.value, VideoTruncatedError)


def test_truncation_is_found_whichever_backend_and_sampling(tmp_path, videos):
    path = _truncated(tmp_path, videos)
    assert len(decord.VideoReader(str(path))) < 24  # decord alone would quietly sample a shorter video
    for backend in BACKENDS:
        np.testing.assert_array_equal(decode_frames(path, [0, 1], backend), pyav_all_frames(videos[0])[:2])
        with pytest.raises(VideoTruncatedError):
            check_video(path, backend)
        with pytest.raises(VideoTruncatedError):
            read_clip(path, 2, backend=backend)  # the second frame sampled (index 18) is past the cut
    assert check_video(videos[0]).num_frames == 24


def test_errors_pickle_with_path_and_reason():
    error = pickle.loads(pickle.dumps(VideoTruncatedError("/data/a.avi", "cut at frame 3")))
    assert isinstance(error, VideoDecodeError) and isinstance(error, VideoTooShortError)
    assert (error.path, error.reason, str(error)) == ("/data/a.avi", "cut at frame 3", "/data/a.avi: cut at frame 3")


def test_resize_short_side_and_center_crop():
    frames = torch.full((3, 48, 64, 3), 77, dtype=torch.uint8)
    resized = resize_short_side(frames, 24)
    assert resized.shape == (3, 24, 32, 3) and resized.dtype == torch.uint8 and bool((resized == 77).all())
    assert resize_short_side(frames.transpose(1, 2), 24).shape == (3, 32, 24, 3)
    assert resize_short_side(frames, 48) is frames
    grid = torch.arange(6 * 8, dtype=torch.uint8).reshape(1, 6, 8, 1).expand(1, 6, 8, 3)
    np.testing.assert_array_equal(center_crop(grid, 2)[0, :, :, 0], [[19, 20], [27, 28]])
    assert center_crop(grid, (4, 6)).shape == (1, 4, 6, 3)
    with pytest.raises(ValueError, match="does not fit"):
        center_crop(grid, 7)
    with pytest.raises(ValueError, match="expected uint8 frames"):
        resize_short_side(frames.float(), 24)


def test_read_clip_resizes_and_crops(videos):
    clip = read_clip(videos[0], 8, size=40, crop=32)
    assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8


def test_to_float_clip_layout_and_range(videos):
    clip = read_clip(videos[0], 8)
    floats = to_float_clip(clip)
    assert floats.shape == (3, 8, 64, 64) and floats.dtype == torch.float32 and floats.is_contiguous()
    assert 0.0 <= floats.min() and floats.max() <= 1.0
    torch.testing.assert_close(floats[:, 2], torch.from_numpy(clip[2]).permute(2, 0, 1).float() / 255)
    assert to_float_clip(np.stack([clip, clip])).shape == (2, 3, 8, 64, 64)
    with pytest.raises(ValueError, match="expected a clip"):
        to_float_clip(clip[0])
