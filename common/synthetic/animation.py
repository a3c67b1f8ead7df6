"""Motion over time: head pose, expressions, blinks and gaze tracks for one clip.

Every track is smooth (a sum of a few slow sinusoids with random frequencies and phases), so
consecutive frames differ a little, like a person on a video call. Amplitudes stay moderate so
dlib's *frontal* HOG detector still finds the face: turns of at most ~15 degrees, small rolls.
Mouth tracks come from the speech timeline (speech.mouth_track) when there is speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.synthetic.face_render import POSE_FIELDS
from common.synthetic.identity import EXPRESSION_FIELDS
from common.synthetic.speech import Speech, mouth_track


@dataclass(frozen=True)
class MotionConfig:
    """How much the head and face move (defaults: a lively but frontal talking head)."""

    yaw_deg: float = 12.0  # left-right head turn amplitude
    pitch_deg: float = 6.0  # nodding amplitude
    roll_deg: float = 7.0  # in-plane tilt amplitude
    shift: float = 0.03  # translation amplitude, fraction of the image size
    zoom: float = 0.06  # scale amplitude (relative)
    smile: float = 0.7  # peak smile
    brow: float = 0.6  # peak brow raise / frown
    blink_interval_s: tuple[float, float] = (1.5, 5.0)
    blink_duration_s: float = 0.22
    gaze: float = 0.04  # iris movement, face units


@dataclass
class Tracks:
    """Per-frame parameters: pose `(T, 6)` (POSE_FIELDS), expression `(T, 6)` (EXPRESSION_FIELDS),
    viseme ids `(T,)`, gaze `(T, 2)`."""

    pose: np.ndarray
    expression: np.ndarray
    visemes: np.ndarray
    gaze: np.ndarray


def smooth_track(
    rng: np.random.Generator, n: int, fps: float, amplitude: float, max_hz: float = 0.5
) -> np.ndarray:
    """A smooth random signal `(n,)` in [-amplitude, amplitude]: three sinusoids of 0.05..max_hz Hz."""
    t = np.arange(n) / fps
    freqs = rng.uniform(0.05, max_hz, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    weights = rng.dirichlet(np.ones(3))
    return amplitude * np.sum(
        weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]), axis=0
    )


def blink_track(rng: np.random.Generator, n: int, fps: float, config: MotionConfig) -> np.ndarray:
    """Eyelid closure `(n,)` in [0, 1]: quick blinks at random intervals (closing faster than opening)."""
    closure = np.zeros(n)
    t = np.arange(n) / fps
    end = n / fps + 1.0
    when = rng.uniform(0.2, config.blink_interval_s[1])
    while when < end:
        half = config.blink_duration_s / 2
        closing = np.clip(1.0 - (when - t) / (0.7 * half), 0.0, 1.0) * (t <= when)
        opening = np.clip(1.0 - (t - when) / (1.3 * half), 0.0, 1.0) * (t > when)
        closure = np.maximum(closure, closing + opening)
        when += rng.uniform(*config.blink_interval_s)
    return closure


def make_tracks(
    n_frames: int,
    fps: float,
    seed: int | tuple[int, ...],
    speech: Speech | None = None,
    config: MotionConfig | None = None,
) -> Tracks:
    """Pose, expression, viseme and gaze tracks for `n_frames` frames at `fps` (same seed, same motion)."""
    config = config or MotionConfig()
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0xA417])
    n = int(n_frames)
    pose = np.zeros((n, len(POSE_FIELDS)))
    pose[:, 0] = smooth_track(rng, n, fps, config.yaw_deg)
    pose[:, 1] = smooth_track(rng, n, fps, config.pitch_deg)
    pose[:, 2] = smooth_track(rng, n, fps, config.roll_deg)
    pose[:, 3] = smooth_track(rng, n, fps, config.shift)
    pose[:, 4] = smooth_track(rng, n, fps, config.shift)
    pose[:, 5] = 1.0 + smooth_track(rng, n, fps, config.zoom)

    expression = np.zeros((n, len(EXPRESSION_FIELDS)))
    expression[:, 0] = config.smile * np.clip(0.5 + smooth_track(rng, n, fps, 1.0, 0.3), 0.0, 1.0)
    expression[:, 1] = smooth_track(rng, n, fps, config.brow, 0.4)
    expression[:, 5] = blink_track(rng, n, fps, config)
    if speech is not None:
        mouth, visemes = mouth_track(speech, fps, n)
        expression[:, 2:5] = mouth
    else:
        expression[:, 2] = np.clip(smooth_track(rng, n, fps, 0.25, 0.6), 0.0, None)
        visemes = np.zeros(n, dtype=np.int64)
    gaze = np.stack(
        [smooth_track(rng, n, fps, config.gaze, 0.8), smooth_track(rng, n, fps, 0.5 * config.gaze, 0.8)],
        axis=1,
    )
    return Tracks(pose, expression, visemes, gaze)
