"""A whole synthetic talking-head clip in memory: frames, audio and per-frame ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import UserError
from common.synthetic.animation import MotionConfig, make_tracks
from common.synthetic.face_render import render_frame
from common.synthetic.identity import Identity
from common.synthetic.speech import SAMPLE_RATE, Speech, synthesize_speech

FRAME_SIZES = (64, 2048)  # px: smaller frames lose the face's features, larger ones only cost memory


def check_frame_size(size: int, flag: str) -> None:
    """Refuse a rendered frame size outside FRAME_SIZES with one line naming the tool's `flag`."""
    low, high = FRAME_SIZES
    if not low <= size <= high:
        raise UserError(f"{flag} must be between {low} and {high} pixels, got {size}")


@dataclass
class Clip:
    """Frames `(T, H, W, 3)` uint8 RGB with audio `(N,)` float32 and the ground truth of every frame.

    landmarks `(T, 68, 2)` pixels (iBUG 300-W order), pose `(T, 6)` (yaw, pitch, roll in degrees,
    tx, ty as fractions of the size, scale), expression `(T, 6)` (smile, brow_raise, mouth_open,
    mouth_width, mouth_round, blink), visemes `(T,)` (ids into speech.VISEMES).
    """

    frames: np.ndarray
    audio: np.ndarray | None
    sample_rate: int | None
    landmarks: np.ndarray
    pose: np.ndarray
    expression: np.ndarray
    visemes: np.ndarray
    fps: float
    speech: Speech | None = None

    def __len__(self) -> int:
        return len(self.frames)


def render_clip(
    identity: Identity,
    frames: int,
    size: int = 256,
    fps: float = 25.0,
    seed: int = 0,
    speech: bool = True,
    motion: MotionConfig | None = None,
) -> Clip:
    """Render `frames` frames of `identity` talking (or silently moving when `speech=False`).

    The same (identity, seed) always gives the same clip; the audio lasts exactly frames / fps seconds.
    """
    clip_seed = (identity.seed, seed)  # one random stream per (person, clip)
    audio = synthesize_speech(frames / fps, seed=clip_seed, pitch_hz=identity.pitch_hz) if speech else None
    tracks = make_tracks(frames, fps, seed=clip_seed, speech=audio, config=motion or MotionConfig())
    images = np.empty((frames, size, size, 3), np.uint8)
    landmarks = np.empty((frames, 68, 2))
    for i in range(frames):
        images[i], landmarks[i] = render_frame(
            identity,
            tracks.pose[i],
            tracks.expression[i],
            size,
            noise_seed=seed * 100_000 + i,
            gaze=tuple(tracks.gaze[i]),
        )
    return Clip(
        frames=images,
        audio=None if audio is None else audio.samples,
        sample_rate=SAMPLE_RATE if audio is not None else None,
        landmarks=landmarks,
        pose=tracks.pose,
        expression=tracks.expression,
        visemes=tracks.visemes,
        fps=float(fps),
        speech=audio,
    )
