"""The identity filter on hand-made descriptors, and dlib's descriptor on a real face."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from common import dlib_models
from common.impl import load


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
def test_filter_on_dlib_descriptors_of_a_photo_and_its_mirror(enc):
    image = skimage.data.astronaut()
    mirrored = np.ascontiguousarray(image[:, ::-1])
    landmarks = dlib_models.largest_face_landmarks(image)
    reference = enc.descriptor(image, landmarks)
    assert reference.shape == (128,)
    mirror_landmarks = dlib_models.largest_face_landmarks(mirrored)
    assert enc.IdentityFilter(reference[None]).pick(mirrored, [mirror_landmarks]) == 0
