"""People who do not exist: parametric talking faces with speech and exact ground truth.

In memory (no disk, used by tests and demos)::

    from common.synthetic import make_identity, render_clip, render_frame
    person = make_identity(7)
    clip = render_clip(person, frames=50, size=256)
    clip.frames  # (50, 256, 256, 3) uint8; clip.landmarks (50, 68, 2); clip.audio (32000,) at 16 kHz

On disk: `python -m common.synthetic --output data/synthetic --identities 4 --frames 100` (see --help).
Modules, in reading order: identity (shape and colours from a seed), face_render (one frame),
speech (formant-synthesised audio and visemes), animation (tracks over time), clip, dataset.
"""

from common.synthetic.animation import MotionConfig, Tracks, make_tracks
from common.synthetic.clip import FRAME_SIZES, Clip, check_frame_size, render_clip
from common.synthetic.dataset import ExportConfig, export_dataset, export_identity, load_ground_truth
from common.synthetic.face_render import POSE_FIELDS, neutral_pose, render_frame
from common.synthetic.identity import EXPRESSION_FIELDS, Identity, make_identity
from common.synthetic.speech import SAMPLE_RATE, VISEMES, Speech, synthesize_speech

__all__ = [
    "EXPRESSION_FIELDS",
    "FRAME_SIZES",
    "POSE_FIELDS",
    "SAMPLE_RATE",
    "VISEMES",
    "Clip",
    "ExportConfig",
    "Identity",
    "MotionConfig",
    "Speech",
    "Tracks",
    "check_frame_size",
    "export_dataset",
    "export_identity",
    "load_ground_truth",
    "make_identity",
    "make_tracks",
    "neutral_pose",
    "render_clip",
    "render_frame",
    "synthesize_speech",
]
