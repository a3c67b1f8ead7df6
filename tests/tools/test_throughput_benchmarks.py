"""benchmarks/wav2lip_throughput.py and benchmarks/fomm_throughput.py: the settings they refuse, their
timing helpers, the synthetic input, FOMM's two paths agreeing, and the printed figures (frames/s,
speed-up, stage table, marginal throughput) against the definitions, on known fake times. The scripts
are loaded as modules; the clocks, the command-line tool and the expensive stages are replaced by fakes
where a figure is checked."""

from __future__ import annotations

import functools
import io
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import load_script

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@functools.cache
def bench(name: str):
    """benchmarks/<name>.py as a module (importing it runs no benchmark)."""
    return load_script(BENCHMARKS / f"{name}.py", f"bench_{name}")


def fake_clock(*ticks: float):
    it = iter(ticks)
    return lambda: next(it)


class Clock:
    """A clock that moves only when a fake says so."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Refused(Exception):
    pass


class FakeParser:
    def error(self, message: str):
        raise Refused(message)


def last_error_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


# ---------------------------------------------------------------- wav2lip_throughput: arguments


def w2l_args(**changes) -> SimpleNamespace:
    args = dict(seconds=10.0, height=720, device="cpu", batch_size=16, threads=0, width=1.0, runs=1,
                detect_every=1, marginal=False)
    args.update(changes)
    return SimpleNamespace(**args)


@pytest.mark.parametrize("changes, flag", [
    ({"seconds": 0.0}, "--seconds"),
    ({"seconds": -1.0}, "--seconds"),
    ({"seconds": 0.19}, "--seconds"),  # no 0.2 s audio window: wav2lip.py would refuse the clip
    ({"marginal": True, "seconds": 0.39}, "--seconds"),  # the half clip would be under 0.2 s
    ({"height": 31}, "--height"),
    ({"height": 30}, "--height"),  # even, but under 32
    ({"height": 721}, "--height"),  # odd
    ({"batch_size": 0}, "--batch-size"),
    ({"detect_every": 0}, "--detect-every"),
    ({"runs": -1}, "--runs"),
    ({"threads": -1}, "--threads"),
    ({"width": 0.0}, "--width"),
    ({"width": -0.5}, "--width"),
    ({"marginal": True, "runs": 0}, "--marginal"),
])
def test_wav2lip_check_args_refuses_settings_it_cannot_run_with(changes, flag):
    with pytest.raises(Refused, match=flag):
        bench("wav2lip_throughput").check_args(FakeParser(), w2l_args(**changes))


@pytest.mark.parametrize("changes", [
    {}, {"seconds": 0.2}, {"marginal": True, "seconds": 0.4}, {"height": 32}, {"height": 34},
    {"batch_size": 1}, {"detect_every": 1},
    {"runs": 0}, {"threads": 0}, {"width": 0.01}, {"marginal": True, "runs": 1},
])
def test_wav2lip_check_args_accepts_the_boundaries(changes):
    bench("wav2lip_throughput").check_args(FakeParser(), w2l_args(**changes))


@pytest.mark.parametrize("argv, words", [
    (["--batch-size", "0"], "--batch-size and --detect-every must be at least 1"),
    (["--height", "33"], "--height must be even"),
    (["--marginal", "--runs", "0"], "--marginal compares with the full-length run"),
])
def test_wav2lip_main_refuses_with_exit_2_and_one_error_line(argv, words, monkeypatch, capsys):
    w2l = bench("wav2lip_throughput")
    monkeypatch.setattr(w2l, "run_benchmark", lambda *a: pytest.fail("ran with refused settings"))
    with pytest.raises(SystemExit) as exc:
        w2l.main(argv)
    assert exc.value.code == 2
    line = last_error_line(capsys)  # argparse's "<prog>: error: ..." after the usage
    assert ": error: " in line and words in line


@pytest.mark.parametrize("argv, threads", [
    ([], []),  # as the tool on a CPU: torch's default
    (["--threads", "3"], [3]),
    (["--threads", "1"], [1]),
    (["--device", "cuda"], [1]),  # as wav2lip.py on a GPU
    (["--device", "cuda:0"], [1]),
    (["--device", "cuda:1", "--threads", "2"], [2]),
])
def test_wav2lip_main_sets_torch_threads_as_the_tool_does(argv, threads, monkeypatch):
    w2l = bench("wav2lip_throughput")
    monkeypatch.setenv("DEEPFAKE_DATA_DIR", "/nonexistent/data")
    monkeypatch.setenv("DEEPFAKE_CONFIG_DIR", "/nonexistent/config")
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(w2l, "run_benchmark", lambda args, folder: 0)
    assert w2l.main(argv) == 0
    assert calls == threads


def test_wav2lip_main_runs_in_a_temporary_ledger_and_key_folder(monkeypatch):
    w2l = bench("wav2lip_throughput")
    monkeypatch.setenv("DEEPFAKE_DATA_DIR", "/nonexistent/data")
    monkeypatch.setenv("DEEPFAKE_CONFIG_DIR", "/nonexistent/config")
    seen = {}

    def fake_run(args, folder):
        seen.update(args=args, folder=folder, exists=folder.is_dir(), data=os.environ["DEEPFAKE_DATA_DIR"],
                    config=os.environ["DEEPFAKE_CONFIG_DIR"])
        return 5

    monkeypatch.setattr(w2l, "run_benchmark", fake_run)
    assert w2l.main(["--seconds", "2", "--batch-size", "8", "--detect-every", "3", "--marginal"]) == 5
    folder = seen["folder"]
    assert seen["exists"] and not folder.exists()  # removed afterwards
    assert seen["data"] == str(folder / "data") and seen["config"] == str(folder / "config")
    args = seen["args"]
    assert (args.seconds, args.batch_size, args.detect_every, args.marginal) == (2.0, 8, 3, True)
    w2l.main([])
    args = seen["args"]  # the defaults: 10 s at 720p, the published width, 16 faces per call, one run
    assert (args.seconds, args.height, args.width, args.batch_size, args.runs) == (10.0, 720, 1.0, 16, 1)
    assert (args.threads, args.device, args.detect_every, args.marginal) == (0, "cpu", 1, False)


# ---------------------------------------------------------------- wav2lip_throughput: timed, make_input


def test_wav2lip_timed_records_wall_and_cpu_time_of_the_call(monkeypatch):
    w2l = bench("wav2lip_throughput")
    monkeypatch.setattr(w2l, "time", SimpleNamespace(perf_counter=fake_clock(10.0, 12.5),
                                                     process_time=fake_clock(1.0, 1.75)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: pytest.fail("synchronized without CUDA"))
    results, cpu, calls = {"other": 1.0}, {}, []
    assert w2l.timed("stage", lambda: calls.append(1) or "value", results, cpu) == "value"
    assert calls == [1]
    assert results == {"other": 1.0, "stage": pytest.approx(2.5)}
    assert cpu == {"stage": pytest.approx(0.75)}


def test_wav2lip_timed_waits_for_cuda_before_reading_the_clock(monkeypatch):
    w2l = bench("wav2lip_throughput")
    events = []

    def clock():
        events.append("clock")
        return float(len(events))

    monkeypatch.setattr(w2l, "time", SimpleNamespace(perf_counter=clock, process_time=lambda: 0.0))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: events.append("sync"))
    w2l.timed("stage", lambda: events.append("fn"), {}, {})
    assert events == ["clock", "fn", "sync", "clock"]


def test_make_input_renders_a_16_9_clip_with_the_face_centred(tmp_path, monkeypatch):
    from common.synthetic import make_identity, render_clip, synthesize_speech
    from consent_and_watermark import consent, writer

    w2l = bench("wav2lip_throughput")
    saved = {}

    def save_video(path, frames, fps, **kwargs):
        saved["video"] = (Path(path), np.array(frames), fps, kwargs)
        return Path(path)

    def save_audio(path, samples, rate):
        saved["audio"] = (Path(path), np.array(samples), rate)
        return Path(path)

    monkeypatch.setattr(writer, "save_video", save_video)
    monkeypatch.setattr(writer, "save_audio", save_audio)
    monkeypatch.setattr(consent, "register_synthetic_identity", lambda subject, name: f"id:{subject}")
    seconds, height = 0.35, 38  # 8.75 frames: rounds to 9 (int() would give 8); width 67, margin 14 and 15
    face, audio, ids = w2l.make_input(tmp_path, seconds, height)
    assert ids == ["id:synthetic-bench-3", "id:synthetic-bench-voice-7"]  # the face's first, then the voice's
    path, canvas, fps, kwargs = saved["video"]
    assert face == path and path.parent == tmp_path and fps == 25.0 and kwargs.get("label") is False
    width = 67  # 38 * 16 // 9
    assert canvas.shape == (9, height, width, 3)
    grey = np.array([60, 70, 80], np.uint8)
    assert np.all(canvas[:, :, :14] == grey) and np.all(canvas[:, :, 14 + height:] == grey)
    assert canvas[:, :, 14 + height:].shape[2] == 15
    import cv2

    clip = render_clip(make_identity(3), frames=9, size=256)
    for i in (0, 8):
        expected = cv2.resize(clip.frames[i], (height, height), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(canvas[i, :, 14:14 + height], expected)
    apath, samples, rate = saved["audio"]
    speech = synthesize_speech(seconds, seed=7)
    assert audio == apath and apath.parent == tmp_path and rate == speech.sample_rate
    np.testing.assert_array_equal(samples, speech.samples)


# ---------------------------------------------------------------- wav2lip_throughput: run_benchmark

# Fake (wall, CPU) seconds per stage, by the label's first word; indented rows are the writer's halves.
STAGE_TIMES = {
    "decode": (0.5, 0.4), "detect": (2.0, 0.9), "mel": (0.1, 0.05), "crop": (0.2, 0.1),
    "generate": (4.0, 7.0), "paste": (0.3, 0.2), "marking": (1.0, 1.8), "encoding": (0.6, 1.1),
    "encode": (1.5, 2.6),
}
DETECT_CPU_PER_CALL = 0.04  # what the fake in-process detector costs per frame, in CPU seconds
ROW = re.compile(r"^  (?P<label>.+?)\s+(?P<s>\d+\.\d+) s\s+(?P<fps>\d+\.\d+) fps"
                 r"(\s+CPU\s+(?P<cpu>\d+\.\d+) ms)?$")


class FakeCli:
    """wav2lip.py's main: advances the fake wall clock by a known time per run, records its argv."""

    def __init__(self, clock: Clock, full: list[float], half: float) -> None:
        self.clock, self.full, self.half = clock, list(full), half
        self.calls, self.checkpoints = [], []

    def __call__(self, argv: list[str]) -> int:
        from consent_and_watermark import writer

        assert writer.get_context() == writer.OutputContext()  # each run starts from the default context
        self.calls.append(argv)
        self.checkpoints.append(Path(argv[argv.index("--checkpoint") + 1]).is_file())
        face = Path(argv[argv.index("--face") + 1])
        self.clock.now += self.half if face.parent.name == "half" else self.full.pop(0)
        writer.set_context(writer.OutputContext(technique="lipsync"))  # as the tool leaves it
        return 0


