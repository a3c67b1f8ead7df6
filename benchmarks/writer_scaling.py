"""Where the video writer's time goes on many cores: marking and encoding 720p frames, apart and together.

    python benchmarks/writer_scaling.py                        # 250 synthetic 720p frames, all cores
    python benchmarks/writer_scaling.py --frames 100 --threads 1 2

Why: on the 16-core H100 machine (IMPLEMENTATION_GUIDE.md, phase 4) marking alone ran at 430-570 fps
and x264 alone at ~265 fps, yet the writer doing both at once reached only 136-145 fps, below what
sharing the cores would predict. This script measures the candidate causes one at a time:

 0. the video watermark's grid tracking (`GridTracker`) alone, in order on one thread, as the writer's
    feeder thread runs it: the ceiling it puts on a video's frame rate;
 1. marking (visible label + invisible watermark) on a pool of 1, 2, 4, ... threads: does it scale?
 2. x264 alone, on frames marked beforehand, at three presets (and the bytes per frame each writes);
 3. the writer's pattern (`consent_and_watermark.encode.encode_mp4` over `ordered_map(mark, frames)`:
    marking on the pool while this thread feeds the encoder) with Python's default switch interval
    (5 ms) and with 0.5 ms. A thread that released the interpreter lock around a C call (the encoder)
    may wait up to one interval to get it back while the pool's threads hold it (the "convoy effect");
 4. the same with marking in worker processes, which share no interpreter lock (frames are copied
    over pipes both ways, 2.7 MB each).
For every row: frames per second (wall) and CPU per frame in core-milliseconds (all threads of this
process; in row 4 the workers' CPU is not included). "ideal" is what the two halves would reach if
they only shared the cores: 1 / (1 / marking + 1 / encoding) when both already use every core.
Frames only go to a temporary folder, deleted at the end; the user's provenance log is not touched.
Run it again with DEEPFAKE_KEEP_MEMORY=0 to see what keeping freed memory buys (common/memory.py); note
that rows 1-2 hold all frames in memory, where glibc's defaults re-fault less than in a stream. And with
DEEPFAKE_OPENCV_THREADS=-1 to give OpenCV back its own pool of one thread per core under ours
(common/parallel.py).

Measured on the 2 cores of the development machine (250 frames, load 1.2-1.5): marking 254 fps on one
thread, 417 on two; x264 veryfast 180 fps (superfast 245 at 3x the bytes, ultrafast 494); the writer's
pattern 116 fps against 126 predicted by sharing, at either switch interval; worker processes 66 fps.
On the H100 machine's 16 cores (third GPU session, IMPLEMENTATION_GUIDE.md phase 4): marking flattens at
8 threads (509-524 fps; 16 threads 385-458), x264 veryfast 192-202 fps, the writer's pattern 142-144 fps
against 133-135 predicted (so the writer now shares the cores as it should), worker processes 49-60 fps;
DEEPFAKE_KEEP_MEMORY=0 changed nothing there; OpenCV's own pool under ours (DEEPFAKE_OPENCV_THREADS=-1)
cost 20-24 core-ms of marking per frame against 15-17 with one OpenCV thread per call, and the writer's
pattern 84-88 fps against 101-108 (one call; that machine ran 2x slower in that call than in the first).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.parallel import one_opencv_thread, ordered_map, worker_count  # noqa: E402
from consent_and_watermark import encode  # noqa: E402
from consent_and_watermark import watermark_image as wm  # noqa: E402
from consent_and_watermark.label import draw_label  # noqa: E402

KEY = bytes(range(32))
PAYLOAD = 0x5EED_F00D_CAFE_D00D


def synthetic_frames(count: int, height: int = 720) -> list[np.ndarray]:
    """``count`` (H, 16H/9, 3) uint8 frames: a synthetic talking head, upscaled onto a grey background."""
    from common.synthetic import make_identity, render_clip

    clip = render_clip(make_identity(3), frames=min(count, 50), size=256).frames
    width = height * 16 // 9
    x0 = (width - height) // 2
    out = []
    for i in range(count):
        canvas = np.empty((height, width, 3), np.uint8)
        canvas[:] = (60, 70, 80)
        canvas[:, x0 : x0 + height] = cv2.resize(clip[i % len(clip)], (height, height))
        out.append(canvas)
    return out


def mark(frame: np.ndarray) -> np.ndarray:
    """What the writer does to every frame: the visible label, then the invisible watermark."""
    return wm.embed(draw_label(frame), PAYLOAD, KEY)


def measure(fn: Callable[[], object], frames: int) -> tuple[float, float]:
    """(frames per second, CPU core-ms per frame) of one call of fn."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return frames / wall, 1e3 * cpu / frames


