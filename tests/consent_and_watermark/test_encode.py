"""H.264 encoding on several independent encoders joins into one ordinary stream."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

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


def _photo(size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8: smooth gradients with some noise, a photo-like picture for JPEG."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size)
    rgb = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.full((1, 1), 128.0)), axis=-1)
    return np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)


def test_jpeg_images_default_to_quality_95_in_4_2_0(tmp_path):
    encode.encode_image(tmp_path / "a.jpg", _photo())
    encode.encode_image(tmp_path / "b.jpg", _photo(), quality=95)
    with Image.open(tmp_path / "a.jpg") as a, Image.open(tmp_path / "b.jpg") as b:
        assert a.quantization == b.quantization
        assert JpegImagePlugin.get_sampling(a) == 2  # 4:2:0


def test_png_images_keep_their_exif(tmp_path):
    exif = Image.Exif()
    exif[0x0131] = "deepfake-creation"  # Software
    encode.encode_image(tmp_path / "a.png", _photo(), exif=exif.tobytes())
    with Image.open(tmp_path / "a.png") as image:
        assert image.getexif().get(0x0131) == "deepfake-creation"


def test_odd_frames_are_made_even_by_repeating_the_last_row_and_column():
    frame = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3) + 1
    even = encode._even(frame)
    assert even.shape == (4, 6, 3)
    np.testing.assert_array_equal(even[:3, :5], frame)
    np.testing.assert_array_equal(even[3, :5], frame[2])
    np.testing.assert_array_equal(even[:3, 5], frame[:, 4])


def test_padding_note_names_the_even_size_written():
    assert encode.padding_note(np.zeros((4, 6, 3), np.uint8)) is None
    assert "frames of 4x3 px written as 4x4" in encode.padding_note(np.zeros((3, 4, 3), np.uint8))


def test_aac_audio_is_resampled_up_to_the_nearest_codec_rate():
    audio, rate = encode._resample_for_aac(np.zeros(15_000, np.float32), 15_000)
    assert rate == 16_000 and len(audio) == 16_000


def test_wav_keeps_full_scale_samples_and_a_correct_riff_size(tmp_path):
    path = encode.encode_wav(tmp_path / "a.wav", np.array([1.0, -1.0, 0.5, 2.0]), 16_000, info={"ICMT": "x"})
    data = path.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    with wave.open(str(path)) as wav:
        pcm = np.frombuffer(wav.readframes(4), "<i2")
    assert pcm.tolist() == [32767, -32767, 16384, 32767]
