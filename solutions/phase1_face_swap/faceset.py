"""Face sets: the aligned crops (and their landmarks) that the autoencoder trains on.

Extraction = detect -> 68 landmarks -> (optional) keep only the chosen person -> align to the mean
face -> crop. A face set on disk is a folder written by `phase1_face_swap/extract.py`:

    faces/A/face_000000.png ...      aligned crops (through the provenance writer, no visible label)
    faces/A/faces.json               crop size, coverage and each crop's landmarks in crop pixels

Training also accepts raw images or videos: they are extracted in memory on the fly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common import media
from common.errors import UserError, first_line
from solutions.phase1_face_swap.alignment import align_face
from solutions.phase1_face_swap.face_detector import MTCNN, detect_faces_hog, landmarks68
from solutions.phase1_face_swap.face_encoder import IdentityFilter

INDEX = "faces.json"
MIN_FACE_PX = 40  # smaller faces hold too few pixels for a useful crop


@dataclass
class FaceSet:
    """Aligned crops `(N, S, S, 3)` uint8 and their landmarks `(N, 68, 2)` in crop pixels."""

    crops: np.ndarray
    landmarks: np.ndarray
    coverage: float = 0.6

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])

    def resized(self, size: int) -> FaceSet:
        """The same faces at `size` x `size` (landmarks scaled with them)."""
        if size == self.size:
            return self
        crops = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in self.crops])
        return FaceSet(crops, self.landmarks * (size / self.size), self.coverage)


@dataclass
class Extracted:
    """One face found during extraction: its crop, crop landmarks and where it came from."""

    crop: np.ndarray
    landmarks: np.ndarray
    source: str
    frame: int


def face_boxes(frame: np.ndarray, detector: str = "hog", upsample: int = 0) -> list[tuple[float, ...]]:
    """Boxes (x1, y1, x2, y2) of the faces at least MIN_FACE_PX wide, largest first.

    `detector` is "hog" (dlib, fast, frontal) or "mtcnn" (the CNN cascade, more poses, slower).
    """
    if detector == "mtcnn":
        boxes = [tuple(d.box) for d in MTCNN().detect(frame)]
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    elif detector == "hog":
        boxes = detect_faces_hog(frame, upsample)
    else:
        raise UserError(f"unknown detector {detector!r}: choose hog or mtcnn")
    return [b for b in boxes if min(b[2] - b[0], b[3] - b[1]) >= MIN_FACE_PX]


def extract_faces(frames: Iterable[np.ndarray], size: int = 256, coverage: float = 0.6,
                  identity_filter: IdentityFilter | None = None, source: str = "",
                  upsample: int = 0, every: int = 1, detector: str = "hog") -> Iterator[Extracted]:
    """Aligned faces of every `every`-th RGB frame (one per frame: the chosen or the largest face)."""
    for index, frame in enumerate(frames):
        if index % every:
            continue
        boxes = face_boxes(frame, detector, upsample)
        if not boxes:
            continue
        candidates = [landmarks68(frame, box) for box in boxes]
        choice = 0 if identity_filter is None else identity_filter.pick(frame, candidates)
        if choice is None:
            continue
        crop, _, crop_landmarks = align_face(frame, candidates[choice], size, coverage)
        yield Extracted(crop, crop_landmarks, source, index)


def media_files(path: Path) -> list[Path]:
    """The images and videos of a folder (sorted), or the file itself."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"no such file or folder: {path}")
    suffixes = media.IMAGE_SUFFIXES | media.VIDEO_SUFFIXES
    return sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)


def frames_of(path: Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB frames of one image or video file (grayscale and RGBA images come out RGB)."""
    if media.is_image_path(path):
        yield media.read_image(path)
    else:
        yield from media.iter_video(path, max_frames=max_frames)


def extract_from_path(path: Path, size: int = 256, coverage: float = 0.6,
                      identity_filter: IdentityFilter | None = None,
                      max_frames: int | None = None, every: int = 1,
                      detector: str = "hog") -> Iterator[Extracted]:
    """Faces of every image/video under `path` (a file or a folder)."""
    files = media_files(path)
    if not files:
        raise UserError(f"{path} holds no images or videos ({', '.join(sorted(media.IMAGE_SUFFIXES))}, ...)")
    for file in files:
        frames = frames_of(file, max_frames)
        yield from extract_faces(frames, size, coverage, identity_filter, source=file.name, every=every,
                                 detector=detector)


def to_faceset(faces: Iterable[Extracted], coverage: float, what: str) -> FaceSet:
    """Stack extracted faces; UserError if there are none."""
    faces = list(faces)
    if not faces:
        raise UserError(f"no face found in {what}: use frontal faces at least {MIN_FACE_PX} px wide")
    return FaceSet(np.stack([f.crop for f in faces]), np.stack([f.landmarks for f in faces]), coverage)


def read_index(index: Path) -> dict:
    """The `faces.json` that extract.py wrote, checked: UserError naming the file if it is not one."""
    problem = f"{index} is not a faceset index written by extract.py"
    try:
        meta = json.loads(index.read_text())
        faces = meta["faces"]
        ok = isinstance(meta["coverage"], (int, float)) and isinstance(faces, list) and all(
            isinstance(face["file"], str) and np.shape(face["landmarks"]) == (68, 2) for face in faces
        )
    except OSError as err:
        raise UserError(f"cannot read {index}: {err.strerror}") from err
    except KeyError as err:
        raise UserError(f"{problem} (no {err.args[0]!r} entry): re-run extract.py") from err
    except (ValueError, TypeError) as err:  # not JSON (ValueError), or entries of the wrong type
        raise UserError(f"{problem} ({first_line(err)}): re-run extract.py") from err
    if not ok:
        raise UserError(f"{problem} (a coverage or a face entry is malformed): re-run extract.py")
    return meta


def load_faceset(path: str | Path, size: int, coverage: float = 0.6,
                 max_frames: int | None = None) -> FaceSet:
    """A face set at `size` px: from an extract.py folder, or extracted now from images/videos."""
    path = Path(path)
    index = path / INDEX
    if index.is_file():
        meta = read_index(index)
        if abs(meta["coverage"] - coverage) > 1e-6:
            raise UserError(f"{path} was extracted with coverage {meta['coverage']}, not {coverage}")
        if not meta["faces"]:
            raise UserError(f"{path} holds no faces")
        crops = [media.read_image(path / face["file"]) for face in meta["faces"]]
        if len({crop.shape for crop in crops}) > 1:
            raise UserError(f"the crops in {path} differ in size: re-run extract.py")
        landmarks = np.array([face["landmarks"] for face in meta["faces"]], dtype=np.float64)
        return FaceSet(np.stack(crops), landmarks, coverage).resized(size)
    return to_faceset(extract_from_path(path, size, coverage, max_frames=max_frames), coverage, str(path))
