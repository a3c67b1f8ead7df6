"""Ordered streams through a pool of threads: how the CPU stages of a pipeline keep up with a GPU.

The per-frame CPU work of the video tools (pasting a face back, the invisible watermark, colour
conversion for the encoder) is made of OpenCV and NumPy calls that release Python's global interpreter
lock, so threads of one process run them on several cores at once. `ordered_map` applies such a
function to a stream of frames with a pool of threads and yields the results in input order, keeping
only a bounded number of frames in flight (a 720p frame is 2.7 MB; a video is never held whole).
dlib's face detector does not release the lock: its threads wait on worker processes instead
(`common.detector_processes`).

The items are pulled from the input in a background thread, so whatever produces them (decoding,
the generator network) runs at the same time as whatever consumes the results (the encoder):

    decode (feeder) -> detect (pool -> processes) -> crop + generate (feeder) -> paste (pool)
    -> watermark (pool) -> YUV conversion (pool) -> encode (caller's thread)

`DEEPFAKE_WORKERS=1` turns every pool off (plain `map`, everything in the caller's thread), which is
also what happens on a one-core machine.

OpenCV runs many of its functions on its own pool of one thread per core. Under a pool of ours that
multiplies the threads (16 x 16 on a 16-core machine), and the extra threads cost more than they give:
on the 16-core GPU machine marking a 720p frame took 20-24 core-ms with OpenCV's pool and 15-17 with
one OpenCV thread per call, and the writer's mark + encode ran at 84-88 against 101-108 fps (one call;
no difference on 2 cores). So the first pool of ours sets OpenCV to one thread per call, process-wide:
the frames are the parallelism. `DEEPFAKE_OPENCV_THREADS=N` sets another number (-1: OpenCV's default).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from common.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

ENV_WORKERS = "DEEPFAKE_WORKERS"
ENV_OPENCV_THREADS = "DEEPFAKE_OPENCV_THREADS"
MAX_WORKERS = 16  # beyond this the encoder in the caller's thread is the limit anyway


def worker_count() -> int:
    """Threads per pool: $DEEPFAKE_WORKERS if set, else the cores this process may use (at most 16)."""
    value = os.environ.get(ENV_WORKERS, "").strip()
    if value:
        if not value.isdigit():
            raise UserError(f"${ENV_WORKERS} must be a whole number of threads, got {value!r}")
        return max(1, int(value))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def one_opencv_thread() -> None:
    """Set OpenCV's own threads per call to $DEEPFAKE_OPENCV_THREADS (default 1): our pools parallelise."""
    import cv2  # every caller of a pool runs OpenCV in it; imported here so that `common` stays light

    value = os.environ.get(ENV_OPENCV_THREADS, "1").strip()
    try:
        threads = int(value)
    except ValueError:
        raise UserError(
            f"${ENV_OPENCV_THREADS} must be a whole number (-1: OpenCV's default), got {value!r}") from None
    if cv2.getNumThreads() != threads:
        cv2.setNumThreads(threads)


class _End:
    """Marks the end of the input (or, with `error`, that pulling the next item raised)."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                ahead: int | None = None) -> Iterator[R]:
    """Yield fn(item) for every item, in input order, computed by `workers` threads.

    At most `ahead` items (default 2 x workers) are in flight. An exception raised by `fn` or by the
    input is re-raised here, at the position where it happened; closing the returned iterator early
    stops pulling from the input.
    """
    workers = worker_count() if workers is None else max(1, workers)
    if workers == 1:
        yield from map(fn, items)
        return
    one_opencv_thread()
    in_flight: queue.Queue[Future | _End] = queue.Queue(maxsize=ahead or 2 * workers)
    stop = threading.Event()
    with ThreadPoolExecutor(workers, thread_name_prefix="ordered_map") as pool:

        def feed() -> None:
            try:
                for item in items:
                    if stop.is_set():
                        return
                    in_flight.put(pool.submit(fn, item))  # blocks while `ahead` items are in flight
                in_flight.put(_End())
            except BaseException as error:  # noqa: BLE001 -- handed to the consumer, re-raised there
                in_flight.put(_End(error))

        feeder = threading.Thread(target=feed, name="ordered_map-feeder", daemon=True)
        feeder.start()
        try:
            while True:
                got = in_flight.get()
                if isinstance(got, _End):
                    if got.error is not None:
                        raise got.error
                    return
                yield got.result()
        finally:
            stop.set()
            while feeder.is_alive():  # unblock a feeder waiting for room, then let it see `stop`
                try:
                    pending = in_flight.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(pending, Future):
                    pending.cancel()
            feeder.join()
