"""`phase4_audio_driven/eval_sync.py`: answers to bad input before any work; a video file streamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.cli import run
from common.errors import UserError
from common.impl import load
from common.media import read_audio


def test_a_plot_name_the_writer_cannot_write_is_refused_before_any_work(tmp_path, one_error_line):
    from phase4_audio_driven.eval_sync import main

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"never read")
    argv = ["--video", str(video), "--expert", str(tmp_path / "missing.pth"),
            "--plot", str(tmp_path / "c.pdf")]
    assert run(main, argv) == 2
    assert one_error_line() == "error: cannot write an image as 'c.pdf': use one of .png, .jpg, .jpeg"


@pytest.mark.todo("p4.audio", "p4.sync")
def test_a_video_file_is_scored_as_its_frames_are_scored_in_memory(tmp_path, capsys):
    """The command line streams the video and keeps only the face crops (the frames before the first face
    read twice, not held): the crops and the scores are those of the whole clip decoded first."""
    from common.impl import load
    from common.media import iter_video
    from common.synthetic import make_identity, render_clip, synthesize_speech
    from consent_and_watermark import writer
    from phase4_audio_driven import eval_sync
    from phase4_audio_driven.pipeline import crop, face_boxes

    frames = render_clip(make_identity(5), frames=16, size=160).frames.copy()
    frames[:3] = 128  # the face appears at frame 3
    speech = synthesize_speech(16 / 25, seed=3)
    video = writer.save_video(tmp_path / "clip.mp4", frames, 25.0, audio=speech.samples,
                              sample_rate=speech.sample_rate, label=False)
    decoded = np.stack(list(iter_video(video)))
    want = np.stack([crop(f, b) for f, b in zip(decoded, face_boxes(decoded), strict=True)])
    np.testing.assert_array_equal(eval_sync.video_crops(video), want)

    model = load("phase4_audio_driven", "model")
    torch.manual_seed(0)
    torch.save(model.checkpoint_dict(model.SyncNet(0.125), None, 0, 0), tmp_path / "expert.pth")
    assert run(eval_sync.main, ["--video", str(video), "--expert", str(tmp_path / "expert.pth"),
                                "--vshift", "2", "--device", "cpu"]) == 0
    wav, _ = read_audio(video, 16000)
    scores = eval_sync.evaluate_frames(model.load_syncnet(tmp_path / "expert.pth"), decoded, wav, 25.0, 2)
    assert f"LSE-D {scores.lse_d:.4f}   LSE-C {scores.lse_c:.4f}" in capsys.readouterr().out

    first = eval_sync.video_crops(video, max_frames=9)  # --max-frames: only those frames are decoded
    assert first.shape == (9, 96, 96, 3)
    np.testing.assert_array_equal(first[:4], want[:4])  # boxes smoothed over 5 frames: same while all 5 are
    assert run(eval_sync.main, ["--video", str(video), "--expert", str(tmp_path / "expert.pth"),
                                "--vshift", "2", "--max-frames", "9", "--device", "cpu"]) == 0
    assert "LSE-D" in capsys.readouterr().out


def test_max_frames_too_few_for_the_offset_search_is_refused_before_any_work(tmp_path, one_error_line):
    from phase4_audio_driven.eval_sync import main

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"never read")
    argv = ["--video", str(video), "--expert", str(tmp_path / "missing.pth"), "--max-frames", "30"]
    assert run(main, argv) == 2
    assert one_error_line() == "error: --max-frames must be at least 35 for a +-15-frame search, got 30"


def test_sync_evaluation_needs_2_vshift_plus_5_frames_not_2_vshift_plus_1():
    from phase4_audio_driven.eval_sync import evaluate_crops

    crops = np.zeros((34, 96, 96, 3), np.uint8)  # 30 five-frame windows: one short of +-15
    with pytest.raises(UserError, match="the clip has 34 frames; at least 35 are needed"):
        evaluate_crops(None, crops, np.zeros(16000, np.float32), 25.0, vshift=15)


@pytest.mark.parametrize("flags,message", [
    (["--max-frames", "34"], "--max-frames must be at least 35 for a +-15-frame search, got 34"),
    (["--vshift", "0"], "--vshift must be at least 1"),
])
def test_eval_sync_refuses_flags_one_short_before_any_work(tmp_path, one_error_line, flags, message):
    from phase4_audio_driven.eval_sync import main

    argv = ["--video", str(tmp_path / "clip.mp4"), "--expert", str(tmp_path / "missing.pth"), *flags]
    assert run(main, argv) == 2
    assert one_error_line() == f"error: {message}"


@pytest.fixture(scope="module")
def tiny_expert(tmp_path_factory) -> Path:
    model = load("phase4_audio_driven", "model")  # constructors and checkpoints hold no TODO
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("expert") / "expert.pth"
    torch.save(model.checkpoint_dict(model.SyncNet(0.125), None, 0, 0), path)
    return path


def test_a_silent_video_without_audio_flag_is_one_line(tmp_path, tiny_expert, one_error_line):
    from common.synthetic import make_identity, render_clip
    from consent_and_watermark import writer
    from phase4_audio_driven.eval_sync import main

    frames = render_clip(make_identity(5), frames=2, size=96, speech=False).frames
    video = writer.save_video(tmp_path / "mute.mp4", frames, 25.0, label=False)
    assert run(main, ["--video", str(video), "--expert", str(tiny_expert), "--device", "cpu"]) == 2
    assert one_error_line() == f"error: {video} has no audio track: pass --audio"


@pytest.mark.todo("p4.audio", "p4.sync")
def test_a_video_is_scored_at_its_own_frame_rate(tmp_path, tiny_expert, capsys):
    """A 10-fps clip: each frame's audio window starts 80 / 10 mel columns after the last, not 80 / 25."""
    from common.media import iter_video
    from common.synthetic import make_identity, render_clip, synthesize_speech
    from consent_and_watermark import writer
    from phase4_audio_driven import eval_sync

    frames = render_clip(make_identity(5), frames=10, size=160, speech=False).frames
    speech = synthesize_speech(1.0, seed=3)
    video = writer.save_video(tmp_path / "ten.mp4", frames, 10.0, audio=speech.samples,
                              sample_rate=speech.sample_rate, label=False)
    assert run(eval_sync.main, ["--video", str(video), "--expert", str(tiny_expert), "--vshift", "2",
                                "--device", "cpu"]) == 0
    expert = load("phase4_audio_driven", "model").load_syncnet(tiny_expert)
    wav, _ = read_audio(video, 16000)
    decoded = np.stack(list(iter_video(video)))
    scores = eval_sync.evaluate_frames(expert, decoded, wav, 10.0, 2)
    assert f"LSE-D {scores.lse_d:.4f}   LSE-C {scores.lse_c:.4f}" in capsys.readouterr().out


