"""H.264 encoding on several independent encoders joins into one ordinary stream."""

from __future__ import annotations

import struct
import wave
from fractions import Fraction
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
    for bad in ("four", "²"):
        monkeypatch.setenv(encode.ENV_SEGMENTS, bad)
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


def test_jpeg_quality_reaches_the_encoder(tmp_path):
    """``quality`` is used, not only its default: a lower quality quantizes coarser into fewer bytes."""
    low = encode.encode_image(tmp_path / "low.jpg", _photo(), quality=40)
    high = encode.encode_image(tmp_path / "high.jpg", _photo(), quality=95)
    with Image.open(low) as a, Image.open(high) as b:
        assert sum(a.quantization[0]) > 2 * sum(b.quantization[0])
    assert low.stat().st_size < high.stat().st_size


def test_an_unsupported_image_suffix_is_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="unsupported image format '.bmp'"):
        encode.encode_image(out / "a.bmp", _photo())
    assert list(out.iterdir()) == []  # neither an empty a.bmp nor a temporary file


@pytest.mark.parametrize(("height", "width"), [(4, 5), (5, 4)])
def test_a_frame_with_one_odd_side_is_padded_on_that_side_only(height: int, width: int):
    frame = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    even = encode._even(frame)
    assert even.shape == (height + height % 2, width + width % 2, 3)
    np.testing.assert_array_equal(even[:height, :width], frame)
    assert encode.to_i420(frame).shape == (even.shape[0] * 3 // 2, even.shape[1])
    note = encode.padding_note(frame)
    assert note is not None and f"{width}x{height} px written as {even.shape[1]}x{even.shape[0]}" in note


def test_a_segment_count_of_zero_means_one_encoder_and_spaces_are_ignored(monkeypatch):
    monkeypatch.setenv(encode.ENV_SEGMENTS, "0")
    assert encode.encode_segments() == 1
    monkeypatch.setenv(encode.ENV_SEGMENTS, " 2 ")
    assert encode.encode_segments() == 2


def _keyframes(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(packet.is_keyframe for packet in container.demux(video=0) if packet.size)


def test_the_segment_count_chooses_how_many_encoders_run(tmp_path: Path, monkeypatch):
    """Each run of SEGMENT_FRAMES frames on its own encoder opens with a key frame: one encoder
    (segments 0 or 1) gives one key frame here, 2 (by argument or $DEEPFAKE_ENCODE_SEGMENTS) three;
    the runs keep the video's frame rate."""
    frames = _moving_frames(2 * encode.SEGMENT_FRAMES + 4, size=32)
    monkeypatch.delenv(encode.ENV_SEGMENTS, raising=False)
    assert _keyframes(encode.encode_mp4(tmp_path / "zero.mp4", frames, 25, segments=0)) == 1
    assert _keyframes(encode.encode_mp4(tmp_path / "two.mp4", frames, 10, segments=2)) == 3
    with av.open(str(tmp_path / "two.mp4")) as container:  # at its own frame rate, not 25 fps
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(len(frames) / 10, abs=0.05)
    monkeypatch.setenv(encode.ENV_SEGMENTS, "2")
    assert _keyframes(encode.encode_mp4(tmp_path / "env.mp4", frames, 25)) == 3
    assert len(_decode(tmp_path / "zero.mp4")) == len(frames)


def test_x264_gets_the_preset_asked_for(tmp_path: Path):
    """x264 writes its settings into the stream: ultrafast turns CABAC off, veryfast (the default)
    keeps it on."""
    frames = _moving_frames(2, size=32)
    assert b"cabac=0" in encode.encode_mp4(tmp_path / "a.mp4", frames, 25, preset="ultrafast").read_bytes()
    assert b"cabac=1" in encode.encode_mp4(tmp_path / "b.mp4", frames, 25).read_bytes()


def test_an_ntsc_frame_rate_is_stored_exactly(tmp_path: Path):
    """29.97 fps is 30000/1001, not 30: rounded, a 10-minute video would end 0.6 s early against its audio."""
    path = encode.encode_mp4(tmp_path / "a.mp4", _moving_frames(3, size=32), 30000 / 1001)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def test_a_video_with_no_frames_is_refused_and_nothing_is_written(tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no frames"):
        encode.encode_mp4(out / "a.mp4", iter([]), 25)
    assert list(out.iterdir()) == []


def test_the_soundtrack_is_one_mono_aac_track_at_a_high_bit_rate_and_full_length(tmp_path: Path):
    rate = 16_000
    noise = (0.3 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)  # 1 s
    frames = _moving_frames(2, size=32)
    path = encode.encode_mp4(tmp_path / "a.mp4", frames, 25, audio=noise, sample_rate=rate)
    with av.open(str(path)) as container:
        (stream,) = container.streams.audio
        assert (stream.codec_context.name, stream.rate, stream.codec_context.channels) == ("aac", rate, 1)
        assert stream.bit_rate > 64_000  # noise takes all the bits it is given: ~74 kb/s asked 128 kb/s
        assert stream.duration * stream.time_base == 1
        decoded = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(audio=0)])
    # every sample in its place: the end lines up with the input as the start does (a sample lost per
    # chunk would leave the end 15 samples early)
    for at in (100, rate - 1500):
        piece = noise[at : at + 800]
        best = max(range(-32, 33), key=lambda k: float(np.dot(decoded[at + k : at + k + 800], piece)))
        assert best == 0, f"the decoded sound at sample {at} is {best} samples off"


def test_loud_audio_is_clipped_before_aac_not_stored_too_loud(tmp_path: Path):
    rate = 16_000
    loud = (2.0 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    path = encode.encode_mp4(tmp_path / "a.mp4", _moving_frames(2, size=32), 25, audio=loud, sample_rate=rate)
    with av.open(str(path)) as container:
        decoded = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(audio=0)])
    assert 0.9 < np.abs(decoded).max() < 1.3  # clipped to +-1 (AAC overshoots a square edge a little)


