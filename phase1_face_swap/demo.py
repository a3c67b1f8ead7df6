"""`make demo` stage of phase 1: swap one synthetic person's face onto another's video.

1. Two synthetic identities (people who do not exist) get consent records marked synthetic.
2. A talking clip of each is rendered; faces are extracted with the real pipeline (HOG, 68 landmarks,
   Umeyama alignment).
3. The 64 px autoencoder trains for a few minutes on the CPU (the checkpoint is cached in
   `<out>/run/`, so a second demo run skips training).
4. A held-out clip of person B (the target), with its audio, gets person A's face (the source, the
   face donor) and is written through the provenance writer, with a before/after strip and the last
   training preview.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.impl import load
from common.report import ReportItem
from common.synthetic.clip import render_clip
from common.synthetic.identity import make_identity
from consent_and_watermark import writer
from consent_and_watermark.consent import check_consent, register_synthetic_identity

SEEDS = (101, 102)  # demo identities (the benchmark uses others)
QUICK = {"frames": 120, "steps": 400, "batch_size": 12}
FULL = {"frames": 400, "steps": 4000, "batch_size": 16}


def before_after_strip(before: np.ndarray, after: np.ndarray, count: int = 4) -> np.ndarray:
    """`count` evenly spaced frames: originals on top, swapped below. (2H, count W, 3) uint8."""
    picks = np.linspace(0, len(after) - 1, count).astype(int)
    return np.concatenate(
        [np.concatenate(list(before[picks]), axis=1), np.concatenate(list(after[picks]), axis=1)], axis=0
    )


def step_pictures(frame: np.ndarray, swapper, coverage: float, out_dir: Path) -> list[ReportItem]:
    """The guide's pictures on a demo frame: alignment, random warp, blending masks."""
    from common import dlib_models
    from phase1_face_swap import figures

    alignment = load("phase1_face_swap", "alignment")
    landmarks = dlib_models.largest_face_landmarks(frame)
    if landmarks is None:
        return []
    crop, _, crop_points = alignment.align_face(frame, landmarks, swapper.size, coverage)
    face, learned = swapper.decode(crop)
    pictures = [
        (
            "Alignment",
            figures.alignment_figure(frame, landmarks, 256, coverage),
            "Left: dlib's 68 landmarks (grey jaw, not used). Right: the aligned crop; blue = mean-face "
            "targets "
            "of the Umeyama fit, green = the transformed landmarks.",
        ),
        (
            "Random warp",
            figures.warp_figure(),
            "A checkerboard through the 5x5-grid random warp at jitter 0, 0.02 and 0.05 of the image size.",
        ),
        (
            "Blending masks",
            figures.mask_figure(crop, crop_points, face, learned),
            "Landmark hull, learned mask, their eroded and blurred intersection, and the alpha blend.",
        ),
    ]
    return [
        ReportItem(
            title,
            writer.save_image(out_dir / f"{title.lower().replace(' ', '_')}.png", image, label=False),
            "image",
            caption,
        )
        for title, image, caption in pictures
    ]


def run_stage(out_dir: Path, quick: bool = True) -> list[ReportItem]:
    """Train (or reuse) the phase-1 model on two synthetic people and swap a clip; returns report items.

    Torch runs on one thread during the stage: on a small shared CPU, two threads contending with other
    processes made a training step ten times slower (measured: 14 s vs 1.5 s per step at load 9).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_stage(Path(out_dir), quick)
    finally:
        torch.set_num_threads(threads)


def _run_stage(out_dir: Path, quick: bool) -> list[ReportItem]:
    from phase1_face_swap.swap_video import load_model, swapped_stream
    from phase1_face_swap.train import train

    settings = QUICK if quick else FULL
    out_dir.mkdir(parents=True, exist_ok=True)
    faceset = load("phase1_face_swap", "faceset")
    face_swap = load("phase1_face_swap", "face_swap")

    people = [make_identity(seed) for seed in SEEDS]
    record_ids = [register_synthetic_identity(p.subject_id, p.display_name) for p in people]
    records = check_consent(record_ids, "swap", outputs=("video", "image"))

    sets = []
    for person in people:
        clip = render_clip(person, settings["frames"], 256, seed=1)
        faces = faceset.extract_faces(clip.frames, size=64, source=person.subject_id)
        sets.append(faceset.to_faceset(faces, 0.6, person.display_name))
    run_dir = out_dir / "run"
    result = train(
        *sets,
        run_dir,
        steps=settings["steps"],
        batch_size=settings["batch_size"],
        device="auto",
        progress=False,
        preview_every=100,
        checkpoint_every=200,
        names=(people[0].subject_id, people[1].subject_id),
    )

    model, extra = load_model(run_dir, torch.device("cpu"))
    held_out = render_clip(people[1], 70, 256, seed=7)  # unseen person B; 2.8 s carries an audio mark
    swapper = face_swap.FaceSwapper(model, face_swap.SwapConfig(coverage=extra["coverage"]))
    swapped = np.stack(list(swapped_stream(swapper, held_out.frames, held_out.fps)))  # (T, H, W, 3)

    context = writer.OutputContext(technique="swap", consent=tuple(records), command=("make", "demo"))
    with writer.output_context(context):
        video = writer.save_video(
            out_dir / "swapped.mp4",
            swapped,
            held_out.fps,
            audio=held_out.audio,
            sample_rate=held_out.sample_rate,
        )
        strip = writer.save_image(out_dir / "before_after.png", before_after_strip(held_out.frames, swapped))
        pictures = step_pictures(held_out.frames[0], swapper, extra["coverage"], out_dir)
    previews = sorted((run_dir / "previews").glob("step_*.png"))
    names = f"{people[1].display_name} with the face of {people[0].display_name}"
    items = [
        ReportItem(
            "Swapped clip",
            video,
            "video",
            f"{names}: {swapper.stats.swapped} of {swapper.stats.frames} frames swapped "
            f"after {result.step} training steps (64 px CPU preset); the audio is the original's.",
        ),
        ReportItem(
            "Before / after",
            strip,
            "image",
            "Top: held-out frames of person B. Bottom: with the face of person A.",
        ),
    ]
    items += pictures
    if previews:
        items.append(
            ReportItem(
                "Training preview",
                previews[-1],
                "image",
                "Per person: input, reconstruction, swap to the other person.",
            )
        )
    return items