@pytest.fixture
def faked_run(monkeypatch):
    """Replace the stage timer, the clocks, the in-process detector and wav2lip.py's main by fakes;
    returns what they saw."""
    from phase4_audio_driven import pipeline
    from phase4_audio_driven import wav2lip as cli

    w2l = bench("wav2lip_throughput")
    monkeypatch.setenv("DEEPFAKE_DATA_DIR", "/nonexistent/data")  # main() points them at its temp folder
    monkeypatch.setenv("DEEPFAKE_CONFIG_DIR", "/nonexistent/config")
    seen = SimpleNamespace(values={}, order=[], boxes=[], inputs=[], windows=[], wall=Clock(), cpu=Clock(5.0),
                           batches=0, batches_before={})

    def fake_timed(label, fn, results, cpu):
        key = label.split()[0]
        seen.batches_before[key] = seen.batches
        value = fn()
        seen.values[key], seen.order = value, seen.order + [label]
        results[label], cpu[label] = STAGE_TIMES[key]
        return value

    real_detect_box = pipeline.detect_box

    def spy_detect_box(frame, *args, **kwargs):
        if args or kwargs:  # the pipeline's own detection (a box config and the worker processes)
            return real_detect_box(frame, *args, **kwargs)
        seen.cpu.now += DETECT_CPU_PER_CALL  # the benchmark's in-process sample: a known cost instead
        return None

    real_boxes = pipeline.face_boxes

    def spy_boxes(frames, cfg=None, *args, **kwargs):
        cfg = pipeline.BoxConfig() if cfg is None else cfg
        boxes = real_boxes(frames, cfg, *args, **kwargs)
        seen.boxes.append((cfg.detect_every, boxes))
        return boxes

    real_input, real_generator_input = w2l.make_input, pipeline.generator_input

    def spy_generator_input(*args, **kwargs):
        seen.batches += 1
        return real_generator_input(*args, **kwargs)

    def spy_input(folder, seconds, height):
        out = real_input(folder, seconds, height)
        seen.inputs.append((folder, seconds, height, out))
        seen.windows.append(mel_windows(out[1]))  # while the files are there
        return out

    monkeypatch.setattr(w2l, "timed", fake_timed)
    monkeypatch.setattr(w2l, "make_input", spy_input)
    monkeypatch.setattr(w2l, "time", SimpleNamespace(perf_counter=seen.wall, process_time=seen.cpu))
    monkeypatch.setattr(pipeline, "detect_box", spy_detect_box)
    monkeypatch.setattr(pipeline, "face_boxes", spy_boxes)
    monkeypatch.setattr(pipeline, "generator_input", spy_generator_input)
    seen.cli = lambda full, half: monkeypatch.setattr(cli, "main", FakeCli(seen.wall, full, half)) or cli.main
    return seen


