"""`phase4_audio_driven/eval_sync.py`: answers to bad input before any work."""

from __future__ import annotations

from common.cli import run


def test_a_plot_name_the_writer_cannot_write_is_refused_before_any_work(tmp_path, one_error_line):
    from phase4_audio_driven.eval_sync import main

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"never read")
    argv = ["--video", str(video), "--expert", str(tmp_path / "missing.pth"),
            "--plot", str(tmp_path / "c.pdf")]
    assert run(main, argv) == 2
    assert one_error_line() == "error: cannot write an image as 'c.pdf': use one of .png, .jpg, .jpeg"
