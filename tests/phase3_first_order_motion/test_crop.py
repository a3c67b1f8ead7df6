"""crop.py streams its input twice (boxes, then cut frames): the same video as cropping the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from common.cli import run
from common.media import read_video, resize_frames
from common.synthetic.clip import render_clip
from common.synthetic.identity import make_identity
from phase3_first_order_motion import crop


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """7 frames of a synthetic face dlib finds (256 px), on a wider 256x320 frame, with sound."""
    from consent_and_watermark.writer import save_video

    clip = render_clip(make_identity(5), 7, size=256, seed=3)
    frames = np.full((7, 256, 320, 3), 90, np.uint8)
    frames[:, :, 40:296] = clip.frames
    folder = tmp_path_factory.mktemp("crop")
    return save_video(folder / "talk.mp4", frames, clip.fps, audio=clip.audio, sample_rate=clip.sample_rate,
                      label=False)


@pytest.mark.parametrize("max_frames", [None, 4])
def test_streamed_crop_writes_what_cropping_the_whole_array_writes(talk, tmp_path, monkeypatch, capsys,
                                                                   max_frames):
    from consent_and_watermark import writer

    seen: dict = {}

    def save_video(path, frames, fps, **kwargs):
        seen.update(kwargs, frames=np.stack(list(frames)), fps=fps)
        return path

    monkeypatch.setattr(writer, "save_video", save_video)
    argv = ["--input", str(talk), "--output", str(tmp_path / "out.mp4"), "--detect-every", "2",
            "--size", "96"]
    assert run(crop.main, argv + (["--max-frames", str(max_frames)] if max_frames else [])) == 0

    video = read_video(talk)
    frames = video.frames[:max_frames]
    x0, y0, x1, y1 = crop.crop_box(frames, 2, 0.1)  # the array path, as crop.py did before
    np.testing.assert_array_equal(seen["frames"], resize_frames(frames[:, y0:y1, x0:x1], 96))
    assert f"crop box: x {x0}-{x1}, y {y0}-{y1} of 320x256" in capsys.readouterr().err
    assert seen["total"] == len(frames) and seen["fps"] == video.fps
    assert seen["sample_rate"] == video.sample_rate
    if max_frames:  # the sound is cut to the frames kept
        assert len(seen["audio"]) == round(max_frames / video.fps * video.sample_rate) < len(video.audio)
    else:
        np.testing.assert_array_equal(seen["audio"], video.audio)


def test_crop_box_of_a_stream_is_the_box_of_the_array(talk):
    from common.media import iter_video

    frames = read_video(talk).frames
    assert crop.crop_box(iter_video(talk), 3, 0.2) == crop.crop_box(frames, 3, 0.2)


def test_crop_refuses_a_max_frames_below_one_before_reading_the_video(tmp_path, one_error_line):
    argv = ["--input", str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "out.mp4"),
            "--max-frames", "0"]
    assert run(crop.main, argv) == 2
    assert "--max-frames must be at least 1, got 0" in one_error_line()
