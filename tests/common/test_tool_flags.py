"""The command-line tools: one name per meaning, defaults stated in --help, and the
old spellings of renamed flags still accepted."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

TOOLS = (
    "phase1_face_swap.extract",
    "phase1_face_swap.swap_video",
    "phase2_face_reenactment.reenact",
    "phase3_first_order_motion.animate",
    "phase3_first_order_motion.crop",
    "phase3_first_order_motion.reconstruct",
    "phase4_audio_driven.wav2lip",
    "phase4_audio_driven.eval_sync",
    "consent_and_watermark.__main__",
    "common.synthetic.__main__",
    "tools.demo",
    "phase1_face_swap.train",
    "phase2_face_reenactment.train_landmarks",
    "phase2_face_reenactment.train_x2face",
    "phase3_first_order_motion.train",
    "phase4_audio_driven.train_syncnet",
    "phase4_audio_driven.train",
)


class _Parser(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def tool_parser(module_name: str) -> argparse.ArgumentParser:
    """The parser a tool's `main` builds (every tool parses its flags before doing anything else)."""
    main = importlib.import_module(module_name).main

    def capture(self, args=None, namespace=None):
        raise _Parser(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(_Parser) as caught:
            main([])
    return caught.value.parser


def all_options(parser: argparse.ArgumentParser, where: str = ""):
    """(where, action) for every option of the parser and of its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_options(sub, f"{where}{name} ")
        elif action.option_strings:
            yield where, action


def spellings(default) -> set[str]:
    """How a help string may write `default`."""
    if isinstance(default, (tuple, list)):
        return {" ".join(map(str, default))}
    if isinstance(default, float):
        return {f"{default:g}", str(default)}
    return {str(default)}


@pytest.mark.parametrize("module_name", TOOLS)
def test_every_option_with_a_default_states_it_once_in_its_help(module_name):
    flags = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)
    missing = []
    for where, action in all_options(tool_parser(module_name)):
        if isinstance(action, flags) or action.default in (None, "", []):
            continue
        text = action.help or ""
        if text.lower().count("default") != 1 or not any(s in text for s in spellings(action.default)):
            missing.append(f"{where}{action.option_strings[0]} (default {action.default!r}): {text!r}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("module_name, argv, dest, value", [
    # crop.py's --every was --detect-every everywhere else
    ("phase3_first_order_motion.crop", ["--input", "a.mp4", "--output", "b.mp4", "--every", "3"],
     "detect_every", 3),
    # extract.py's --every is reconstruct.py's --frame-step (use every N-th frame)
    ("phase1_face_swap.extract", ["--input", "a.mp4", "--output", "faces", "--every", "2"], "frame_step", 2),
    # swap_video.py's --model is every other tool's --checkpoint (a file or a run folder)
    ("phase1_face_swap.swap_video", ["--model", "m.pt", "--input", "a.mp4", "--output", "b.mp4"],
     "checkpoint", Path("m.pt")),
    # folders the results go in: --output, as in extract.py
    ("common.synthetic.__main__", ["--out", "data"], "output", "data"),
    ("tools.demo", ["--out", "outputs2"], "output", Path("outputs2")),
    # consent add: a kind of output (image, video, audio), not a file to write
    ("consent_and_watermark.__main__",
     ["consent", "add", "--subject", "a", "--name", "A", "--granted-by", "A", "--evidence", "e.pdf",
      "--output", "video"], "output_kind", ["video"]),
    # swap_video.py's spelling beside the published Wav2Lip --nosmooth
    ("phase4_audio_driven.wav2lip", ["--face", "f.mp4", "--audio", "a.wav", "--checkpoint", "c.pth",
                                     "--output", "o.mp4", "--no-smooth"], "nosmooth", True),
])
def test_old_spellings_of_renamed_flags_still_work(module_name, argv, dest, value):
    args = tool_parser(module_name).parse_args(argv)
    assert getattr(args, dest) == value


@pytest.mark.parametrize("module_name", ["phase1_face_swap.swap_video", "phase2_face_reenactment.reenact",
                                         "phase3_first_order_motion.crop", "phase4_audio_driven.wav2lip"])
def test_the_face_detector_interval_has_one_name(module_name):
    assert "--detect-every" in tool_parser(module_name)._option_string_actions