def rows_of(out: str) -> dict[str, dict[str, float]]:
    rows = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            rows[m["label"]] = {k: float(v) for k, v in m.groupdict().items() if k != "label" and v}
    return rows


def mel_windows(audio: Path) -> int:
    from common.impl import load
    from common.media import read_audio

    enc = load("phase4_audio_driven", "audio_encoder")
    return len(enc.mel_chunks(enc.melspectrogram(read_audio(audio, 16000)[0]), 25.0))


def test_wav2lip_stage_table_end_to_end_runs_and_marginal_figures(faked_run, capsys):
    w2l = bench("wav2lip_throughput")
    cli = faked_run.cli([4.0, 3.5], 2.0)
    argv = ["--seconds", "1.2", "--height", "240", "--width", "0.25", "--batch-size", "4", "--threads", "1",
            "--runs", "2", "--detect-every", "2", "--marginal"]
    assert w2l.main(argv) == 0
    out = capsys.readouterr().out
    v = faked_run.values
    frames = len(v["decode"])
    assert frames == 30  # 1.2 s at 25 fps
    n = min(frames, len(v["mel"]))
    assert len(v["crop"]) == len(v["generate"]) == len(v["paste"]) == n < frames
    assert f"stages on {n} frames of 426x240 ({frames} decoded; " in out  # 240 * 16 // 9 wide
    from phase4_audio_driven.pipeline import crop

    for i in (0, n - 1):  # the stages work on each frame's own box
        np.testing.assert_array_equal(v["crop"][i], crop(v["decode"][i], v["detect"][i]))

    # stage rows: fps = frames handled / seconds (decode and detect see all frames, the rest n); CPU per
    # frame handled; the detector's in-process cost added per detection
    rows = rows_of(out)
    labels = faked_run.order
    assert [label for label in rows if label != "sum of stages"] == labels
    cpu = {k: c for k, (_, c) in STAGE_TIMES.items()}
    cpu["detect"] += DETECT_CPU_PER_CALL * frames / 2  # every 2nd frame detected
    for label in labels:
        key, row = label.split()[0], rows[label]
        wall = STAGE_TIMES[key][0]
        assert row["s"] == pytest.approx(wall, abs=0.006), label
        seen = frames if key in ("decode", "detect") else n
        assert row["fps"] == pytest.approx(seen / wall, abs=0.06), label
        assert row["cpu"] == pytest.approx(1e3 * cpu[key] / seen, abs=0.06), label
    from common.impl import load

    params = sum(p.numel() for p in load("phase4_audio_driven", "model").Wav2Lip(0.25).parameters())
    assert f"generate ({params / 1e6:.1f} M params, batch 4)" in labels
    # the sum leaves out the writer's two halves (indented): they are inside "encode + mark"
    total = sum(w for k, (w, _) in STAGE_TIMES.items() if k not in ("marking", "encoding"))
    assert rows["sum of stages"]["s"] == pytest.approx(total, abs=0.006)
    assert rows["sum of stages"]["fps"] == pytest.approx(n / total, abs=0.06)
    host = sum(c for k, c in cpu.items() if k not in ("marking", "encoding")) / n
    cores = len(os.sched_getaffinity(0))
    m = re.search(r"host CPU per frame ([\d.]+) core-ms: at most (\d+) fps on these (\d+) cores", out)
    assert m and float(m[1]) == pytest.approx(1e3 * host, abs=0.06)
    assert int(m[2]) == round(cores / host) and int(m[3]) == cores

    # --detect-every 2: the boxes against every-frame detection
    (every, boxes), (every_exact, exact) = faked_run.boxes
    assert (every, every_exact) == (2, 1)
    diff = np.abs(boxes.astype(float) - exact)
    m = re.search(r"boxes with --detect-every 2 differ from every-frame detection by ([\d.]+) px on average "
                  r"\(max (\d+) px\)", out)
    assert m and float(m[1]) == pytest.approx(diff.mean(), abs=0.006) and int(m[2]) == diff.max()

    # the command-line tool: as many runs as asked, each timed, with the benchmark's settings
    full = [re.search(rf"end to end, run {r} .*: ([\d.]+) s for (\d+) frames = ([\d.]+) fps", out)
            for r in (1, 2)]
    assert "run 3" not in out
    for m, seconds in zip(full, (4.0, 3.5), strict=True):
        assert m and float(m[1]) == seconds and int(m[2]) == n and float(m[3]) == pytest.approx(n / seconds,
                                                                                               abs=0.06)
    (folder, _, _, (face, audio, consent)), (half_folder, half_s, half_h, half_in) = faked_run.inputs
    assert (half_folder.parent, half_s, half_h) == (folder, 0.6, 240)
    assert len(cli.calls) == 3 and cli.checkpoints == [True] * 3
    for argv_run, (f, a) in zip(cli.calls, [(face, audio), (face, audio), half_in[:2]], strict=True):
        opts = {argv_run[i]: argv_run[i + 1] for i in range(0, len(argv_run), 2)
                if argv_run[i] != "--consent"}
        assert (opts["--face"], opts["--audio"]) == (str(f), str(a))
        assert (opts["--batch-size"], opts["--detect-every"], opts["--device"]) == ("4", "2", "cpu")
        assert [argv_run[i + 1] for i, x in enumerate(argv_run) if x == "--consent"] == list(consent)

    # --marginal: the half-length clip's extra frames against the last full-length run's extra time
    n_half = min(15, faked_run.windows[1])  # 0.6 s: 15 frames
    extra = 3.5 - 2.0
    m = re.search(r"half-length clip: ([\d.]+) s for (\d+) frames; marginal throughput ([\d.]+) fps "
                  r"\(the last (\d+) frames\), fixed cost about (-?[\d.]+) s per run", out)
    assert m, out
    assert float(m[1]) == 2.0 and int(m[2]) == n_half and int(m[4]) == n - n_half
    assert float(m[3]) == pytest.approx((n - n_half) / extra, abs=0.06)
    assert float(m[5]) == pytest.approx(2.0 - n_half * extra / (n - n_half), abs=0.006)


