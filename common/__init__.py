"""Shared infrastructure for every phase: media reading, dlib models, synthetic data, training, metrics.

Nothing here is a student exercise; solutions, templates and command-line tools all import it.
"""

from common.memory import keep_freed_memory

keep_freed_memory()  # see common/memory.py: ~4x faster per-frame NumPy work on Linux