def row(label: str, fps: float, cpu_ms: float, note: str = "") -> None:
    print(f"  {label:58s} {fps:7.1f} fps  CPU {cpu_ms:6.1f} ms/frame  {note}", flush=True)


def marked_in_processes(frames: Iterable[np.ndarray], workers: int) -> Iterable[np.ndarray]:
    """Marked frames, in order, from a pool of worker processes (started fresh: no inherited threads)."""
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        yield from pool.imap(mark, frames, chunksize=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=250, help="720p frames (default 250: 10 s at 25 fps)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="pool sizes to try for marking (default 1, 2, 4, ... up to the cores)")
    parser.add_argument("--presets", nargs="+", default=["veryfast", "superfast", "ultrafast"],
                        help="x264 presets for the encoder-alone rows (the writer uses veryfast)")
    args = parser.parse_args(argv)
    cores = worker_count()
    one_opencv_thread()  # as the project's first pool does; the row of one thread included
    sizes = args.threads or sorted({1, *[2**i for i in range(1, 5) if 2**i <= cores], cores})
    print(f"{args.frames} frames of 1280x720; {os.cpu_count()} cores, pools of up to {cores} threads "
          f"($DEEPFAKE_WORKERS); OpenCV's own threads per call {cv2.getNumThreads()} "
          f"($DEEPFAKE_OPENCV_THREADS); load average {os.getloadavg()[0]:.2f}")
    frames = synthetic_frames(args.frames)
    n = len(frames)
    mark(frames[0])  # the watermark's tile is cached after the first frame

    tracker = wm.GridTracker()
    fps, cpu = measure(lambda: [tracker(frame) for frame in frames], n)
    print("\n0. the grid's motion tracking (in order, on the thread that feeds the pool; its upper bound)")
    row("GridTracker, one thread", fps, cpu)

    print("\n1. marking alone (label + watermark) on a pool of threads")
    marked: list[np.ndarray] = []
    fps_mark = 0.0
    for size in sizes:
        fps, cpu = measure(lambda s=size: marked.extend(ordered_map(mark, frames, workers=s)), n)
        row(f"{size:2d} threads", fps, cpu, f"({fps / size:.0f} fps per thread)")
        fps_mark = fps if size == cores else fps_mark
        del marked[n:]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        print("\n2. x264 alone on frames marked beforehand (its own threads, as the writer runs it)")
        fps_encode = 0.0
        for preset in args.presets:
            fps, cpu = measure(lambda p=preset: encode.encode_mp4(out, marked[:n], 25.0, preset=p), n)
            row(f"preset {preset}", fps, cpu, f"{out.stat().st_size / n / 1e3:.0f} kB/frame")
            fps_encode = fps if preset == "veryfast" else fps_encode

        print("\n3. the writer's pattern: marking on the pool while this thread encodes (veryfast)")
        ideal = 1 / (1 / fps_mark + 1 / fps_encode) if fps_mark and fps_encode else float("nan")
        default_interval = sys.getswitchinterval()
        for interval in (default_interval, 0.0005):
            sys.setswitchinterval(interval)
            fps, cpu = measure(lambda: encode.encode_mp4(out, ordered_map(mark, frames), 25.0), n)
            row(f"switch interval {1e3 * interval:.1f} ms", fps, cpu, f"(ideal {ideal:.0f} fps)")
        sys.setswitchinterval(default_interval)

        print("\n4. marking in worker processes while this thread encodes (veryfast)")
        fps, cpu = measure(lambda: encode.encode_mp4(out, marked_in_processes(frames, cores), 25.0), n)
        row(f"{cores} processes", fps, cpu, "(CPU: this process only)")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