def test_wav2lip_without_marginal_runs_the_tool_once_per_run_on_the_full_clip(faked_run, capsys):
    w2l = bench("wav2lip_throughput")
    cli = faked_run.cli([2.5], 99.0)
    argv = ["--seconds", "0.4", "--height", "240", "--width", "0.25", "--batch-size", "3", "--threads", "1"]
    assert w2l.main(argv) == 0
    out = capsys.readouterr().out
    v = faked_run.values
    n = min(len(v["decode"]), len(v["mel"]))
    assert n % 3 == 1 and len(v["generate"]) == n  # batches of 3, 3, ..., 1: the last frame is generated
    # the generator ran once over the clip (warm-up) before the timed pass, and once more in it
    assert faked_run.batches_before["generate"] == faked_run.batches_before["paste"] // 2 == (n + 2) // 3
    assert f"end to end, run 1 (wav2lip.py, streaming, incl. model load): 2.50 s for {n} frames" in out
    assert len(cli.calls) == 1 and len(faked_run.inputs) == 1 and "half-length" not in out


def test_wav2lip_marginal_with_a_half_clip_as_long_as_the_full_one_prints_a_message(faked_run, monkeypatch,
                                                                                    capsys):
    w2l = bench("wav2lip_throughput")
    faked_run.cli([3.0], 3.0)
    spy = w2l.make_input
    # the "half" clip is as long as the full one (a real half clip this short could not run the tool)
    monkeypatch.setattr(w2l, "make_input", lambda folder, seconds, height: spy(folder, 0.4, height))
    argv = ["--seconds", "0.4", "--height", "240", "--width", "0.25", "--batch-size", "8", "--threads", "1",
            "--marginal"]
    assert w2l.main(argv) == 0
    out = capsys.readouterr().out
    n = min(len(faked_run.values["decode"]), len(faked_run.values["mel"]))
    assert (f"end to end, half-length clip: {n} frames, as many as the full clip's {n}: too short for a "
            "marginal figure") in out
    assert "marginal throughput" not in out
    assert "boxes with --detect-every" not in out  # every frame detected: no accuracy line
    assert [every for every, _ in faked_run.boxes] == [1]


