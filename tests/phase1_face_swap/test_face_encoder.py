"""The identity filter on hand-made descriptors, and dlib's descriptor on a real face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from common import dlib_models
from common.impl import load
from common.synthetic import make_identity, render_clip


@pytest.fixture
def enc():
    return load("phase1_face_swap", "face_encoder")


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 128))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.todo("p1.encoder.identity_filter")
def test_filter_picks_the_face_nearest_the_reference_person(enc):
    rng = np.random.default_rng(0)
    person = _unit(rng, 1)[0] * 0.5
    references = person + 0.05 * _unit(rng, 3)  # three photos of the person
    faces = np.stack(
        [
            person + 0.9 * _unit(rng, 1)[0],  # someone else (distance 0.9)
            person + 0.2 * _unit(rng, 1)[0],  # the person (distance ~0.2)
            person + 0.4 * _unit(rng, 1)[0],  # a worse photo of the person
        ]
    )
    chosen = enc.IdentityFilter(references).best_match(faces)
    distances = np.linalg.norm(faces[:, None] - references[None], axis=2).min(axis=1)
    assert chosen == int(np.argmin(distances)) == 1


@pytest.mark.todo("p1.encoder.identity_filter")
def test_filter_rejects_strangers_and_empty_frames(enc):
    rng = np.random.default_rng(1)
    references = _unit(rng, 2) * 0.3
    strangers = references[0] + 0.8 * _unit(rng, 4)
    assert enc.IdentityFilter(references, threshold=0.6).best_match(strangers) is None
    assert enc.IdentityFilter(references).best_match(np.zeros((0, 128))) is None


@pytest.mark.todo("p1.encoder.identity_filter")
def test_filter_on_dlib_descriptors_picks_the_mirrored_photo_over_a_stranger(enc):
    """One frame, two faces: a synthetic stranger (left) and the reference photo mirrored (right)."""
    image = skimage.data.astronaut()
    reference = enc.descriptor(image, dlib_models.largest_face_landmarks(image))
    assert reference.shape == (128,)
    stranger = render_clip(make_identity(7), 1, 256, speech=False).frames[0]
    stranger = cv2.resize(stranger, image.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    frame = np.ascontiguousarray(np.concatenate([stranger, image[:, ::-1]], axis=1))
    boxes = sorted(dlib_models.detect_faces(frame))  # left to right
    assert len(boxes) == 2 and boxes[1][0] >= image.shape[1]  # the stranger's face, then the photo's
    landmarks = [dlib_models.landmarks68(frame, box) for box in boxes]
    person = enc.IdentityFilter(reference[None])
    assert person.pick(frame, landmarks) == 1
    assert person.pick(frame, landmarks[::-1]) == 0
    assert person.pick(frame, landmarks[:1]) is None  # the stranger alone is nobody to swap


@pytest.mark.todo("p1.encoder.identity_filter")
def test_a_face_exactly_at_the_threshold_is_not_the_person(enc):
    references = np.zeros((1, 128))
    at = np.zeros((1, 128))
    at[0, 0] = 0.5
    assert enc.IdentityFilter(references, threshold=0.5).best_match(at) is None
    assert enc.IdentityFilter(references, threshold=0.5001).best_match(at) == 0


@pytest.mark.todo("p1.encoder.identity_filter")
def test_a_face_matches_its_nearest_reference_photo_not_their_average(enc):
    references = np.zeros((2, 128))
    references[1, 0] = 2.0  # two photos of the person, far apart
    assert enc.IdentityFilter(references).best_match(references[:1].copy()) == 0  # mean distance: 1.0


def test_the_default_threshold_is_dlibs_0_6_and_no_landmarks_pick_no_one(enc):
    assert enc.IdentityFilter(np.zeros((1, 128))).threshold == enc.SAME_PERSON_DISTANCE == 0.6
    assert enc.IdentityFilter(np.zeros((1, 128))).pick(np.zeros((8, 8, 3), np.uint8), []) is None
