"""Wav2Lip end-to-end throughput: decode, detect, generate, paste, encode a 720p clip.

    python benchmarks/wav2lip_throughput.py                    # CPU, full-size generator, 10 s at 720p
    python benchmarks/wav2lip_throughput.py --device cuda --batch-size 128
    python benchmarks/wav2lip_throughput.py --seconds 4 --threads 1    # shorter, on a shared machine

A synthetic person is rendered, upscaled into 1280x720 frames and written (with 10 s of synthetic
speech) to a temporary mp4. Then the stages are timed one by one, and the whole command-line tool
(`phase4_audio_driven/wav2lip.py`, which streams the same stages) end to end. The generator has
random weights of the published size (36.3 M parameters): speed does not depend on the values.
Targets (issue 5): >= 8 fps on 2 CPU cores, >= 300 fps on a GPU. Everything runs in a temporary
consent ledger and key folder, so the user's provenance log is not touched.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_input(folder: Path, seconds: float, height: int) -> tuple[Path, Path, str]:
    from common.synthetic import make_identity, render_clip, synthesize_speech
    from consent_and_watermark import writer
    from consent_and_watermark.consent import register_synthetic_identity

    person = make_identity(3)
    frames = int(round(seconds * 25))
    clip = render_clip(person, frames=frames, size=256)
    width = height * 16 // 9
    canvas = np.empty((frames, height, width, 3), np.uint8)
    canvas[:] = (60, 70, 80)
    x0 = (width - height) // 2
    for i, f in enumerate(clip.frames):
        canvas[i, :, x0 : x0 + height] = cv2.resize(f, (height, height), interpolation=cv2.INTER_LINEAR)
    face = writer.save_video(folder / "face720.mp4", canvas, 25.0, label=False)
    speech = synthesize_speech(seconds, seed=7)
    audio = writer.save_audio(folder / "speech.wav", speech.samples, speech.sample_rate)
    consent = [register_synthetic_identity("synthetic-bench-3", "Synthetic benchmark person"),  # the face
               register_synthetic_identity("synthetic-bench-voice-7", "Synthetic benchmark voice")]  # speech
    return face, audio, consent


def timed(label: str, fn, results: dict, cpu: dict):
    """Run fn(); record its wall time in results[label] and the CPU time of all this process's threads
    in cpu[label] (cores x seconds: what the stage costs the host, however well it is spread)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    results[label] = time.perf_counter() - start
    cpu[label] = time.process_time() - start_cpu
    return value


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One line and exit 2 for settings the benchmark cannot run with (argparse's own convention)."""
    if args.seconds < (0.4 if args.marginal else 0.2):  # wav2lip.py needs 0.2 s of audio, the half clip too
        parser.error("--seconds must be at least 0.2 (0.4 with --marginal): one audio window lasts 0.2 s")
    if args.height < 32 or args.height % 2:
        parser.error("--height must be even and at least 32 (the encoder needs even sides)")
    if min(args.batch_size, args.detect_every) < 1:
        parser.error("--batch-size and --detect-every must be at least 1")
    if args.runs < 0 or args.threads < 0:
        parser.error("--runs and --threads cannot be negative")
    if args.width <= 0:
        parser.error("--width must be positive")
    if args.marginal and args.runs < 1:
        parser.error("--marginal compares with the full-length run: give --runs 1 or more")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--height", type=int, default=720, help="frame height (default 720)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch-size", type=int, default=16, help="faces per generator call (default 16)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: as the tool, the default on a CPU, 1 with --device cuda)")
    parser.add_argument("--width", type=float, default=1.0, help="generator width (1 = published size)")
    parser.add_argument("--runs", type=int, default=1,
                        help="end-to-end runs of the command-line tool, each timed (default 1)")
    parser.add_argument("--detect-every", type=int, default=1, metavar="K",
                        help="detect the face on every K-th frame only (as wav2lip.py --detect-every)")
    parser.add_argument("--marginal", action="store_true",
                        help="also time the tool on a clip half as long: frames/s without the per-run costs")
    args = parser.parse_args(argv)
    check_args(parser, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.device.startswith("cuda"):
        torch.set_num_threads(1)  # as wav2lip.py does on a GPU: PyTorch's idle CPU threads spin
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["DEEPFAKE_DATA_DIR"] = str(folder / "data")
        os.environ["DEEPFAKE_CONFIG_DIR"] = str(folder / "config")
        return run_benchmark(args, folder)


def run_benchmark(args: argparse.Namespace, folder: Path) -> int:
    from common.detector_processes import DetectorProcesses
    from common.impl import load
    from common.media import iter_video, read_audio
    from common.parallel import worker_count
    from consent_and_watermark import writer
    from phase4_audio_driven import wav2lip as cli
    from phase4_audio_driven.pipeline import (
        BoxConfig,
        crop,
        detect_box,
        face_boxes,
        from_network,
        generator_input,
        paste,
    )

    audio_encoder = load("phase4_audio_driven", "audio_encoder")
    model = load("phase4_audio_driven", "model")
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    from common.parallel import ENV_OPENCV_THREADS

    opencv = os.environ.get(ENV_OPENCV_THREADS, "1")
    print(f"device: {device} ({card}); torch threads {torch.get_num_threads()}; cores {os.cpu_count()}; "
          f"OpenCV threads per call under our pools {opencv} (${ENV_OPENCV_THREADS})")

    face, audio, consent = make_input(folder, args.seconds, args.height)
    generator = model.Wav2Lip(args.width).eval().to(device)
    ckpt = folder / "generator.pth"
    torch.save(model.checkpoint_dict(generator, None, 0, 0), ckpt)
    n_params = sum(p.numel() for p in generator.parameters())

    t: dict[str, float] = {}
    c: dict[str, float] = {}
    frames = timed("decode", lambda: list(iter_video(face)), t, c)
    detect_label = "detect (HOG, <= 480 px copy, processes) + smooth"
    with DetectorProcesses(worker_count()) as detectors:
        detectors.detect(np.zeros((64, 64, 3), np.uint8))  # the workers have started
        cfg = BoxConfig(detect_every=args.detect_every)
        boxes = timed(detect_label, lambda: face_boxes(frames, cfg, detect=detectors.detect), t, c)
        if args.detect_every > 1:  # what skipping costs in accuracy: the boxes against every-frame ones
            exact = face_boxes(frames, detect=detectors.detect)
            print(f"boxes with --detect-every {args.detect_every} differ from every-frame detection by "
                  f"{np.abs(boxes - exact).mean():.2f} px on average (max {np.abs(boxes - exact).max()} px)")
    # The workers' CPU is not this process's: count the detector's cost per frame in this thread instead.
    sample = frames[:25]
    start_cpu = time.process_time()
    for frame in sample:
        detect_box(frame)
    c[detect_label] += (time.process_time() - start_cpu) * len(frames) / len(sample) / args.detect_every
    wav, _ = read_audio(audio, 16000)
    chunks = timed(
        "mel spectrogram", lambda: audio_encoder.mel_chunks(audio_encoder.melspectrogram(wav), 25.0), t, c
    )
    n = min(len(frames), len(chunks))
    crops = timed("crop + resize", lambda: np.stack([crop(frames[i], boxes[i]) for i in range(n)]), t, c)

    @torch.no_grad()
    def generate() -> np.ndarray:
        out = []
        for s in range(0, n, args.batch_size):
            mel = torch.from_numpy(np.ascontiguousarray(chunks[s : s + args.batch_size])).unsqueeze(1)
            faces = generator_input(crops[s : s + args.batch_size], device)
            out.append(from_network(generator(mel.to(device), faces)))
        return np.concatenate(out)

    generate()  # warm-up (cuDNN autotuning, allocator)
    gen_label = f"generate ({n_params / 1e6:.1f} M params, batch {args.batch_size})"
    faces = timed(gen_label, generate, t, c)
    pasted = timed("paste back", lambda: [paste(frames[i], boxes[i], faces[i]) for i in range(n)], t, c)
    from common.parallel import ordered_map
    from consent_and_watermark import encode
    from consent_and_watermark import watermark_image as wm
    from consent_and_watermark.label import draw_label

    # The writer's two halves timed apart (as benchmarks/provenance_cost.py does): its marker's label +
    # watermark on a pool, then the encoder alone into the temporary folder, deleted with it.
    key = bytes(32)
    marked = timed("  marking alone (label + watermark, threads)",
                   lambda: list(ordered_map(lambda f: wm.embed(draw_label(f), 1, key), pasted)), t, c)
    timed("  encoding alone (x264 veryfast)", lambda: encode.encode_mp4(folder / "e.mp4", marked, 25.0), t, c)
    timed(
        "encode + mark (writer.save_video)",
        lambda: writer.save_video(folder / "stage_out.mp4", pasted, 25.0, audio=wav, sample_rate=16000),
        t,
        c,
    )

    # Decoding and detection see every frame of the clip; the later stages only the n that audio covers.
    seen = {"decode": len(frames), detect_label: len(frames)}
    print(f"\nstages on {n} frames of {frames[0].shape[1]}x{frames[0].shape[0]} ({len(frames)} decoded; "
          "fps and CPU per frame each stage handled; CPU = all threads and the detector workers, in "
          "core-milliseconds per frame):")
    for label, seconds in t.items():
        k = seen.get(label, n)
        print(f"  {label:48s} {seconds:7.2f} s  {k / seconds:8.1f} fps  CPU {1e3 * c[label] / k:6.1f} ms")
    total = sum(v for k, v in t.items() if not k.startswith(" "))
    print(f"  {'sum of stages':48s} {total:7.2f} s  {n / total:8.1f} fps")
    # A ceiling no overlap of stages can beat: every output frame costs the host this much CPU (its
    # share of decoding and detecting the frames audio does not cover included), spread over its cores
    # (on a GPU the generator's CPU is mostly launching kernels, and counts too).
    host = sum(v for k, v in c.items() if not k.startswith(" ")) / n
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"  host CPU per frame {1e3 * host:.1f} core-ms: at most {cores / host:.0f} fps on these "
          f"{cores} cores even with perfect overlap")

    def cli_seconds(face_path: Path, audio_path: Path) -> float:
        writer.set_context(writer.OutputContext())
        argv = ["--face", str(face_path), "--audio", str(audio_path), "--checkpoint", str(ckpt),
                "--output", str(folder / "cli_out.mp4"), "--consent", consent[0], "--consent", consent[1],
                "--device", args.device,
                "--batch-size", str(args.batch_size), "--detect-every", str(args.detect_every)]
        start = time.perf_counter()
        cli.main(argv)
        return time.perf_counter() - start

    print()
    for run in range(1, args.runs + 1):
        seconds_full = cli_seconds(face, audio)
        print(f"end to end, run {run} (wav2lip.py, streaming, incl. model load): {seconds_full:.2f} s for "
              f"{n} frames = {n / seconds_full:.1f} fps on {card}")
    if args.marginal:
        # the same tool on a clip half as long: the difference in time from the last full-length run is
        # what the extra frames cost, without what every run pays once (loading the model, starting the
        # workers, the audio track)
        half = folder / "half"
        half.mkdir()
        face_half, audio_half, _ = make_input(half, args.seconds / 2, args.height)
        mel_half = audio_encoder.melspectrogram(read_audio(audio_half, 16000)[0])
        n_half = min(sum(1 for _ in iter_video(face_half)), len(audio_encoder.mel_chunks(mel_half, 25.0)))
        seconds_half = cli_seconds(face_half, audio_half)
        if n_half >= n:
            print(f"end to end, half-length clip: {n_half} frames, as many as the full clip's {n}: "
                  "too short for a marginal figure (give more --seconds)")
        else:
            extra = seconds_full - seconds_half  # what the last n - n_half frames cost
            print(f"end to end, half-length clip: {seconds_half:.2f} s for {n_half} frames; marginal "
                  f"throughput {(n - n_half) / extra:.1f} fps (the last {n - n_half} frames), fixed cost "
                  f"about {seconds_half - n_half * extra / (n - n_half):.2f} s per run")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
