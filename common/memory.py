"""Keep freed memory in the process, so that per-frame NumPy and OpenCV buffers are reused, not re-faulted.

glibc's `malloc` hands a large request (above its mmap threshold, which starts at 128 kB and adapts up
to 32 MB) a fresh mapping from the kernel and unmaps it again on `free`; below the threshold it still
returns the top of the heap to the kernel once more than the trim threshold lies free there. A video
pipeline allocates and frees tens of MB of temporary arrays per 720p frame (the watermark alone: mask,
pattern, products, the marked copy), so the kernel faulted in and zeroed every one of those pages again
for every frame. Measured on one core: marking a 720p frame took 9.3 ms, 5.8 of them in the kernel;
with the thresholds raised, 2.5 ms and no kernel time. With many threads it is worse, since unmapping
takes a per-process lock that the other threads' page faults wait on.

`keep_freed_memory()` raises both thresholds (`mallopt`, glibc only; elsewhere it does nothing). It runs
when `common` is first imported, i.e. in every tool of the project; `DEEPFAKE_KEEP_MEMORY=0` turns it
off (for comparisons). The price: a process keeps the peak of what it used until it exits; the peak
itself did not grow (the Wav2Lip throughput benchmark on a 4 s clip: 2.58 GB with, 2.60 GB without).

It also caps glibc's malloc arenas at one per core. glibc gives each new thread that finds the others
busy an arena of its own, up to 8 per core, and memory freed in one arena serves only that arena: with
the tools' thread pools handing frames from thread to thread, a long run kept growing. wav2lip.py on a
2-minute 480p clip (2 cores): 1.62 GB peak and still climbing at the end with glibc's default, 1.14 GB
and flat with 2 arenas, in the same time (42.7 s against 43.2 s).
"""

from __future__ import annotations

import ctypes
import os
import sys

ENV_SWITCH = "DEEPFAKE_KEEP_MEMORY"
M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value: only arrays above 32 MB get their own mapping
TRIM_THRESHOLD = 1 << 30  # give the heap's top back only when more than 1 GB of it lies free


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds and cap its arenas at one per core; True if it did (Linux
    with glibc, not switched off)."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library (e.g. musl): leave its defaults
        return False
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                (M_ARENA_MAX, max(2, os.cpu_count() or 2)))
    return all(bool(mallopt(parameter, value)) for parameter, value in settings)
