"""Identity embeddings: "is this the person we want?" when a frame holds several faces.

dlib's face recognition model maps a face to a 128-D descriptor (a ResNet trained with a metric loss,
in the spirit of FaceNet: Schroff et al. 2015). Two photos of the same person land closer than about
0.6 in Euclidean distance; different people land farther apart. Extraction and swapping use this to
keep only the chosen person's face, and the phase-1 benchmark uses it to measure identity transfer.

A descriptor costs 0.1-0.3 s per face on a CPU, so the pipeline computes descriptors only when it was
given a reference person (`--reference`), and then only on the frames where it runs the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common import dlib_models

SAME_PERSON_DISTANCE = 0.6  # dlib's recommended threshold


def descriptor(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """128-D identity descriptor `(128,)` of the face with these 68 (or 5) landmarks."""
    return dlib_models.face_descriptor(rgb, landmarks)


def identity_distances(query: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query descriptor (Q, 128) to its nearest reference (R, 128): (Q,)."""
    query, references = np.atleast_2d(query), np.atleast_2d(references)
    return np.linalg.norm(query[:, None, :] - references[None, :, :], axis=2).min(axis=1)


@dataclass
class IdentityFilter:
    """Keeps the faces of one person, given a few reference descriptors of that person."""

    references: np.ndarray  # (R, 128)
    threshold: float = SAME_PERSON_DISTANCE

    def best_match(self, descriptors: np.ndarray) -> int | None:
        """Index of the face (among `descriptors` (F, 128)) nearest the reference person, or None.

        None means no face is within `threshold`: the person is not in this frame.
        """
        # TODO p1.encoder.identity_filter: Pick the face whose nearest reference is closest, if close enough.
        # Hint: distances (F,) = min over references of ||d_f - r||_2 (identity_distances does this);
        # Hint: return int(argmin) when that distance < threshold, else None (also None for F = 0).
        # Hint: tests/phase1_face_swap/test_face_encoder.py.
        # BEGIN SOLUTION p1.encoder.identity_filter
        descriptors = np.asarray(descriptors).reshape(-1, self.references.shape[-1])
        if not len(descriptors):
            return None
        distances = identity_distances(descriptors, self.references)
        best = int(np.argmin(distances))
        return best if distances[best] < self.threshold else None
        # END SOLUTION

    def pick(self, rgb: np.ndarray, landmarks: list[np.ndarray]) -> int | None:
        """Index of the chosen person's face among the landmark sets of one frame, or None."""
        if not landmarks:
            return None
        return self.best_match(np.stack([descriptor(rgb, points) for points in landmarks]))