# ---------------------------------------------------------------- fomm_throughput: arguments, helpers


class Accepted(Exception):
    pass


@pytest.mark.parametrize("argv, words", [
    (["--frames", "0"], "--frames and --batch-size must be at least 1"),
    (["--batch-size", "0"], "--frames and --batch-size must be at least 1"),
    (["--threads", "-1"], "--threads and --profile cannot be negative"),
    (["--profile", "-1"], "--threads and --profile cannot be negative"),
])
def test_fomm_main_refuses_with_exit_2_and_one_error_line(argv, words, monkeypatch, capsys):
    fomm = bench("fomm_throughput")
    monkeypatch.setattr(fomm, "pick_device", lambda *a: pytest.fail("ran with refused settings"))
    with pytest.raises(SystemExit) as exc:
        fomm.main(argv)
    assert exc.value.code == 2
    assert words in last_error_line(capsys)


@pytest.mark.parametrize("argv", [
    [], ["--frames", "1", "--batch-size", "1"], ["--threads", "0", "--profile", "0"], ["--threads", "1"],
])
def test_fomm_main_accepts_the_boundaries(argv, monkeypatch):
    fomm = bench("fomm_throughput")

    def stop(*a):
        raise Accepted

    monkeypatch.setattr(fomm, "pick_device", stop)
    with pytest.raises(Accepted):
        fomm.main(argv)


