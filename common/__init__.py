"""Shared infrastructure for every phase: media reading, dlib models, synthetic data, training, metrics.

Nothing here is a student exercise; solutions, templates and command-line tools all import it.
"""
