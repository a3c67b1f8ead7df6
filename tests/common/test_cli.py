"""common.cli: output paths are checked before any compute, and file-system errors end in one line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import EXIT_STDOUT_CLOSED, EXIT_USAGE, call_tool, check_output, run
from common.errors import UserError, first_line


def test_check_output_refuses_the_runs_own_input(tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"the user's only copy")
    with pytest.raises(UserError, match="is the input"):
        check_output(tmp_path / "." / "clip.mp4", inputs=(None, source))
    check_output(tmp_path / "other.mp4", inputs=(source,))  # a new name is fine
    assert source.read_bytes() == b"the user's only copy"


def test_check_output_refuses_a_folder_and_a_path_through_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="is a folder"):
        check_output(tmp_path)
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output(tmp_path / "notes.txt" / "deeper" / "out.mp4")
    check_output(tmp_path / "new" / "deeper" / "out.mp4")  # folders the write will create
    assert not (tmp_path / "new").exists()  # the check itself creates nothing


def test_run_turns_a_file_system_error_on_a_named_path_into_one_line(capsys):
    def main(argv):
        raise PermissionError(13, "Permission denied", "/readonly/run")

    assert run(main, []) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "error: Permission denied: /readonly/run\n"


def test_run_makes_argparse_refusals_one_line_naming_help(one_error_line):
    import argparse

    def main(argv):
        parser = argparse.ArgumentParser(prog="python tool.py")
        parser.add_argument("--size", type=int, required=True)
        parser.parse_args(argv)
        return 0

    for argv, why in (([], "the following arguments are required: --size"),
                      (["--size", "big"], "argument --size: invalid int value: 'big'"),
                      (["--size", "3", "--colour"], "unrecognized arguments: --colour")):
        assert run(main, argv) == EXIT_USAGE
        assert one_error_line() == f"error: {why} (see python tool.py --help)"
    with pytest.raises(SystemExit):  # outside `run`, argparse behaves as usual
        main([])

@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_run_stops_on_sigterm_and_sighup_the_way_it_stops_on_ctrl_c(capsys, sig):
    import signal

    number = getattr(signal, sig)
    before = signal.getsignal(number)
    cleaned = []

    def main(argv):
        try:
            os.kill(os.getpid(), number)  # a scheduler stopping the job
            return 0
        finally:
            cleaned.append(True)  # what a tool's `finally` does: temporary files removed

    assert run(main, []) == 128 + number
    assert cleaned == [True] and capsys.readouterr().err.strip() == f"stopped by {sig}"
    assert signal.getsignal(number) == before  # the caller's handler is back

def test_run_keeps_the_traceback_of_an_os_error_without_a_path():
    def main(argv):
        raise OSError("a bug, not the user's input")

    with pytest.raises(OSError):
        run(main, [])


def test_first_line_names_the_exception_when_its_message_is_empty():
    assert first_line(EOFError()) == "EOFError"
    assert first_line(ValueError("\n  shape mismatch  \nsecond line")) == "shape mismatch"


def test_first_line_is_cut_at_its_limit():
    assert first_line(ValueError("x" * 300)) == "x" * 200
    assert first_line(ValueError("abcdef"), limit=3) == "abc"


@pytest.mark.parametrize("phase, loader", [("phase4_audio_driven", "load_generator"),
                                           ("phase4_audio_driven", "load_syncnet"),
                                           ("phase3_first_order_motion", "load_fomm")])
def test_an_empty_checkpoint_file_is_a_one_line_error(tmp_path, phase, loader):
    from common.impl import load

    empty = tmp_path / "model.pth"
    empty.touch()  # e.g. a download that failed
    with pytest.raises(UserError, match="EOFError"):
        getattr(load(phase, "model"), loader)(empty)


@pytest.mark.parametrize("tool, argv", [
    ("phase1_face_swap.swap_video",
     ["--checkpoint", "{d}/model.pt", "--input", "{d}/clip.mp4", "--consent", "{c}", "--same-person"]),
    ("phase2_face_reenactment.reenact", ["--source", "{d}/driver.mp4", "--target", "{d}/clip.mp4",
                                         "--consent", "{c}", "--same-person"]),
    ("phase3_first_order_motion.animate",
     ["--source", "{d}/face.png", "--driving", "{d}/clip.mp4", "--checkpoint", "{d}/model.pt",
      "--consent", "{c}", "--same-person"]),
    ("phase3_first_order_motion.crop", ["--input", "{d}/clip.mp4"]),
    ("phase4_audio_driven.wav2lip", ["--face", "{d}/clip.mp4", "--audio", "{d}/speech.wav",
                                     "--checkpoint", "{d}/model.pt", "--consent", "{c}", "--same-person"]),
])
def test_generation_tools_refuse_to_write_over_their_input(tmp_path, tool, argv):
    import importlib

    from consent_and_watermark.consent import register_synthetic_identity

    consent = register_synthetic_identity("synthetic-cli-test", "Synthetic person (CLI test)")
    for name in ("model.pt", "clip.mp4", "driver.mp4", "face.png", "speech.wav"):
        (tmp_path / name).write_bytes(b"the user's only copy")  # never read: refused first
    main = importlib.import_module(tool).main
    args = [a.format(d=tmp_path, c=consent) for a in argv] + ["--output", str(tmp_path / "clip.mp4")]
    with pytest.raises(UserError, match="is the input"):
        main(args)
    assert (tmp_path / "clip.mp4").read_bytes() == b"the user's only copy"


@pytest.mark.parametrize("tool, argv", [
    ("phase1_face_swap.swap_video", ["--checkpoint", "{d}/model.pt", "--input", "{d}/clip.mp4"]),
    ("phase2_face_reenactment.reenact", ["--source", "{d}/driver.mp4", "--target", "{d}/clip.mp4"]),
    ("phase3_first_order_motion.animate",
     ["--source", "{d}/face.png", "--driving", "{d}/clip.mp4", "--checkpoint", "{d}/model.pt"]),
    ("phase4_audio_driven.wav2lip", ["--face", "{d}/clip.mp4", "--audio", "{d}/speech.wav",
                                     "--checkpoint", "{d}/model.pt"]),
])
def test_two_person_tools_refuse_one_persons_record_before_any_work(tmp_path, tool, argv):
    import importlib

    from consent_and_watermark.consent import register_synthetic_identity

    consent = register_synthetic_identity("synthetic-cli-roles", "Synthetic person (roles test)")
    for name in ("model.pt", "clip.mp4", "driver.mp4", "face.png", "speech.wav"):
        (tmp_path / name).write_bytes(b"never read")
    main = importlib.import_module(tool).main
    args = [a.format(d=tmp_path) for a in argv] + ["--output", str(tmp_path / "out.mp4")]
    with pytest.raises(UserError, match="touches 2 people .* cover 1 .synthetic-cli-roles."):
        main(args + ["--consent", consent, "--consent", consent])  # the same person twice
    assert not (tmp_path / "out.mp4").exists()


def test_consent_roles_are_one_per_person_or_one_with_same_person():
    import argparse

    from common.cli import add_consent_args, consent_roles

    parser = argparse.ArgumentParser()
    add_consent_args(parser, roles=("the driver", "the target"))
    two, one = ["--consent", "a", "--consent", "b"], ["--consent", "a", "--same-person"]
    assert consent_roles(parser.parse_args(two)) == ("the driver", "the target")
    assert consent_roles(parser.parse_args(one)) == ("the driver and the target",)
    single = argparse.ArgumentParser()
    add_consent_args(single)
    assert consent_roles(single.parse_args([])) == ()
    assert "--same-person" not in single.format_help()


def test_run_keeps_the_traceback_of_a_broken_pipe_that_is_not_stdout():
    """A helper process that died (its stdin pipe broke) is a bug, not a reader that stopped reading."""
    def main(argv):
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        run(main, [])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checked where poll() reports a closed pipe")
def test_run_ends_quietly_when_the_reader_of_stdout_has_gone():
    """`tool | head`: output still buffered when head exits must not end in a BrokenPipeError traceback."""
    script = ("import sys\nfrom common.cli import run\n"
              "def main(argv):\n    print('row\\n' * 10)\n    return 0\n"
              "sys.exit(run(main))\n")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-c", script], stdout=write_end, stderr=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parents[2], timeout=300)
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_STDOUT_CLOSED == 141 and done.stderr == b""


def test_an_unfinished_template_gets_a_line_naming_its_todo_below_the_traceback(capsys, monkeypatch):
    from common.cli import run, stub_hint

    def main(argv):
        raise NotImplementedError("TODO p9.demo.step")

    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    with pytest.raises(NotImplementedError, match="TODO p9.demo.step") as info:  # the traceback stays
        run(main, [])
    assert capsys.readouterr().err == ""  # nothing yet: a test runner that catches it prints nothing
    sys.excepthook(info.type, info.value, info.tb)  # what the interpreter does when the tool ends
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert err[-2] == "NotImplementedError: TODO p9.demo.step"
    assert err[-1].startswith("p9.demo.step is not written yet in tests/common/test_cli.py (line ")
    assert "--impl solutions" in err[-1]
    assert stub_hint(NotImplementedError("an abstract method")) is None


@pytest.mark.parametrize("tool, extra", [
    ("phase3_first_order_motion.train", []),
    ("phase4_audio_driven.train_syncnet", []),
    ("phase4_audio_driven.train", ["--expert", "e.pth"]),
])
def test_training_on_a_folder_of_people_needs_consent_before_reading_it(tmp_path, capsys, tool, extra):
    import importlib

    main = importlib.import_module(tool).main
    data = tmp_path / "people"
    data.mkdir()
    assert run(main, ["--data", str(data), "--run-dir", str(tmp_path / "run"), *extra]) == 2
    assert "no consent record given" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_call_tool_stops_the_caller_when_the_tool_stopped_early():
    call_tool(lambda argv: 0, [])
    with pytest.raises(KeyboardInterrupt):  # the tool saw Ctrl-C and saved its checkpoint: stop here too
        call_tool(lambda argv: 130, [])
    with pytest.raises(RuntimeError, match="exited with status 2"):
        call_tool(lambda argv: 2, [])


def test_a_tool_run_in_process_records_its_own_script_and_arguments(monkeypatch):
    from common.cli import command_line

    monkeypatch.setattr(sys, "argv", ["tools/demo.py", "--out", "outputs"])
    assert command_line("/elsewhere/tool.py", None) == ["tools/demo.py", "--out", "outputs"]
    script = Path(__file__).resolve().parents[2] / "phase4_audio_driven" / "wav2lip.py"
    recorded = command_line(str(script), ["--face", "a.mp4"])
    assert recorded == ["phase4_audio_driven/wav2lip.py", "--face", "a.mp4"]


def test_an_os_error_with_two_paths_names_them_in_order(capsys):
    """A failed rename or copy says "source -> destination" (destination: test_cli.py)."""
    def main(argv):
        raise OSError(errno.EXDEV, "Invalid cross-device link", "from.tmp", None, "to.mp4")

    assert run(main, []) == 2
    assert capsys.readouterr().err.strip() == "error: Invalid cross-device link: from.tmp -> to.mp4"


def test_common_args_leave_out_device_and_seed_for_tools_without_them():
    import argparse

    from common.cli import add_common_args

    full = argparse.ArgumentParser()
    add_common_args(full)
    assert vars(full.parse_args([])) == {"impl": None, "device": "auto", "seed": 0}
    bare = argparse.ArgumentParser()
    add_common_args(bare, device=False, seed=False)
    assert vars(bare.parse_args([])) == {"impl": None}  # a CPU-only tool refuses --device, not ignores it


def test_check_folder_refuses_a_folder_flag_that_names_a_file_or_runs_through_one(tmp_path):
    from common.cli import check_folder

    (tmp_path / "file.txt").write_text("x")
    check_folder(tmp_path / "new" / "run", "--run-dir")  # created later
    for path in (tmp_path / "file.txt", tmp_path / "file.txt" / "run"):
        with pytest.raises(UserError, match=r"^--run-dir .*file\.txt is a file, not a folder; name a folder"):
            check_folder(path, "--run-dir")
