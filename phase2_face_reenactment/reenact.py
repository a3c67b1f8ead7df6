"""Reenact a face: make the person in --target pull the faces of the person in --source (the driver).

    python phase2_face_reenactment/reenact.py --source driver.mp4 --target face.jpg \\
        --output reenacted.mp4 --consent ID_OF_DRIVER --consent ID_OF_TARGET --smooth

Methods:
  warp    (default) landmarks of both faces (dlib's 68-point model, or the phase-2 CNN with
          --landmarks cnn), the driver's expression transferred onto the target's neutral face
          (expression_transfer.py), the target redrawn by piecewise-affine warping with the driver's
          mouth interior (video_generator.py). --mode 3d measures expressions on a 3D mean face
          (solvePnP head pose); --transfer-rotation also turns the target's head with the driver's.
  x2face  the learned sampling fields of X2Face (x2face.py) from a train_x2face.py checkpoint; faces
          are resized to the model's size (64 px by default), so the output is small and soft.

Consent comes first: each person involved needs a consent record that allows "reenact" (see
`python -m consent_and_watermark consent --help`). The output keeps the driver's audio and is
written only through the provenance writer (visible label, watermark, metadata, C2PA manifest).
The output has the target's size (an odd side gains one repeated row or column: H.264 needs even
sides) and the driver's frame rate; a target video shorter than the
driver cuts the output (and its audio) to the target's length, and says so.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from tqdm import tqdm

from common import media
from common.cli import add_common_args, add_consent_args, check_output, command_line, consent_roles, run
from common.errors import UserError, first_line
from common.impl import load, use_impl
from common.training import find_checkpoint, load_checkpoint, pick_device
from consent_and_watermark import writer

if TYPE_CHECKING:  # type hints only: the code loads solutions or templates with load()
    from solutions.phase2_face_reenactment.landmark_detector import LandmarkDetector
    from solutions.phase2_face_reenactment.x2face import X2Face

PHASE = "phase2_face_reenactment"


# ----------------------------------------------------------------------------------------------
# Landmarks over a clip
# ----------------------------------------------------------------------------------------------


@dataclass
class Track:
    """Landmarks of one clip: `(T, 68, 2)`, with the frames where no face was found filled in."""

    landmarks: np.ndarray
    found: np.ndarray  # (T,) bool: detected in this frame (False: held from the nearest detection)

    @property
    def missing(self) -> int:
        return int((~self.found).sum())


class LandmarkTracker:
    """68 landmarks per frame: the HOG detector every `detect_every` frames, tracking in between.

    Between detections the landmark model (dlib's predictor, or the phase-2 CNN when `cnn` is given)
    is seeded from the previous frame's landmarks, which is much cheaper than the detector. dlib's
    predictor was trained on HOG boxes, so the tracking box is the last HOG box carried *in landmark
    units* (phase 1's face_detector.py explains why: in a tight landmark box its answers drift).

    A landmark model always answers, face or no face, so a tracked frame must still look like the face
    last detected: the eyes-and-nose patch under its landmarks (32 x 32 grey, aligned on the eye centres
    and the nose tip) must correlate with the detected frame's at least `min_similarity` (synthetic
    talking heads: 0.48-0.86 over 60 frames; a blank or noise frame: about 0). Otherwise the frame has
    no face and the next one is detected afresh.
    """

    PATCH_POINTS = np.float32([[9, 11], [23, 11], [16, 22]])  # eye centres, nose tip in the 32 x 32 patch

    def __init__(self, detect_every: int = 5, detect_size: int = 360, cnn: LandmarkDetector | None = None,
                 min_similarity: float = 0.25) -> None:
        self.detector = load("phase1_face_swap", "face_detector")
        self.detect_every, self.detect_size, self.cnn = detect_every, detect_size, cnn
        self.min_similarity = min_similarity
        self._previous: np.ndarray | None = None
        self._relative_box: np.ndarray | None = None  # the last HOG box in landmark units
        self._patch: np.ndarray | None = None  # (32, 32) unit-norm patch of the last detected face
        self._index = 0

    @classmethod
    def _face_patch(cls, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(32, 32) zero-mean, unit-norm grey patch of the eyes and nose (all zeros on a flat frame)."""
        points = np.float32([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0), landmarks[30]])
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        patch = cv2.warpAffine(grey, cv2.getAffineTransform(points, cls.PATCH_POINTS), (32, 32),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        patch -= patch.mean()
        norm = float(np.linalg.norm(patch))
        return patch / norm if norm > 1e-6 else patch

    def _from_box(self, frame: np.ndarray, box: tuple[int, ...]) -> np.ndarray:
        if self.cnn is not None:
            return self.cnn.predict(frame, box=box)
        return self.detector.landmarks68(frame, box)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """Landmarks `(68, 2)` of the largest face, or None."""
        tracking = self._previous is not None and self._relative_box is not None
        if tracking and self._index % self.detect_every != 0:
            if self.cnn is not None:
                landmarks = self.cnn.predict(frame, landmarks=self._previous)
            else:
                box = self.detector.box_from_landmark_units(self._relative_box, self._previous)
                landmarks = self.detector.landmarks68(frame, box)
            if float((self._face_patch(frame, landmarks) * self._patch).sum()) < self.min_similarity:
                landmarks, self._relative_box = None, None  # lost: detect on the next frame
        else:
            downscale = min(1.0, self.detect_size / min(frame.shape[:2]))
            boxes = self.detector.detect_faces_hog(frame, downscale=downscale)
            landmarks = self._from_box(frame, boxes[0]) if boxes else None
            if landmarks is not None:
                self._relative_box = self.detector.box_to_landmark_units(boxes[0], landmarks)
                self._patch = self._face_patch(frame, landmarks)
        self._index += 1
        self._previous = landmarks
        return landmarks


def track_clip(frames: Iterable[np.ndarray], tracker: LandmarkTracker, what: str) -> Track:
    """Landmarks of every frame; frames without a face borrow the nearest detected frame's landmarks.

    A clip with no face at all is a UserError (profile views and faces under ~80 px are not found).
    """
    found, result = [], []
    for frame in tqdm(frames, desc=f"tracking {what}", unit="frame", disable=None, leave=False):
        landmarks = tracker(frame)
        found.append(landmarks is not None)
        result.append(landmarks)
    hits = np.flatnonzero(found)
    if not len(hits):
        raise UserError(f"no frontal face found in {what}: use a frontal, well-lit face at least 80 px wide")
    missing = np.flatnonzero(~np.array(found))
    after = hits[np.minimum(np.searchsorted(hits, missing), len(hits) - 1)]  # nearest hit at or after
    before = hits[np.maximum(np.searchsorted(hits, missing) - 1, 0)]  # and before (either may be missing)
    nearest = np.where(np.abs(before - missing) <= np.abs(after - missing), before, after)
    for i, source in zip(missing, nearest, strict=True):  # a tie goes to the earlier frame
        result[i] = result[source]
    return Track(np.stack(result), np.array(found))


# ----------------------------------------------------------------------------------------------
# The warp method
# ----------------------------------------------------------------------------------------------


@dataclass
class WarpSettings:
    """What the warp method does with the landmarks."""

    amplify: float = 1.0
    smooth: bool = False
    mode: str = "2d"  # 2d (Procrustes) or 3d (solvePnP head pose on a 3D mean face)
    transfer_rotation: bool = False
    min_cutoff: float = 1.0  # One-Euro settings (Hz, and the speed coefficient)
    beta: float = 0.05
    basis: int = 0  # > 0: keep only this many PCA expression directions (learned on synthetic faces)


def transferred_landmarks(driver: Track, target: Track, driver_size: tuple[int, int],
                          target_size: tuple[int, int], fps: float, settings: WarpSettings) -> np.ndarray:
    """The target's new landmarks `(T, 68, 2)` for each output frame (target track already cut to T)."""
    expr = load(PHASE, "expression_transfer")
    video = load(PHASE, "video_generator")
    source = driver.landmarks
    if settings.smooth:
        source = video.smooth_track(source, fps, settings.min_cutoff, settings.beta)
    target_lm = target.landmarks
    if settings.mode == "3d":
        source_poses = [expr.head_pose(lm, *driver_size) for lm in source]
        target_poses = [expr.head_pose(lm, *target_size) for lm in target_lm]
        source_3d = [expr.lift(lm, p) for lm, p in zip(source, source_poses, strict=True)]
        target_3d = [expr.lift(lm, p) for lm, p in zip(target_lm, target_poses, strict=True)]
        source_neutral, target_neutral = np.median(source_3d, axis=0), np.median(target_3d, axis=0)
        rotation_vectors = [cv2.Rodrigues(p.rotation)[0][:, 0] for p in source_poses]  # (T, 3)
        rest = cv2.Rodrigues(np.median(rotation_vectors, axis=0))[0]  # the driver's usual head pose
        return np.stack([
            expr.transfer_expression_3d(s, driver_size, source_neutral, rest, t, target_size, target_neutral,
                                        settings.amplify, settings.transfer_rotation)
            for s, t in zip(source, target_lm, strict=True)
        ])
    source_neutral = expr.neutral_shape([expr.normalise(lm)[0] for lm in source])
    target_neutral = expr.neutral_shape([expr.normalise(lm)[0] for lm in target_lm])
    basis = expr.fit_expression_basis(expr.synthetic_offsets(), settings.basis) if settings.basis else None
    return np.stack([
        expr.reenact_landmarks(s, source_neutral, t, target_neutral, settings.amplify, basis)
        for s, t in zip(source, target_lm, strict=True)
    ])


def render_warp(driver_frames: Iterable[np.ndarray], target_frames: Iterable[np.ndarray], driver: Track,
                target: Track, new_landmarks: np.ndarray, mouth: bool = True) -> Iterator[np.ndarray]:
    """Redraw each target frame with its new landmarks (streamed, one frame at a time). A target frame
    without a face passes through unchanged: its borrowed landmarks would paint a face (and the driver's
    mouth) where there is none."""
    video = load(PHASE, "video_generator")
    cfg = video.RenderConfig(mouth=mouth)
    for i, (source, target_frame) in enumerate(zip(driver_frames, target_frames, strict=False)):
        if i >= len(new_landmarks):
            break
        if not target.found[i]:
            yield target_frame
            continue
        yield video.render_frame(target_frame, target.landmarks[i], new_landmarks[i], source,
                                 driver.landmarks[i], cfg)


# ----------------------------------------------------------------------------------------------
# The X2Face method
# ----------------------------------------------------------------------------------------------


def load_x2face(path: Path, device: torch.device) -> X2Face:
    """An X2Face model from a train_x2face.py checkpoint (file or run folder)."""
    path = find_checkpoint(path, "train_x2face.py")
    state = load_checkpoint(path)  # UserError for a missing, truncated or foreign file
    x2face = load(PHASE, "x2face")
    settings = dict(state.get("extra", {}).get("x2face", {}))
    if "model" not in state or not settings:
        raise UserError(f"{path} is not an X2Face checkpoint (no model or x2face settings)")
    settings["channels"] = tuple(settings["channels"])
    model = x2face.X2Face(x2face.X2FaceConfig(**settings))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise UserError(f"{path} does not fit its own settings ({first_line(err)})") from err
    return model.to(device).eval()


def to_tensor(frame: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, size, size) float in [0, 1]."""
    small = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small).permute(2, 0, 1)[None].float().div(255).to(device)


@torch.no_grad()
def render_x2face(model: X2Face, driver_frames: Iterable[np.ndarray], target_frames: Iterable[np.ndarray],
                  output_size: tuple[int, int], device: torch.device) -> Iterator[np.ndarray]:
    """Each driver frame re-rendered from the target's pixels by the two sampling fields."""
    size = model.cfg.size
    for source, target_frame in zip(driver_frames, target_frames, strict=False):
        out = model(to_tensor(target_frame, size, device), to_tensor(source, size, device))["generated"]
        rgb = (out[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
        yield cv2.resize(rgb, output_size, interpolation=cv2.INTER_CUBIC)


# ----------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python phase2_face_reenactment/reenact.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path,
                        help="the driver: a video whose expressions are used")
    parser.add_argument("--target", required=True, type=Path,
                        help="the face to animate: an image (.jpg/.png) or a video (.mp4, ...)")
    parser.add_argument("--output", required=True, type=Path, help="output .mp4 (the driver's audio is kept)")
    parser.add_argument("--method", choices=("warp", "x2face"), default="warp",
                        help="warp: landmarks + piecewise-affine warping (default); x2face: learned fields")
    parser.add_argument("--amplify", type=float, default=1.0,
                        help="(warp) expression strength, 0 to 5: 0 keeps the target neutral, 1 copies, >1 "
                        "exaggerates (default: 1)")
    parser.add_argument("--smooth", action="store_true",
                        help="(warp) One-Euro filter the driver's landmarks (less jitter)")
    parser.add_argument("--basis", type=int, default=0, metavar="K",
                        help="(warp, --mode 2d) keep only K PCA expression directions learned on synthetic "
                        "faces (removes detector jitter that is no expression; 8 is a good value; "
                        "default: 0 = off)")
    parser.add_argument("--mode", choices=("2d", "3d"), default="2d",
                        help="(warp) 2d: Procrustes normalisation (default); 3d: solvePnP head pose on a 3D "
                        "mean face")
    parser.add_argument("--transfer-rotation", action="store_true",
                        help="with --mode 3d: also turn the target's head as the driver turns")
    parser.add_argument("--no-mouth", action="store_true",
                        help="(warp) do not paste the driver's mouth interior")
    parser.add_argument("--landmarks", choices=("dlib", "cnn"), default="dlib",
                        help="(warp) dlib's 68-point predictor (default) or the phase-2 CNN "
                        "(--landmark-checkpoint)")
    parser.add_argument("--landmark-checkpoint", type=Path, default=None,
                        help="train_landmarks.py checkpoint (file or run folder) for --landmarks cnn")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="train_x2face.py checkpoint (file or run folder) for --method x2face")
    parser.add_argument("--detect-every", type=int, default=5, metavar="N",
                        help="(warp) run the face detector every N frames and track landmarks in between "
                        "(default: 5)")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="stop after this many driver frames (the audio is cut to match)")
    add_common_args(parser, seed=False)
    add_consent_args(parser, roles=("the driver (--source)", "the target (--target)"))
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad flags and inputs before any compute (each a one-line UserError)."""
    if args.output.suffix.lower() != ".mp4":
        raise UserError("--output must end in .mp4")
    for what, path in (("--source", args.source), ("--target", args.target)):
        if not path.is_file():
            raise UserError(f"{what} file not found: {path}")
    if media.is_image_path(args.source):
        raise UserError("--source must be a video: the driver's expressions change over time")
    check_output(args.output, inputs=(args.source, args.target))
    if not 0.0 <= args.amplify <= 5.0:
        raise UserError("--amplify must be between 0 and 5")
    if args.detect_every < 1:
        raise UserError("--detect-every must be at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    if args.method == "x2face" and args.checkpoint is None:
        raise UserError("--method x2face needs --checkpoint (train one with train_x2face.py)")
    if args.landmarks == "cnn" and args.landmark_checkpoint is None:
        raise UserError("--landmarks cnn needs --landmark-checkpoint (train one with train_landmarks.py)")
    if not 0 <= args.basis <= 136:
        raise UserError("--basis must be between 0 (off) and 136")
    if args.basis and args.mode != "2d":
        raise UserError("--basis works with --mode 2d only")
    if args.transfer_rotation and args.mode != "3d":
        raise UserError("--transfer-rotation needs --mode 3d")


def load_landmark_cnn(path: Path, device: torch.device) -> LandmarkDetector:
    """The phase-2 landmark CNN from a train_landmarks.py checkpoint, wrapped as a detector."""
    from phase2_face_reenactment.train_landmarks import load_detector

    return load_detector(path, device)


def count_frames(path: Path, limit: int | None = None) -> int:
    """Frames in a video (as its container declares them, else by decoding), at most `limit`."""
    declared = media.video_info(path).frames
    total = declared if declared > 0 else sum(1 for _ in media.iter_video(path, max_frames=limit))
    return total if limit is None else min(total, limit)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_impl(args.impl)
    # Consent before any compute: a refused record stops the run here, with nothing written.
    writer.begin_run("reenact", args.consent, visible_label=not args.no_visible_label, outputs=("video",),
                     argv=command_line(__file__, argv), roles=consent_roles(args))
    check_args(args)
    device = pick_device(args.device)
    info = media.video_info(args.source)
    driver_count = count_frames(args.source, args.max_frames)
    if driver_count < 2:
        cut = f" (--max-frames {args.max_frames} keeps {driver_count})" if args.max_frames is not None else ""
        raise UserError(f"the driver {args.source} needs at least 2 frames{cut}")
    target_is_image = media.is_image_path(args.target)
    count = driver_count if target_is_image else count_frames(args.target, driver_count)
    if count < 1:
        raise UserError(f"the target video {args.target} has no frames")
    notes = []
    if count < driver_count:
        notes.append(f"the target video is shorter than the driver: output cut to {count} frames")
    if target_is_image:
        first_target = media.read_image(args.target)
    else:
        first_target = next(media.iter_video(args.target, max_frames=1), None)
        if first_target is None:  # the header promised frames, none decode (a cut-off download)
            raise UserError(f"the target video {args.target}: no frame can be decoded")
    target_height, target_width = first_target.shape[:2]

    def target_frames() -> Iterator[np.ndarray]:
        if target_is_image:
            for _ in range(count):
                yield first_target
        else:
            yield from media.iter_video(args.target, max_frames=count)

    if args.method == "x2face":
        model = load_x2face(args.checkpoint, device)
        frames = render_x2face(model, media.iter_video(args.source, max_frames=count), target_frames(),
                               (target_width, target_height), device)
    else:
        cnn = load_landmark_cnn(args.landmark_checkpoint, device) if args.landmarks == "cnn" else None
        driver = track_clip(media.iter_video(args.source, max_frames=count),
                            LandmarkTracker(args.detect_every, cnn=cnn), f"the driver {args.source}")
        count = len(driver.landmarks)  # what the decoder really delivered
        if target_is_image:
            found = LandmarkTracker(1, cnn=cnn)(first_target)
            if found is None:
                raise UserError(f"no frontal face found in the target {args.target}")
            target = Track(np.repeat(found[None], count, axis=0), np.ones(count, bool))
        else:
            target = track_clip(target_frames(), LandmarkTracker(args.detect_every, cnn=cnn),
                                f"the target {args.target}")
            count = min(count, len(target.landmarks))
            driver = Track(driver.landmarks[:count], driver.found[:count])
            target = Track(target.landmarks[:count], target.found[:count])
        driver_size = (info.width, info.height)
        settings = WarpSettings(args.amplify, args.smooth, args.mode, args.transfer_rotation,
                                basis=args.basis)
        try:
            new = transferred_landmarks(driver, target, driver_size, (target_width, target_height), info.fps,
                                        settings)
        except ValueError as err:  # solvePnP found no pose: a face too far from frontal
            raise UserError(f"could not estimate a head pose ({err}); try --mode 2d") from err
        frames = render_warp(media.iter_video(args.source, max_frames=count), target_frames(), driver, target,
                             new, mouth=not args.no_mouth)
        if driver.missing:
            notes.append(f"{driver.missing} driver frames without a face used the nearest detected frame's "
                         "landmarks")
        if target.missing:
            notes.append(f"{target.missing} target frames without a face were left as they are")

    audio, rate = media.read_audio(args.source) if info.has_audio else (None, None)
    if audio is not None:
        audio = audio[: int(round(count / info.fps * rate))]
    writer.save_video(args.output, frames, info.fps, audio=audio, sample_rate=rate, total=count)
    for note in notes:
        print(f"note: {note}")
    print(f"{args.output}: {count} frames reenacted with --method {args.method}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