def test_fomm_device_name_is_the_cpu_model_or_the_gpu_name(monkeypatch):
    fomm = bench("fomm_throughput")
    cpuinfo = ("processor\t: 0\nvendor_id\t: Acme\nmodel\t\t: 85\nmodel name\t: Acme CPU @ 3.00GHz: rev 2 \n"
               "flags\t: x\n")
    monkeypatch.setattr(fomm, "open", lambda path: io.StringIO(cpuinfo), raising=False)
    assert fomm.device_name(torch.device("cpu")) == "Acme CPU @ 3.00GHz: rev 2"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"Fake GPU {device}")
    assert fomm.device_name(torch.device("cuda", 1)) == "Fake GPU cuda:1"


def test_fomm_device_name_falls_back_to_the_platform(monkeypatch):
    fomm = bench("fomm_throughput")
    monkeypatch.setattr(fomm.platform, "processor", lambda: "armv9")
    monkeypatch.setattr(fomm, "open", lambda path: io.StringIO("processor\t: 0\nBogoMIPS\t: 50\n"),
                        raising=False)
    assert fomm.device_name(torch.device("cpu")) == "armv9"  # no "model name" line

    def unreadable(path):
        raise OSError("no /proc")

    monkeypatch.setattr(fomm, "open", unreadable, raising=False)
    assert fomm.device_name(torch.device("cpu")) == "armv9"
    monkeypatch.setattr(fomm.platform, "processor", lambda: "")
    assert fomm.device_name(torch.device("cpu")) == "cpu"


def test_fomm_timed_syncs_cuda_around_the_call_and_returns_wall_and_cpu(monkeypatch):
    fomm = bench("fomm_throughput")
    events = []
    monkeypatch.setattr(fomm, "time", SimpleNamespace(perf_counter=fake_clock(3.0, 7.5),
                                                      process_time=fake_clock(1.0, 2.25)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: events.append(("sync", device)))
    cuda = torch.device("cuda", 0)
    result, wall, cpu = fomm.timed(lambda: events.append("fn") or "out", cuda)
    assert result == "out" and wall == pytest.approx(4.5) and cpu == pytest.approx(1.25)
    assert events == [("sync", cuda), "fn", ("sync", cuda)]
    events.clear()
    monkeypatch.setattr(fomm, "time", SimpleNamespace(perf_counter=fake_clock(0.0, 1.0),
                                                      process_time=fake_clock(0.0, 1.0)))
    fomm.timed(lambda: events.append("fn"), torch.device("cpu"))
    assert events == ["fn"]  # no CUDA call on a CPU


class RecordingAnimator:
    """What `batched` asks of an Animator; its render returns the frames' first pixel per frame."""

    def __init__(self) -> None:
        self.calls = []

    def set_source(self, source):
        self.calls.append(("source", int(source[0, 0, 0])))

    def initial_keypoints(self, frame):
        self.calls.append(("initial", int(frame[0, 0, 0])))
        return "kp0"

    def render(self, frames, kp_initial, relative, adapt_scale):
        self.calls.append(("render", [int(f[0, 0, 0]) for f in frames], kp_initial, relative, adapt_scale))
        return frames[:, :1, :1] + 100


def test_fomm_batched_renders_batch_size_frames_per_call_relative_to_the_first():
    fomm = bench("fomm_throughput")
    animator = RecordingAnimator()
    source = np.full((2, 2, 3), 9, np.uint8)
    driving = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (1, 2, 3, 4, 5)])
    out = fomm.batched(animator, source, driving, 2)
    assert animator.calls == [
        ("source", 9), ("initial", 1),
        ("render", [1, 2], "kp0", True, True), ("render", [3, 4], "kp0", True, True),
        ("render", [5], "kp0", True, True),
    ]
    np.testing.assert_array_equal(out[:, 0, 0, 0], [101, 102, 103, 104, 105])


