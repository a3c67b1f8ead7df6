"""Demo stage: a gallery of people who do not exist, one talking clip, and its speech/mouth timeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from common.report import ReportItem
from common.synthetic.clip import render_clip
from common.synthetic.dataset import ExportConfig, export_dataset
from common.synthetic.identity import make_identity
from common.synthetic.speech import VISEMES


def gallery(seeds: range, size: int = 160) -> np.ndarray:
    """Two rows per identity column: the rendered face, and the same face with its 68 ground-truth points."""
    columns = []
    for seed in seeds:
        clip = render_clip(make_identity(seed), frames=1, size=size, speech=False)
        face = clip.frames[0]
        marked = face.copy()
        for x, y in clip.landmarks[0]:
            cv2.circle(marked, (round(x), round(y)), 1, (0, 255, 0), -1, cv2.LINE_AA)
        columns.append(np.concatenate([face, marked], axis=0))
    return np.concatenate(columns, axis=1)  # (2*size, len(seeds)*size, 3)


def timeline_figure(clip):
    """Speech waveform above the viseme track and the mouth opening that follows it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_audio = np.arange(len(clip.audio)) / clip.sample_rate
    t_video = np.arange(len(clip)) / clip.fps
    fig, axes = plt.subplots(3, 1, figsize=(9, 5), sharex=True)
    axes[0].plot(t_audio, clip.audio, lw=0.5)
    axes[0].set_ylabel("speech")
    axes[1].step(t_video, clip.visemes, where="post")
    axes[1].set_yticks(range(len(VISEMES)), VISEMES, fontsize=7)
    axes[1].set_ylabel("viseme")
    axes[2].plot(t_video, clip.expression[:, 2])
    axes[2].set_ylabel("mouth open")
    axes[2].set_xlabel("seconds")
    fig.tight_layout()
    return fig


def run_stage(out_dir: Path, quick: bool = True) -> list[ReportItem]:
    """Export two consented synthetic identities and the pictures that show what the generator makes."""
    from consent_and_watermark import writer

    out_dir = Path(out_dir)
    frames = 130 if quick else 250  # 5.2 s: two periods (2.56 s each) of the audio watermark
    folders = export_dataset(out_dir / "identities", identities=2, seed=100,
                             config=ExportConfig(frames=frames, size=256, formats=("mp4",)))
    sheet = writer.save_image(out_dir / "gallery.png", gallery(range(8)))
    clip = render_clip(make_identity(100), frames=frames, size=256)
    fig = timeline_figure(clip)
    timeline = writer.save_figure(fig, out_dir / "speech_timeline.png")
    items = [
        ReportItem("Eight people who do not exist", sheet, "image",
                   "One seed each; bottom row: the 68 ground-truth landmarks every phase trains on."),
        ReportItem("Speech drives the mouth", timeline, "image",
                   "Formant-synthesised speech, its viseme timeline, and the mouth opening of the face."),
    ]
    items += [ReportItem(f"Talking clip: {f.name}", f / "video.mp4", "video",
                         "Training data: watermarked and signed, no visible label.") for f in folders]
    return items
