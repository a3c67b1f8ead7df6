"""The face-swap pipeline, one frame at a time: every earlier module in its place.

    frame ─ detect (HOG on a downscaled copy, every few frames; tracked in between)
          ─ 68 landmarks ─ One-Euro smoothing
          ─ align (Umeyama to the mean face) ─ crop S x S
          ─ shared encoder ─ decoder of the face donor (the other identity) ─ face + learned mask
          ─ colour transfer onto the crop (Reinhard / histogram / none)
          ─ inverse warp into the frame ─ mask = hull ∩ learned, eroded + blurred ─ alpha / Poisson blend

Frames where no face is found pass through unchanged and are counted (`SwapStats`). Without an
identity filter the largest face is swapped; with one, each detection keeps only the chosen person's
face (a descriptor per face costs 0.1-0.3 s, so this runs on detection frames only).

All heavy per-frame work happens inside the face's bounding region (a region of interest, ROI), so
the cost hardly grows with the frame size; that is what makes 720p real-time-ish on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from solutions.phase1_face_swap.alignment import (
    align_face,
    alignment_matrix,
    invert_affine,
    transform_points,
    warp_to_frame,
)
from solutions.phase1_face_swap.autoencoder import FaceSwapAutoencoder
from solutions.phase1_face_swap.blending import COLOR_TRANSFERS, alpha_blend, build_mask, poisson_blend
from solutions.phase1_face_swap.face_detector import (
    box_from_landmark_units,
    box_to_landmark_units,
    detect_faces_hog,
    landmarks68,
)
from solutions.phase1_face_swap.face_encoder import IdentityFilter
from solutions.phase1_face_swap.smoothing import OneEuroFilter


@dataclass
class SwapConfig:
    """How each frame is processed (defaults suit talking-head video)."""

    draw_identity: int = 0  # decoder to draw with: 0 = the training --source (the face donor), 1 = --target
    coverage: float = 0.6  # must match the coverage the model was trained with
    blend: str = "alpha"  # "alpha" or "poisson"
    color: str = "reinhard"  # "reinhard", "hist" or "none"
    detect_every: int = 5  # full detection every N frames; landmark tracking in between
    detect_size: int = 360  # the detector sees the frame scaled so its short side is about this
    track_min_ncc: float = 0.7  # below this correlation with the last frame's face, detect again
    smooth: bool = True  # One-Euro filter on the landmarks
    min_cutoff: float = 1.0
    beta: float = 0.05
    mask_erode: float = 0.03  # share of the face width
    mask_blur: float = 0.04


@dataclass
class SwapStats:
    """What happened over a clip."""

    frames: int = 0
    swapped: int = 0
    no_face: int = 0  # frames without any face
    other_person: int = 0  # frames with faces, none of them the chosen person
    landmarks: list[np.ndarray | None] = field(default_factory=list)  # per frame, smoothed (68, 2)


class FaceSwapper:
    """Stateful per-clip swapper (keeps the tracked face and the smoothing filter between frames)."""

    def __init__(self, model: FaceSwapAutoencoder, cfg: SwapConfig | None = None,
                 identity_filter: IdentityFilter | None = None, device: torch.device | str = "cpu"):
        self.model = model.eval()
        self.cfg = cfg or SwapConfig()
        if self.cfg.blend not in ("alpha", "poisson"):
            raise ValueError(f"blend must be alpha or poisson, got {self.cfg.blend!r}")
        if self.cfg.color not in (*COLOR_TRANSFERS, "none"):
            raise ValueError(f"color must be reinhard, hist or none, got {self.cfg.color!r}")
        self.identity_filter = identity_filter
        self.device = torch.device(device)
        self.size = model.cfg.resolution
        self.filter = OneEuroFilter(self.cfg.min_cutoff, self.cfg.beta)
        self.stats = SwapStats()
        self._tracked: np.ndarray | None = None  # raw landmarks of the previous frame
        self._relative_box: np.ndarray | None = None  # the last HOG box (4,) in landmark units
        self._look: np.ndarray | None = None  # its appearance (see `_appearance`)
        self._index = 0

    # -- finding the face ---------------------------------------------------------------------------

    def _detect(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]] | None:
        """Landmarks (68, 2) of the face to swap and its HOG box (left, top, right, bottom), or None."""
        downscale = min(1.0, self.cfg.detect_size / min(frame.shape[:2]))
        boxes = detect_faces_hog(frame, downscale=downscale)
        if not boxes:
            return None
        candidates = [landmarks68(frame, box) for box in boxes]
        if self.identity_filter is None:
            return candidates[0], boxes[0]  # the largest face
        choice = self.identity_filter.pick(frame, candidates)
        if choice is None:
            self.stats.other_person += 1
            return None
        return candidates[choice], boxes[choice]

    def _appearance(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """A small grey aligned crop (32, 32), zero mean and unit norm, to check the tracked face."""
        crop = align_face(frame, landmarks, 32, self.cfg.coverage)[0].astype(np.float32).mean(axis=2)
        crop -= crop.mean()
        return crop / max(float(np.linalg.norm(crop)), 1e-6)

    def locate(self, frame: np.ndarray) -> np.ndarray | None:
        """Raw 68 landmarks of the face to swap, or None: detect every `detect_every` frames, else track.

        Tracking re-fits the landmarks inside the last HOG box, carried in landmark units so that it
        moves and scales with the face (dlib's predictor drifts in other boxes; see face_detector.py).
        The shape predictor always returns 68 points, even on a wall, so the tracked face is checked:
        its aligned crop must correlate with the previous one (normalised cross-correlation
        > `track_min_ncc`), else we detect again.
        """
        landmarks = None
        if self._tracked is not None and self._index % self.cfg.detect_every != 0:
            box = box_from_landmark_units(self._relative_box, self._tracked)  # (4,) left, top, right, bottom
            landmarks = landmarks68(frame, box)
            look = self._appearance(frame, landmarks)
            if float((look * self._look).sum()) < self.cfg.track_min_ncc:
                landmarks = None  # lost: fall through to a full detection
        if landmarks is None:
            found = self._detect(frame)
            if found is not None:
                landmarks, box = found
                self._relative_box = box_to_landmark_units(box, landmarks)
        self._tracked = landmarks
        if landmarks is not None:
            self._look = self._appearance(frame, landmarks)
        return landmarks

    # -- swapping -----------------------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Aligned crop (S, S, 3) uint8 -> the other identity's face (S, S, 3) uint8 and mask (S, S) float."""
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255).to(self.device)  # (1, 3, S, S)
        face, mask = self.model(x, self.cfg.draw_identity)
        face_u8 = (face[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
        return face_u8, mask[0, 0].float().cpu().numpy()

    def swap_face(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Swap the face with these (smoothed) landmarks into `frame`; returns a new frame."""
        height, width = frame.shape[:2]
        # Region of interest: the crop's footprint in the frame, plus a margin, clipped to the frame.
        crop_matrix_full = alignment_matrix(landmarks, self.size, self.cfg.coverage)
        corners = np.array([[0, 0], [self.size, 0], [0, self.size], [self.size, self.size]], dtype=np.float64)
        footprint = transform_points(corners, invert_affine(crop_matrix_full))
        x0, y0 = np.clip(np.floor(footprint.min(axis=0)).astype(int) - 2, 0, None)
        x1, y1 = np.ceil(footprint.max(axis=0)).astype(int) + 2
        x1, y1 = min(x1, width), min(y1, height)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return frame.copy()
        roi = frame[y0:y1, x0:x1]
        local = landmarks - np.array([x0, y0])
        crop, matrix, crop_landmarks = align_face(roi, local, self.size, self.cfg.coverage)

        face, learned = self.decode(crop)
        if self.cfg.color != "none":
            region = build_mask(crop_landmarks, crop.shape, learned, erode=0, blur=0)
            face = COLOR_TRANSFERS[self.cfg.color](face, crop, region)

        face_roi = warp_to_frame(face, matrix, roi.shape)
        learned_roi = warp_to_frame(learned, matrix, roi.shape)
        face_width = float(np.ptp(local[:, 0]))
        mask = build_mask(
            local, roi.shape, learned_roi,
            erode=max(1, round(self.cfg.mask_erode * face_width)),
            blur=max(1, round(self.cfg.mask_blur * face_width)),
        )
        blend = alpha_blend if self.cfg.blend == "alpha" else poisson_blend
        out = frame.copy()
        out[y0:y1, x0:x1] = blend(roi, face_roi, mask)
        return out

    def __call__(self, frame: np.ndarray, time_s: float) -> tuple[np.ndarray, bool]:
        """Process one frame taken at `time_s` seconds: (output frame, whether a face was swapped)."""
        self.stats.frames += 1
        other_before = self.stats.other_person
        landmarks = self.locate(frame)
        self._index += 1
        if landmarks is None:
            if self.stats.other_person == other_before:  # frames of other people are counted apart
                self.stats.no_face += 1
            self.stats.landmarks.append(None)
            self.filter.reset()
            return frame, False
        if self.cfg.smooth:
            landmarks = self.filter(landmarks, time_s)
        self.stats.landmarks.append(landmarks)
        self.stats.swapped += 1
        return self.swap_face(frame, landmarks), True
