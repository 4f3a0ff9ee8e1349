"""The decode worker process: same frames as in-process decoding, typed errors, timeouts and crashes survived."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from data_helpers import exit_process, hanging_decode, moving_square

from videopure.data import (
    DecodeTimeoutError,
    DecodeWorker,
    VideoDecodeError,
    VideoNotFoundError,
    decode_clips,
    read_clip,
    write_video,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("worker") / "square.avi", moving_square(20))


@pytest.fixture(scope="module")
def worker():
    """One worker for the module (each new child costs a few seconds of imports); it hangs on ``*hang*`` files."""
    with DecodeWorker(timeout=30.0, decode_fn=hanging_decode) as decode_worker:
        yield decode_worker


def test_worker_decodes_like_this_process(worker, video):
    np.testing.assert_array_equal(worker.decode_clips(video, 6, num_clips=2), decode_clips(video, 6, num_clips=2))
    with pytest.raises(VideoNotFoundError, match="missing.avi: no such file"):
        worker.decode_clips(video.with_name("missing.avi"), 6)


def test_a_hanging_decode_times_out_and_the_worker_recovers(worker, video):
    hanging = shutil.copy(video, video.with_name("hang.avi"))
    worker.decode_clips(video, 4)  # the child is up: the timeout measures the decode only
    start = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match=r"hang\.avi: no result after 0.5 s; the decoding process was killed"):
        read_clip(hanging, 4, timeout=0.5, worker=worker)
    assert time.monotonic() - start < 5
    np.testing.assert_array_equal(read_clip(video, 4, worker=worker), decode_clips(video, 4)[0])


def test_a_crashing_decoder_is_reported_and_replaced(worker, video):
    with pytest.raises(VideoDecodeError, match=r"square\.avi: the decoding process died \(exit code 3\)"):
        worker.run(exit_process, video)
    assert worker.decode_clips(video, 4).shape == (1, 4, 32, 32, 3)


def test_read_clip_with_a_timeout_uses_a_shared_worker(video):
    np.testing.assert_array_equal(read_clip(video, 5, timeout=60.0, size=16), read_clip(video, 5, size=16))
