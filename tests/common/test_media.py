"""Reading media into the project's conventions, and the CLI error plumbing (shared code, no TODOs)."""

from __future__ import annotations

import dataclasses
import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from common import media
from common.cli import run
from common.errors import UserError


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """A raw PCM WAV written by the stdlib, mono (N,) or stereo (N, 2)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


def _write_mp4(path: Path, frames: np.ndarray, fps: int, audio_rate: int | None = None,
               rotation: int = 0) -> Path:
    """An H.264 video (with a 440 Hz tone when `audio_rate` is given) in the container `path` names;
    `rotation` tags it to be shown turned that many degrees counter-clockwise (as phones do)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        astream = container.add_stream("aac", rate=audio_rate) if audio_rate else None
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            n = int(audio_rate * len(frames) / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / audio_rate)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024].copy(), format="fltp",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = audio_rate, start
                for packet in astream.encode(chunk):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return path


def test_read_image_converts_grayscale_and_rgba_to_rgb(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgba = np.dstack([np.full((6, 8), c, np.uint8) for c in (10, 20, 30, 40)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    g = media.read_image(tmp_path / "g.png")
    a = media.read_image(tmp_path / "a.png")
    assert g.shape == (6, 8, 3) and g.dtype == np.uint8
    np.testing.assert_array_equal(g[..., 0], gray)
    assert a.shape == (6, 8, 3) and tuple(a[0, 0]) == (10, 20, 30)


def test_read_image_scales_16_bit_grey_and_colour_to_8_bit(tmp_path):
    """A 16-bit scan must not read as all white (PIL's own conversion clips 16-bit grey at 255)."""
    wide = (np.arange(6 * 8, dtype=np.uint16).reshape(6, 8) * 1365).astype(np.uint16)  # 0 .. 64155
    Image.fromarray(wide).save(tmp_path / "g16.png")  # mode I;16
    colour = np.dstack([wide, 65535 - wide, wide // 2])
    cv2.imwrite(str(tmp_path / "c16.png"), np.ascontiguousarray(colour[:, :, ::-1]))  # 16-bit BGR PNG
    expected = np.rint(wide / 257.0)
    grey = media.read_image(tmp_path / "g16.png")
    assert grey.shape == (6, 8, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 0], expected)
    rgb = media.read_image(tmp_path / "c16.png")
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    np.testing.assert_allclose(rgb, np.rint(colour / 257.0), atol=1)  # Pillow keeps the high byte


@pytest.mark.parametrize(("peak", "scale"), [(1.0, 255.0), (200.0, 1.0)])
def test_read_image_scales_32_bit_float_grey_to_8_bit(tmp_path, peak, scale):
    """A float TIFF in [0, 1] must not read as black (PIL's own conversion truncates it to 0 and 1)."""
    values = np.linspace(0.0, peak, 6 * 8, dtype=np.float32).reshape(6, 8)
    Image.fromarray(values, mode="F").save(tmp_path / "f32.tif")
    grey = media.read_image(tmp_path / "f32.tif")
    assert grey.shape == (6, 8, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 1], np.rint(values.astype(np.float64) * scale))


@pytest.mark.parametrize("maker", ["missing", "folder", "garbage"])
def test_bad_image_paths_raise_one_clear_user_error(tmp_path, maker):
    path = tmp_path / "x.png"
    if maker == "folder":
        path.mkdir()
    elif maker == "garbage":
        path.write_bytes(b"not an image at all")
    with pytest.raises(UserError):
        media.read_image(path)


def test_read_video_returns_frames_fps_and_audio(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (5, 1, 48, 64, 3), dtype=np.uint8), 1, axis=1)[:, 0]
    path = _write_mp4(tmp_path / "v.mp4", frames, fps=25, audio_rate=16000)
    video = media.read_video(path)
    assert video.frames.shape == (5, 48, 64, 3)
    assert video.fps == pytest.approx(25.0)
    assert video.sample_rate == 16000 and video.audio.dtype == np.float32
    assert abs(len(video.audio) - 16000 * 5 / 25) <= 2048  # AAC pads to whole 1024-sample frames
    info = media.video_info(path)
    assert (info.width, info.height, info.has_audio) == (64, 48, True)
    assert len(list(media.iter_video(path, max_frames=3))) == 3


@pytest.mark.parametrize("rotation, turns", [(90, 1), (-90, 3), (180, 2)])
def test_a_video_tagged_with_a_rotation_reads_upright(tmp_path, rotation, turns):
    stored = np.zeros((3, 48, 64, 3), np.uint8)
    stored[:, :16, :16] = 255  # a white block in the stored frame's top-left corner
    path = _write_mp4(tmp_path / "phone.mp4", stored, fps=25, rotation=rotation)
    shown = np.rot90(stored, turns, axes=(1, 2))  # what a player shows
    frames = media.read_video(path).frames
    assert frames.shape == shown.shape
    assert np.abs(frames.astype(int) - shown).mean() < 4  # the block is where the viewer sees it
    info = media.video_info(path)
    assert (info.height, info.width) == shown.shape[1:3]


def _write_vfr_clip(path: Path, times_ms: list[int], step: int) -> Path:
    """A 32x32 H.264 clip whose frame i (grey level step * i) is shown at `times_ms[i]` ms: variable rate."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), step * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_variable_frame_rate_video_reads_at_a_constant_rate_in_sync(tmp_path, caplog):
    times_ms = [0, 40, 80, 120, 160, 400, 640, 880, 920, 960, 1000]  # 25 fps, a 240 ms gap, 25 fps
    path = _write_vfr_clip(tmp_path / "vfr.mp4", times_ms, step=20)
    fps = media.video_info(path).fps
    with caplog.at_level("WARNING", logger="deepfake.media"):
        frames = list(media.iter_video(path))
    assert "variable frame rate" in caplog.text
    shown = [int(round(f.mean() / 20)) for f in frames]  # which input frame each output frame shows
    slots = [round(t / 1000 * fps) for t in times_ms]  # where each input frame falls at the constant rate
    assert len(frames) == slots[-1] + 1  # the clip lasts as long as before: the sound stays in sync
    for i, index in enumerate(shown):  # the first frame of slot i, else (a gap) the one shown before
        assert index == (slots.index(i) if i in slots else shown[i - 1]), (i, shown, slots)
    assert shown[slots[5]] == 5 and shown[slots[5] - 1] == shown[slots[4]]  # the gap repeats frame 4


def test_a_still_gif_is_an_image_and_an_animated_one_a_video(tmp_path):
    frames = [Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "still.gif")
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=40)
    assert media.is_image_path(tmp_path / "still.gif")
    assert media.read_image(tmp_path / "still.gif").shape == (32, 32, 3)
    assert not media.is_image_path(tmp_path / "moving.gif")
    assert len(list(media.iter_video(tmp_path / "moving.gif"))) == 3


def test_a_photo_with_an_exif_orientation_reads_upright(tmp_path):
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :10] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display", what a phone held upright writes
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    rgb = media.read_image(tmp_path / "phone.jpg")
    assert rgb.shape == (60, 40, 3) and rgb[:10, -10:].mean() > 200  # the block now top-right


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_info_counts_frames_even_where_the_container_declares_none(tmp_path, suffix):
    frames = np.random.default_rng(0).integers(0, 255, (7, 32, 32, 3), dtype=np.uint8)
    path = _write_mp4(tmp_path / f"v{suffix}", frames, fps=25, audio_rate=16000)
    assert media.video_info(path).frames == 7


def test_corrupt_video_is_a_user_error(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(UserError):
        media.read_video(path)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_read_audio_resamples_any_rate_to_16k(tmp_path, rate, caplog):
    t = np.arange(rate) / rate  # one second
    tone = 0.5 * np.sin(2 * np.pi * 300 * t)
    path = _write_wav(tmp_path / "a.wav", tone, rate)
    samples, sr = media.read_audio(path, sample_rate=16000)
    assert sr == 16000 and samples.dtype == np.float32
    assert abs(len(samples) - 16000) <= 64
    spectrum = np.abs(np.fft.rfft(samples[:16000] * np.hanning(len(samples[:16000]))))
    assert abs(np.argmax(spectrum) * 16000 / len(samples[:16000]) - 300) < 3  # the tone is still 300 Hz
    assert "resampled" in caplog.text


def test_read_audio_averages_stereo_to_mono(tmp_path):
    left = np.full(1600, 0.5)
    right = np.full(1600, -0.1)
    path = _write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000)
    samples, sr = media.read_audio(path)
    assert sr == 16000 and samples.ndim == 1
    assert samples[100:-100].mean() == pytest.approx(0.2, abs=2e-3)


def test_read_audio_of_eight_or_more_channels_is_averaged_not_crashed(tmp_path):
    """A 7.1 film soundtrack: PyAV crashed the process (segmentation fault) converting planar frames of
    8 or more channels; the samples are now read interleaved and averaged."""
    import soundfile as sf

    tone = 0.3 * np.sin(np.arange(8000) * 0.05)
    sf.write(tmp_path / "film.flac", np.stack([tone] * 8, axis=1), 16000)  # an input, not an output
    samples, rate = media.read_audio(tmp_path / "film.flac")
    assert rate == 16000 and samples.shape == (8000,)
    np.testing.assert_allclose(samples, tone, atol=1e-4)


def test_read_audio_of_an_mp4_ends_where_its_sound_ends(tmp_path):
    """AAC decodes whole 1024-sample frames: the last frame's padding is cut at the stream's duration."""
    frames = np.zeros((25, 32, 32, 3), np.uint8)
    path = _write_mp4(tmp_path / "a.mp4", frames, fps=25, audio_rate=16000)  # 1.0 s of a 440 Hz tone
    samples, rate = media.read_audio(path)
    assert abs(len(samples) / rate - 1.0) < 0.01  # 1.024 s before


def test_a_picture_over_pillows_size_limit_is_one_error_line(tmp_path, monkeypatch):
    """A huge scan or panorama (PIL's DecompressionBombError is no OSError): one line, not a traceback."""
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 is then "over twice the limit"
    with pytest.raises(UserError, match="cannot read image"):
        media.read_image(tmp_path / "huge.png")
    assert not media.is_turned(tmp_path / "huge.png")


def test_cli_run_turns_user_error_into_exit_2(capsys):
    def main(argv):
        raise UserError("no such file: nowhere.mp4")

    assert run(main, []) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: no such file: nowhere.mp4"


def test_video_audio_at_a_rate_aac_cannot_store_is_resampled_and_kept(tmp_path, caplog):
    from consent_and_watermark import writer

    frames = np.zeros((10, 64, 64, 3), np.uint8)
    rate = 15000  # not an AAC rate
    tone = (0.3 * np.sin(2 * np.pi * 500 * np.arange(rate * 10 // 25) / rate)).astype(np.float32)
    path = writer.save_video(tmp_path / "v.mp4", frames, 25, audio=tone, sample_rate=rate, label=False)
    video = media.read_video(path)
    assert video.sample_rate == 16000
    assert abs(len(video.audio) - 16000 * 10 / 25) <= 2048
    assert "resampled the audio track to 16000 Hz" in caplog.text


def test_clip_path_reads_a_synthetic_clip_folder_through_its_video_or_frames(tmp_path):
    video_clip = tmp_path / "synthetic-000000"  # as `python -m common.synthetic` writes one
    video_clip.mkdir()
    for name in ("video.mp4", "speech.wav", "identity.json"):
        (video_clip / name).write_bytes(b"")
    assert media.clip_path(video_clip) == video_clip / "video.mp4"
    frames_clip = tmp_path / "synthetic-000001"
    (frames_clip / "frames").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(frames_clip / "frames" / "000000.png")
    (frames_clip / "video.mp4").write_bytes(b"")
    assert media.clip_path(frames_clip) == frames_clip / "frames"
    plain = tmp_path / "plain"  # a folder of frame images, and a video file: as they are
    plain.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(plain / "0.png")
    assert media.clip_path(plain) == plain
    assert media.clip_path(video_clip / "video.mp4") == video_clip / "video.mp4"


def test_read_clip_reads_a_video_or_a_folder_of_frames_in_name_order(tmp_path):
    frames = np.stack([np.full((16, 16, 3), 40 * i, np.uint8) for i in range(4)])
    video = _write_mp4(tmp_path / "a.mp4", frames, fps=25)
    assert media.read_clip(video, max_frames=3).shape == (3, 16, 16, 3)
    folder = tmp_path / "b"
    folder.mkdir()
    for i in (2, 0, 1):  # written out of order
        Image.fromarray(frames[i]).save(folder / f"{i:03d}.png")
    (folder / "notes.txt").write_text("not a frame")
    np.testing.assert_array_equal(media.read_clip(folder), frames[:3])
    np.testing.assert_array_equal(media.read_clip(folder, max_frames=2), frames[:2])
    plain = tmp_path / "c"  # numbered without zero-padding (ffmpeg's %d): 2 comes before 10
    plain.mkdir()
    many = np.stack([np.full((8, 8, 3), 20 * i, np.uint8) for i in range(12)])
    for i in range(12):
        Image.fromarray(many[i]).save(plain / f"frame_{i + 1}.png")
    np.testing.assert_array_equal(media.read_clip(plain), many)


def test_read_clip_refuses_a_folder_without_frames_or_with_frames_of_two_sizes(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no frame images"):
        media.read_clip(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "0.png")
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(mixed / "1.png")
    with pytest.raises(UserError, match="differ in size"):
        media.read_clip(mixed)


def test_resize_frames_averages_areas_to_shrink_and_interpolates_to_enlarge():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    small = media.resize_frames(frames, 4)
    blocks = frames.reshape(2, 4, 2, 4, 2, 3).astype(np.float64).mean(axis=(2, 4))  # 2x2 block means
    assert small.shape == (2, 4, 4, 3) and small.dtype == np.uint8
    np.testing.assert_allclose(small, blocks, atol=0.5 + 1e-9)
    ramp = np.broadcast_to((30 * np.arange(8, dtype=np.uint8))[None, None, :, None], (1, 8, 8, 3))
    big = media.resize_frames(np.ascontiguousarray(ramp), 16)
    assert big.shape == (1, 16, 16, 3)
    x = np.clip((np.arange(16) + 0.5) / 2 - 0.5, 0, 7)  # bilinear with half-pixel centres, edges held
    np.testing.assert_allclose(big[0, 5, :, 0], 30 * x, atol=1)
    assert media.resize_frames(frames, 8) is frames
    wide = media.resize_frames(np.zeros((1, 6, 10, 3), np.uint8), 4)  # non-square: stretched
    assert wide.shape == (1, 4, 4, 3)


@pytest.mark.parametrize("declared", [None, 0, 1, 3, 9, 40, 10**15], ids=lambda d: f"declared-{d}")
@pytest.mark.parametrize("max_frames", [None, 0, 4, 50])
def test_read_video_gives_the_frames_iter_video_gives_whatever_the_header_declares(tmp_path, monkeypatch,
                                                                                     declared, max_frames):
    """read_video fills one array in place from the header's frame count; a count that is wrong (too
    few, too many, none, absurd) only changes how the array grows or is cut, never the frames."""
    frames = np.random.default_rng(1).integers(0, 255, (9, 24, 40, 3), dtype=np.uint8)
    path = _write_mp4(tmp_path / "v.mp4", frames, fps=25)
    expected = np.stack(list(media.iter_video(path, max_frames=max_frames)))
    if declared is not None:
        info = media.video_info(path)
        monkeypatch.setattr(media, "video_info", lambda p: dataclasses.replace(info, frames=declared))
    got = media.read_video(path, max_frames=max_frames, with_audio=False).frames
    assert got.dtype == expected.dtype and got.shape == expected.shape and got.flags.c_contiguous
    assert got.base is None  # its own memory, not a view keeping a larger buffer alive
    np.testing.assert_array_equal(got, expected)


def test_read_video_of_a_variable_rate_clip_holds_the_repeated_frames(tmp_path):
    """A variable-rate clip yields more frames than its header counts (gaps are filled): the array grows."""
    path = _write_vfr_clip(tmp_path / "vfr.mp4", [0, 40, 1000, 1040, 3000], step=40)  # ~76 frames from 5
    expected = np.stack(list(media.iter_video(path)))
    assert len(expected) > media.video_info(path).frames
    np.testing.assert_array_equal(media.read_video(path).frames, expected)


def test_read_audio_resampled_from_an_mp4_still_ends_where_its_sound_ends(tmp_path):
    """The AAC padding is cut at the stream's duration in the *target* rate's samples: 1.0 s of 44.1 kHz
    sound read at 16 kHz is 16000 samples, not 16000 plus the padding."""
    frames = np.zeros((25, 32, 32, 3), np.uint8)
    path = _write_mp4(tmp_path / "a.mp4", frames, fps=25, audio_rate=44100)
    samples, rate = media.read_audio(path, 16000)
    assert rate == 16000 and abs(len(samples) / rate - 1.0) < 0.005


def test_iter_video_stops_at_max_frames_inside_a_gap(tmp_path):
    """A gap of a variable-rate clip is filled with repeats, but never past ``max_frames``."""
    times_ms = [0, 40, 80, 120, 160, 400, 640, 880, 920, 960, 1000]  # slots 0-4, 10, 16, 22-25
    path = _write_vfr_clip(tmp_path / "vfr.mp4", times_ms, step=20)
    for max_frames in (7, 12):
        assert len(list(media.iter_video(path, max_frames=max_frames))) == max_frames
        assert len(media.read_video(path, max_frames=max_frames, with_audio=False).frames) == max_frames


def test_upright_false_reads_a_turned_photo_as_stored_and_is_turned_says_it_is_turned(tmp_path):
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :10] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    image.save(tmp_path / "plain.jpg", quality=95)
    as_stored = media.read_image(tmp_path / "phone.jpg", upright=False)
    assert as_stored.shape == (40, 60, 3) and as_stored[:10, :10].mean() > 200  # the block still top-left
    assert media.is_turned(tmp_path / "phone.jpg") and not media.is_turned(tmp_path / "plain.jpg")


def test_a_video_shown_half_a_turn_round_is_turned(tmp_path):
    stored = np.zeros((2, 32, 48, 3), np.uint8)
    assert media.is_turned(_write_mp4(tmp_path / "upside_down.mp4", stored, fps=25, rotation=180))
    assert not media.is_turned(_write_mp4(tmp_path / "plain.mp4", stored, fps=25))


def test_reading_a_folder_as_an_image_says_it_is_a_folder(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(UserError, match="expected a file but got a folder"):
        media.read_image(tmp_path / "x.png")


def test_clip_path_leaves_a_folder_of_two_videos_as_it_is(tmp_path):
    clip = tmp_path / "two"
    clip.mkdir()
    (clip / "a.mp4").write_bytes(b"")
    (clip / "b.mp4").write_bytes(b"")
    assert media.clip_path(clip) == clip  # which one would be a guess: reading the folder says so


def test_frames_to_read_is_the_declared_count_capped_at_max_frames():
    info = media.VideoInfo(width=32, height=32, fps=25.0, frames=9, duration=0.36, has_audio=False)
    assert info.frames_to_read() == 9
    assert info.frames_to_read(4) == 4
    assert info.frames_to_read(50) == 9


def test_a_missing_file_says_no_such_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        media.read_image(tmp_path / "nowhere.png")
    with pytest.raises(UserError, match="no such file"):
        media.video_info(tmp_path / "nowhere.mp4")


def test_resize_frames_shrinks_by_three_to_the_block_means():
    """An area shrink averages each 3x3 block (a bilinear one would read only the block's centre)."""
    frames = np.random.default_rng(2).integers(0, 256, (1, 9, 9, 3)).astype(np.uint8)
    small = media.resize_frames(frames, 3)
    blocks = frames.reshape(1, 3, 3, 3, 3, 3).astype(np.float64).mean(axis=(2, 4))
    np.testing.assert_allclose(small, blocks, atol=0.5 + 1e-9)


def test_read_audio_clips_float_samples_beyond_full_scale(tmp_path):
    import soundfile as sf

    loud = np.array([1.5, -2.0, 0.25, 0.9] * 400, np.float32)
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    samples, rate = media.read_audio(tmp_path / "loud.wav")
    assert rate == 16000
    np.testing.assert_allclose(samples, np.clip(loud, -1, 1), atol=1e-6)


def test_read_video_without_audio_leaves_the_sound_out(tmp_path):
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    path = _write_mp4(tmp_path / "v.mp4", frames, fps=25, audio_rate=16000)
    video = media.read_video(path, with_audio=False)
    assert video.audio is None and video.sample_rate is None
    assert media.read_video(path).audio is not None


def test_the_rate_of_a_variable_rate_clip_is_its_frames_over_its_duration(tmp_path):
    """5 frames over 1 to 3 s (however the last frame's length is counted): under 5 fps, not the 25 fps
    the encoder was opened with and its 40 ms steps suggest."""
    path = _write_vfr_clip(tmp_path / "vfr.mp4", [0, 40, 1000, 1040, 3000], step=40)
    assert 1.0 < media.video_info(path).fps < 5.0


def test_read_audio_takes_the_stream_marked_default_and_says_the_others_are_left_out(tmp_path, caplog):
    """A film with two soundtracks, the second marked default: that one is read, as a player would."""
    path = tmp_path / "two.mka"
    with av.open(str(path), "w") as container:
        streams = [container.add_stream("pcm_s16le", rate=rate) for rate in (8000, 16000)]
        streams[0].disposition, streams[1].disposition = 0, av.stream.Disposition.default
        for stream, rate in zip(streams, (8000, 16000), strict=True):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, 0
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
    with caplog.at_level("WARNING", logger="deepfake.media"):
        samples, rate = media.read_audio(path)
    assert rate == 16000 and len(samples) == 800
    assert "2 audio streams: using #1" in caplog.text


def test_iter_video_upright_false_gives_a_turned_videos_frames_as_stored(tmp_path):
    stored = np.zeros((2, 48, 64, 3), np.uint8)
    path = _write_mp4(tmp_path / "phone.mp4", stored, fps=25, rotation=90)
    assert next(media.iter_video(path, upright=False)).shape == (48, 64, 3)
    assert next(media.iter_video(path)).shape == (64, 48, 3)
