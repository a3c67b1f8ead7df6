"""`make demo` stage of phase 2: one synthetic person pulls another synthetic person's faces.

1. Two synthetic identities (people who do not exist) get consent records marked synthetic.
2. The driver talks (a rendered clip with speech); the target is a single frontal picture.
3. dlib finds 68 landmarks in every driver frame and in the target (the real pipeline of reenact.py);
   the driver's expression offsets go onto the target's neutral shape (Procrustes normalisation),
   and the target picture is warped piecewise-affinely, with the driver's mouth interior pasted in.
4. The report shows the reenacted clip (with the driver's audio), a side-by-side strip with landmark
   overlays, the triangulation, the expression amplification and the One-Euro smoothing of a
   landmark track. Nothing is trained, so the stage takes well under two minutes on two cores.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from common.impl import load
from common.report import ReportItem
from common.synthetic import make_identity, render_clip, render_frame
from common.synthetic.face_render import neutral_pose
from consent_and_watermark import writer
from consent_and_watermark.consent import check_consent, register_synthetic_identity

PHASE = "phase2_face_reenactment"
TARGET_SEED, DRIVER_SEED = 2001, 2002  # held-out identities (never in a training set)
QUICK = {"frames": 70, "size": 256}  # 2.8 s: long enough for the audio watermark
FULL = {"frames": 200, "size": 384}


def draw_landmarks(frame: np.ndarray, landmarks: np.ndarray, colour=(0, 255, 0)) -> np.ndarray:
    """A copy of `frame` with the 68 points drawn as small dots."""
    out = frame.copy()
    radius = max(1, frame.shape[0] // 200)
    for x, y in landmarks:
        cv2.circle(out, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
    return out


def strip(rows: list[list[np.ndarray]]) -> np.ndarray:
    """A grid of equally sized frames: one list per row."""
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def triangulation_picture(target: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The target with the Delaunay triangles (landmarks + border points) the warp moves."""
    video = load(PHASE, "video_generator")
    box = video.face_box(landmarks, target.shape[1], target.shape[0])
    points = np.vstack([landmarks, video.border_points(box)])
    out = target.copy()
    for triangle in video.reference_triangles():
        cv2.polylines(out, [np.round(points[triangle] * 16).astype(np.int32)], True, (255, 255, 0), 1,
                      cv2.LINE_AA, shift=4)
    return draw_landmarks(out, landmarks, (255, 0, 0))


def smoothing_figure(raw: np.ndarray, smoothed: np.ndarray, fps: float):
    """The chin's y coordinate over time, as detected and after the One-Euro filter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(raw)) / fps
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(t, raw[:, 8, 1], label="dlib, frame by frame", color="0.6")
    ax.plot(t, smoothed[:, 8, 1], label="One-Euro filtered", color="C1")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("chin y (px)")
    ax.invert_yaxis()
    ax.legend()
    fig.tight_layout()
    return fig


def run_stage(out_dir: Path, quick: bool = True) -> list[ReportItem]:
    """Reenact a synthetic target with a synthetic driver; returns the report items."""
    from phase2_face_reenactment.reenact import (
        LandmarkTracker,
        Track,
        WarpSettings,
        render_warp,
        track_clip,
        transferred_landmarks,
    )

    settings = QUICK if quick else FULL
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = load(PHASE, "video_generator")
    target_person, driver_person = make_identity(TARGET_SEED), make_identity(DRIVER_SEED)
    people = (driver_person, target_person)
    record_ids = [register_synthetic_identity(p.subject_id, p.display_name) for p in people]
    records = check_consent(record_ids, "reenact", outputs=("video", "image"))

    size = settings["size"]
    driver_clip = render_clip(driver_person, settings["frames"], size, seed=3)
    target, _ = render_frame(target_person, neutral_pose(), np.zeros(6), size)
    driver = track_clip(driver_clip.frames, LandmarkTracker(detect_every=5), "the demo driver")
    found = LandmarkTracker(detect_every=1)(target)
    if found is None:
        raise RuntimeError("dlib found no face in the synthetic target")
    n = len(driver.landmarks)
    target_track = Track(np.repeat(found[None], n, axis=0), np.ones(n, bool))
    wh = (size, size)
    new = {a: transferred_landmarks(driver, target_track, wh, wh, driver_clip.fps,
                                    WarpSettings(amplify=a, smooth=True))
           for a in (0.0, 1.0, 2.0)}
    frames = np.stack(list(render_warp(driver_clip.frames, [target] * n, driver, target_track, new[1.0])))
    smoothed = video.smooth_track(driver.landmarks, driver_clip.fps)

    picks = np.linspace(0, n - 1, 5).astype(int)
    # The frame where the driver's mouth is widest open, for the amplification row.
    opening = driver.landmarks[:, 66, 1] - driver.landmarks[:, 62, 1]
    widest = int(opening.argmax())
    amplified = [video.render_frame(target, found, new[a][widest], driver_clip.frames[widest],
                                    driver.landmarks[widest]) for a in (0.0, 1.0, 2.0)]

    context = writer.OutputContext(technique="reenact", consent=tuple(records), command=("make", "demo"))
    with writer.output_context(context):
        clip_path = writer.save_video(out_dir / "reenacted.mp4", frames, driver_clip.fps,
                                      audio=driver_clip.audio, sample_rate=driver_clip.sample_rate)
        side = strip([[draw_landmarks(driver_clip.frames[i], driver.landmarks[i]) for i in picks],
                      [draw_landmarks(frames[i], new[1.0][i]) for i in picks]])
        side_path = writer.save_image(out_dir / "driver_and_reenacted.png", side)
        tri_path = writer.save_image(out_dir / "triangulation.png", triangulation_picture(target, found),
                                     label=False)
        amp_path = writer.save_image(out_dir / "amplification.png",
                                     strip([[driver_clip.frames[widest], *amplified]]))
        fig_path = writer.save_figure(smoothing_figure(driver.landmarks, smoothed, driver_clip.fps),
                                      out_dir / "smoothing.png")
    names = f"{target_person.display_name} driven by {driver_person.display_name}"
    return [
        ReportItem("Reenacted clip", clip_path, "video",
                   f"{names}: {n} frames, piecewise-affine warping of one picture, the driver's mouth "
                   "interior pasted in, One-Euro-smoothed landmarks; the audio is the driver's."),
        ReportItem("Driver and output with landmarks", side_path, "image",
                   "Top: the driver with dlib's 68 landmarks. Bottom: the target with the transferred "
                   "landmarks (the driver's expression offsets on the target's neutral shape and pose)."),
        ReportItem("Triangulation", tri_path, "image",
                   "Delaunay triangles over the 68 landmarks and 8 fixed border points; each triangle "
                   "moves by its own affine transform."),
        ReportItem("Expression amplification", amp_path, "image",
                   "The driver's widest-open frame, then the target at --amplify 0, 1 and 2."),
        ReportItem("Landmark smoothing", fig_path, "image",
                   "The chin's height over time, frame-by-frame dlib against the One-Euro filter "
                   "(Casiez et al. 2012): jitter goes, motion stays."),
    ]