# ---------------------------------------------------------------- fomm_throughput: the two paths


@pytest.fixture(scope="module")
def tiny_fomm():
    """The tiny config's networks (seeded random weights) and 1 + 5 smooth random frames, as main()."""
    from common.impl import load

    torch.manual_seed(0)
    model = load("phase3_first_order_motion", "model")
    config = model.get_config("tiny")
    models = model.build_fomm(config)
    for name in ("kp_detector", "generator"):
        models[name].eval()
    with torch.no_grad():  # its Jacobian head starts at zero weights (the identity for every frame)
        models["kp_detector"].jacobian.weight.normal_(0.0, 1e-3)
    g = torch.Generator().manual_seed(1)
    low = torch.rand(6, 3, 8, 8, generator=g)
    size = config.frame_size
    frames = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(0, 1)
    frames_u8 = (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    as_float = torch.from_numpy(frames_u8).permute(0, 3, 1, 2).float() / 255
    return models, frames_u8[0], frames_u8[1:], as_float[:1], as_float[1:]


def test_fomm_batched_path_matches_the_one_frame_per_call_baseline(tiny_fomm):
    from phase3_first_order_motion.animate import Animator

    fomm = bench("fomm_throughput")
    models, source_u8, driving_u8, source, driving = tiny_fomm
    cpu = torch.device("cpu")
    with torch.no_grad():
        reference = fomm.baseline_loop(models, source, driving, cpu)
    assert reference.shape == (5, 3, 64, 64) and reference.dtype == torch.float32
    assert float((reference[1:] - reference[:1]).abs().max()) > 1e-3  # the frames do move
    animator = Animator(models, cpu, "fp32", False, False)
    ours = fomm.predictions(animator, source_u8, driving, 2)  # batches of 2, 2 and 1
    assert ours.shape == reference.shape and ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
    frames = fomm.batched(animator, source_u8, driving_u8, 3)
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.uint8
    rounded = (reference.clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(frames.astype(float) - rounded).max() <= 1


# ---------------------------------------------------------------- fomm_throughput: main's figures


def figures(out: str, name: str) -> tuple[float, float]:
    m = re.search(rf"^{re.escape(name)}\s+([\d.]+) frames/s wall,\s+([\d.]+) CPU-s/frame$", out, re.M)
    assert m, out
    return float(m[1]), float(m[2])


def test_fomm_predictions_are_float32_whatever_the_precision(tiny_fomm):
    from phase3_first_order_motion.animate import Animator

    fomm = bench("fomm_throughput")
    models, source_u8, _, source, driving = tiny_fomm
    cpu = torch.device("cpu")
    ours = fomm.predictions(Animator(models, cpu, "bf16", False, False), source_u8, driving[:2], 2)
    assert ours.dtype == torch.float32 and ours.shape == (2, 3, 64, 64)
    with torch.no_grad():
        reference = fomm.baseline_loop(models, source, driving[:2], cpu)
    torch.testing.assert_close(ours, reference, atol=0.1, rtol=0)  # bf16: about 3 significant digits


def test_fomm_main_prints_fps_speed_up_and_difference_with_the_default_batch(monkeypatch, capsys):
    fomm = bench("fomm_throughput")
    # baseline: 3.0 s wall, 1.5 s CPU; ours: 0.75 s wall, 0.6 s CPU (for 3 frames)
    monkeypatch.setattr(fomm, "time", SimpleNamespace(perf_counter=fake_clock(0.0, 3.0, 10.0, 10.75),
                                                      process_time=fake_clock(1.0, 2.5, 3.0, 3.6)))
    assert fomm.main(["--config", "tiny", "--frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "config tiny (64x64), 3 driving frames" in out
    assert figures(out, "baseline (1 frame per call, fp32)") == (pytest.approx(1.0), pytest.approx(0.5))
    assert figures(out, "ours (batch 2, fp32)") == (pytest.approx(4.0), pytest.approx(0.2))  # 2 on a CPU
    assert "speed-up: 4.00x wall clock, 2.50x in process CPU time" in out
    m = re.search(r"max \|ours - baseline fp32\|: (\S+) \(mean (\S+)\)", out)
    assert m and 0 <= float(m[2]) <= float(m[1]) < 1e-4


def test_fomm_main_passes_its_settings_to_both_paths(monkeypatch, capsys):
    fomm = bench("fomm_throughput")
    seen = []

    class FakeAnimator:
        def __init__(self, models, device, precision, channels_last, compile_):
            seen.append(("animator", device.type, precision, channels_last, compile_))

    def fake_baseline(models, source, driving, device):
        seen.append(("baseline", tuple(source.shape), len(driving)))
        return torch.zeros(len(driving), 3, 4, 4)

    def fake_batched(animator, source_u8, driving_u8, batch_size):
        seen.append(("batched", source_u8.shape, len(driving_u8), batch_size))

    def fake_predictions(animator, source_u8, driving, batch_size):
        seen.append(("predictions", len(driving), batch_size))
        out = torch.zeros(len(driving), 3, 4, 4)
        out[1, 2, 3, 0] = -0.5  # one value off by 0.5: max 0.5, mean 0.5 / 240
        return out

    monkeypatch.setattr(fomm, "Animator", FakeAnimator)
    monkeypatch.setattr(fomm, "baseline_loop", fake_baseline)
    monkeypatch.setattr(fomm, "batched", fake_batched)
    monkeypatch.setattr(fomm, "predictions", fake_predictions)
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    argv = ["--config", "tiny", "--frames", "5", "--batch-size", "3", "--precision", "bf16",
            "--channels-last", "--threads", "2"]
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        assert fomm.main(argv) == 0
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert tf32 == (False, False)  # fp32 on a GPU means fp32
    assert threads == [2]
    assert seen == [
        ("baseline", (1, 3, 64, 64), 2),  # warm-up on two frames
        ("baseline", (1, 3, 64, 64), 5),
        ("animator", "cpu", "bf16", True, False),
        ("batched", (64, 64, 3), 3, 3),  # warm-up: one batch of the timed size
        ("batched", (64, 64, 3), 5, 3),
        ("predictions", 5, 3),
    ]
    out = capsys.readouterr().out
    assert "ours (batch 3, bf16, channels_last)" in out and ", 5 driving frames" in out
    assert "max |ours - baseline fp32|: 5.000e-01 (mean 2.083e-03)" in out


def test_fomm_main_profiles_one_batch_when_asked(monkeypatch):
    fomm = bench("fomm_throughput")
    calls = []
    monkeypatch.setattr(fomm, "Animator", lambda *args: "animator")
    monkeypatch.setattr(fomm, "baseline_loop", lambda models, source, driving, dev: torch.zeros(len(driving)))
    monkeypatch.setattr(fomm, "batched", lambda *args: None)
    monkeypatch.setattr(fomm, "predictions", lambda animator, source, driving, bs: torch.zeros(len(driving)))
    monkeypatch.setattr(fomm, "profile", lambda *args: calls.append(args))
    assert fomm.main(["--config", "tiny", "--frames", "4", "--batch-size", "3"]) == 0
    assert calls == []  # not asked
    assert fomm.main(["--config", "tiny", "--frames", "4", "--batch-size", "3", "--profile", "1"]) == 0
    (animator, source_u8, driving_u8, batch_size, device, rows), = calls
    assert (animator, source_u8.shape, driving_u8.shape, batch_size, device.type, rows) == (
        "animator", (64, 64, 3), (3, 64, 64, 3), 3, "cpu", 1)  # one batch of the timed size


def table_rows(text: str) -> list[list[str]]:
    """The data rows of a torch.profiler table (between its second and third dashed lines)."""
    lines = text.splitlines()
    dashes = [i for i, line in enumerate(lines) if line.startswith("-----")]
    return [lines[i].split() for i in range(dashes[1] + 1, dashes[2])]


def test_fomm_profile_prints_the_costliest_ops_by_self_time(tiny_fomm, capsys):
    from phase3_first_order_motion.animate import Animator

    fomm = bench("fomm_throughput")
    models, source_u8, driving_u8, _, _ = tiny_fomm
    cpu = torch.device("cpu")
    fomm.profile(Animator(models, cpu, "fp32", False, False), source_u8, driving_u8[:2], 2, cpu, 3)
    out = capsys.readouterr().out
    by_op, by_shape = out.split("by input shapes (which layer):")
    for table in (by_op, by_shape):
        rows = table_rows(table)
        assert len(rows) == 3
        self_share = [float(row[1].rstrip("%")) for row in rows]
        assert self_share == sorted(self_share, reverse=True)  # by self CPU time, not time with children
    assert "Input Shapes" in by_shape and "Input Shapes" not in by_op
