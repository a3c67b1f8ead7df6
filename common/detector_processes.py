"""dlib's HOG face detector in worker processes, for video tools that must keep up with a GPU.

dlib's Python binding holds the global interpreter lock while it scans an image, so the threads of one
process detect one frame at a time: on a 16-core machine, 16 threads found faces in 720p video at
38 frames/s, slower than one thread (65). Separate processes do not share that lock. Each worker is a
small Python process (`python -m common.detector_processes`) that imports only NumPy and dlib, reads
frames from its stdin and writes the boxes it finds to its stdout:

    request:  height, width, upsample (3 x uint32, little-endian), then height x width x 3 bytes (RGB)
    answer:   one line, "left,top,right,bottom" per face separated by spaces (largest first), or "!" and
              an error message

    with DetectorProcesses(8) as detectors:   # starts 8 workers (each about 0.2 s, all at once)
        boxes = detectors.detect(rgb)          # from any thread; waits for a free worker

Several threads call `detect` at once (common.parallel.ordered_map): each takes a free worker, sends
its frame and waits on the pipe, which releases the interpreter lock.
"""

from __future__ import annotations

import queue
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np

from common.dlib_models import Box
from common.errors import UserError

_HEADER = struct.Struct("<III")  # height, width, upsample


def _stopped(worker: subprocess.Popen, detail: str) -> UserError:
    """One line for a worker that is gone: killed from outside (often the kernel, out of memory) rather
    than a bug here; the tools write atomically, so nothing half-written is left."""
    status = worker.poll()  # may not be visible yet: the pipe closes as the process ends
    ended = f", exit status {status}" if status else ""
    if status is not None and status < 0:
        ended += f" (killed by signal {-status}: out of memory? try fewer workers with DEEPFAKE_WORKERS)"
    return UserError(f"a face-detector process stopped{ended}{detail}; nothing was written")


class DetectorProcesses:
    """A fixed set of face-detector worker processes; `detect` is safe to call from many threads."""

    def __init__(self, workers: int) -> None:
        root = Path(__file__).resolve().parents[1]  # so that `-m common.detector_processes` imports
        self._workers = [
            subprocess.Popen([sys.executable, "-m", "common.detector_processes"], cwd=root,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(max(1, workers))
        ]
        self._idle: queue.SimpleQueue[subprocess.Popen] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Box]:
        """The faces in an (H, W, 3) uint8 RGB image, largest first (as dlib_models.detect_faces)."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
        worker = self._idle.get()
        try:
            worker.stdin.write(_HEADER.pack(rgb.shape[0], rgb.shape[1], upsample))
            worker.stdin.write(rgb.data)
            worker.stdin.flush()
            reply = worker.stdout.readline()  # b"\n" means no face; b"" means the worker is gone
        except OSError as err:
            raise _stopped(worker, f" ({err})") from err
        finally:
            self._idle.put(worker)
        if not reply:
            raise _stopped(worker, "")
        line = reply.decode().strip()
        if line.startswith("!"):
            raise RuntimeError(f"face-detector process: {line[1:]}")
        return [tuple(int(v) for v in box.split(",")) for box in line.split()]

    def close(self) -> None:
        """End the workers (closing a worker's stdin ends its loop)."""
        for worker in self._workers:
            if worker.stdin and not worker.stdin.closed:
                try:
                    worker.stdin.close()
                except OSError:
                    pass
        for worker in self._workers:
            try:
                worker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            worker.stdout.close()

    def __enter__(self) -> DetectorProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    """`size` bytes, or None at the end of the input."""
    data = stream.read(size)
    return data if len(data) == size else None


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker's loop: answer requests until stdin closes."""
    from common.dlib_models import detect_faces

    while (header := _read_exactly(stdin, _HEADER.size)) is not None:
        height, width, upsample = _HEADER.unpack(header)
        data = _read_exactly(stdin, height * width * 3)
        if data is None:
            return
        try:
            boxes = detect_faces(np.frombuffer(data, np.uint8).reshape(height, width, 3), upsample)
            answer = " ".join(",".join(str(int(v)) for v in box) for box in boxes)
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            answer = "!" + str(err).replace("\n", " ")
        stdout.write(answer.encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the parent handles it and closes our stdin, which ends us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