def test_the_printed_offset_is_the_searchs_own_sign_and_the_plot_is_named(tmp_path, tiny_expert, capsys,
                                                                         monkeypatch):
    """Audio 6 frames late dips at shift +6, which the search reports as offset -6: printed as -6."""
    from common.synthetic import make_identity, render_clip, synthesize_speech
    from consent_and_watermark import writer
    from phase4_audio_driven import eval_sync

    frames = render_clip(make_identity(5), frames=2, size=96, speech=False).frames
    speech = synthesize_speech(0.5, seed=3)
    video = writer.save_video(tmp_path / "late.mp4", frames, 25.0, audio=speech.samples,
                              sample_rate=speech.sample_rate, label=False)
    curve = np.array([3.0, 2.0, 1.0, 2.0, 3.0, 3.0, 0.5])  # dip at shift k = +2 of +-3
    scores = load("phase4_audio_driven", "lip_sync").SyncScores(-2, 0.5, 2.5, curve)
    monkeypatch.setattr(eval_sync, "video_crops", lambda path, max_frames=None: np.zeros((11, 96, 96, 3)))
    monkeypatch.setattr(eval_sync, "evaluate_crops", lambda *args, **kwargs: scores)
    assert run(eval_sync.main, ["--video", str(video), "--expert", str(tiny_expert), "--vshift", "3",
                                "--device", "cpu", "--plot", str(tmp_path / "curve.png")]) == 0
    out = capsys.readouterr().out
    assert "offset -2 frames   LSE-D 0.5000   LSE-C 2.5000" in out
    assert f"offset curve: {tmp_path / 'curve.png'}" in out and (tmp_path / "curve.png").is_file()


def test_the_offset_figure_plots_each_curve_against_shifts_minus_vshift_to_plus_vshift():
    from phase4_audio_driven.eval_sync import offset_figure

    fig = offset_figure({"clip": np.array([3.0, 1.0, 2.0, 2.5, 2.8])}, 2)
    line = fig.axes[0].get_lines()[0]  # then the dashed line at 0
    np.testing.assert_array_equal(line.get_xdata(), [-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(line.get_ydata(), [3.0, 1.0, 2.0, 2.5, 2.8])
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "clip"
