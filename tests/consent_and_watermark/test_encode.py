"""H.264 encoding on several independent encoders joins into one ordinary stream."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from common.errors import UserError
from consent_and_watermark import encode


def _moving_frames(n: int, size: int = 128) -> np.ndarray:
    """(n, size, size, 3) uint8: a bright square crossing a gradient, a different picture every frame."""
    frames = np.zeros((n, size, size, 3), np.uint8)
    frames[...] = np.linspace(0, 200, size, dtype=np.uint8)[None, None, :, None]
    for i in range(n):
        x = (3 * i) % (size - 16)
        frames[i, 40:56, x : x + 16] = 255
    return frames


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("segments", [2, 3])
def test_segmented_encoding_keeps_every_frame_in_order(tmp_path: Path, segments: int):
    frames = _moving_frames(2 * encode.SEGMENT_FRAMES + 7)  # two full runs and a short last one
    single = _decode(encode.encode_mp4(tmp_path / "one.mp4", frames, 25, segments=1))
    split = _decode(encode.encode_mp4(tmp_path / "split.mp4", frames, 25, segments=segments))
    assert len(split) == len(single) == len(frames)
    errors = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(split, frames, strict=True)]
    assert max(errors) < 3.0  # close to the picture at every index
    # ... and closer to it than to any other input frame: a frame dropped, repeated or swapped at a
    # segment boundary (the square one step off) is caught, where the mean error above would let it by
    decoded = np.stack(split).reshape(len(split), -1).astype(np.float64)
    inputs = frames.reshape(len(frames), -1).astype(np.float64)
    distances = (decoded**2).sum(1)[:, None] + (inputs**2).sum(1)[None] - 2 * decoded @ inputs.T
    np.testing.assert_array_equal(distances.argmin(axis=1), np.arange(len(frames)))
    with av.open(str(tmp_path / "split.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(len(frames) / 25, abs=0.05)


def test_the_segment_count_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(encode.ENV_SEGMENTS, raising=False)
    assert encode.encode_segments() == 1
    monkeypatch.setenv(encode.ENV_SEGMENTS, "4")
    assert encode.encode_segments() == 4
    monkeypatch.setenv(encode.ENV_SEGMENTS, "four")
    with pytest.raises(UserError, match=encode.ENV_SEGMENTS):
        encode.encode_segments()


def test_frames_of_exactly_256_by_256_are_encoded_finer():
    """CRF 12 up to and including 256 x 256 px (a face crop's usual size), 18 above."""
    assert encode.video_crf((256, 256, 3)) == encode.SMALL_FRAME_CRF
    assert encode.video_crf((256, 258, 3)) == 18


def test_to_i420_takes_rgb_not_bgr():
    """Red stays red: the V (Cr) plane of a red frame is high and its U (Cb) plane low, and the
    planes convert back to the same RGB."""
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    yuv = encode.to_i420(red)  # (24, 16): Y, then U, then V (each 8 x 8, stored as 4 rows of 16)
    u, v = yuv[16:20].astype(int), yuv[20:24].astype(int)
    assert v.min() > 200 and u.max() < 120
    back = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
    assert np.abs(back.astype(int) - red).max() <= 3