def test_audio_above_the_highest_aac_rate_is_resampled_down_to_it():
    audio, rate = encode._resample_for_aac(np.zeros(19_200, np.float32), 192_000)  # 0.1 s
    assert rate == 96_000 and len(audio) == 9_600


def test_a_wav_info_chunk_can_be_walked_by_a_strict_riff_reader(tmp_path: Path):
    """Every chunk's size is right and odd-length text is padded, so a reader stepping chunk by chunk
    lands exactly on the end of the file, with each INFO entry where its size says."""
    info = {"ICMT": "odd", "ISFT": "even", "INAM": "naïve"}
    data = encode.encode_wav(tmp_path / "a.wav", np.zeros(100, np.float32), 16_000, info=info).read_bytes()
    chunks, offset = {}, 12
    while offset < len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        chunks[chunk_id] = data[offset + 8 : offset + 8 + size]
        offset += 8 + size + size % 2
    assert offset == len(data) and set(chunks) == {b"fmt ", b"data", b"LIST"}
    body, entries, at = chunks[b"LIST"], {}, 4
    assert body[:4] == b"INFO"
    while at < len(body):
        key, size = body[at : at + 4].decode(), struct.unpack("<I", body[at + 4 : at + 8])[0]
        entries[key] = body[at + 8 : at + 8 + size].rstrip(b"\0").decode("utf-8")
        at += 8 + size + size % 2
    assert at == len(body) and entries == info


def _fail_while_writing(monkeypatch, kind: str) -> None:
    """Make the encoder of `kind` write part of its file and then fail, as a full disk would."""

    def partial_then_fail(target, *args, **kwargs):
        with open(target, "wb") as file:
            file.write(b"half a file")
        raise OSError("No space left on device")

    if kind == "png":
        monkeypatch.setattr(Image.Image, "save", lambda self, target, *a, **k: partial_then_fail(target))
    else:
        monkeypatch.setattr(Path, "write_bytes", lambda self, data: partial_then_fail(self))


@pytest.mark.parametrize("kind", ["png", "mp4", "wav"])
def test_a_failed_encode_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch, kind):
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"a.{kind}"
    target.write_bytes(b"the earlier good output")
    if kind == "mp4":

        def frames():
            yield from _moving_frames(60, size=32)  # past x264's look-ahead: packets reach the file
            raise OSError("camera unplugged")

        with pytest.raises(OSError, match="camera unplugged"):
            encode.encode_mp4(target, frames(), 25)
    else:
        _fail_while_writing(monkeypatch, kind)
        with pytest.raises(OSError, match="No space left"):
            if kind == "png":
                encode.encode_image(target, _photo())
            else:
                encode.encode_wav(target, np.zeros(100, np.float32), 16_000)
    monkeypatch.undo()
    assert list(out.iterdir()) == [target] and target.read_bytes() == b"the earlier good output"


@pytest.mark.parametrize("audio, rate, message", [
    (np.zeros(0, np.float32), 16000, "the audio track is empty"),
    (np.zeros(1600, np.float32), None, "needs its sample_rate"),
])
def test_encode_mp4_refuses_an_empty_or_rateless_audio_track_and_writes_nothing(
        tmp_path: Path, audio: np.ndarray, rate: int | None, message: str):
    """Without the check an empty track was dropped from the file silently, and a missing rate raised a
    TypeError from deep inside the resampler."""
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match=message):
        encode.encode_mp4(out / "a.mp4", _moving_frames(2), 25, audio=audio, sample_rate=rate)
    assert list(out.iterdir()) == []
