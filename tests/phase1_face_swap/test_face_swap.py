"""The per-frame pipeline with an untrained model: what it may touch, and frames without faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.impl import load
from common.synthetic.clip import render_clip
from common.synthetic.identity import make_identity


@pytest.fixture
def swap():
    return load("phase1_face_swap", "face_swap")


@pytest.fixture(scope="module")
def clip():
    return render_clip(make_identity(5), 4, 160, speech=False)


def _swapper(swap, **overrides):
    autoencoder = load("phase1_face_swap", "autoencoder")
    torch.manual_seed(0)
    model = autoencoder.FaceSwapAutoencoder(autoencoder.AutoencoderConfig())
    with torch.no_grad():  # an untrained decoder, but with a confident learned mask (sigmoid(10) ~ 1)
        for decoder in model.decoders:
            decoder.to_output.bias[3] = 10.0
    return swap.FaceSwapper(model, swap.SwapConfig(**overrides))


@pytest.mark.todo("p1")
@pytest.mark.parametrize("blend,color", [("alpha", "reinhard"), ("poisson", "hist"), ("alpha", "none")])
def test_swap_changes_the_face_and_nothing_far_from_it(swap, clip, blend, color):
    swapper = _swapper(swap, blend=blend, color=color)
    frame = clip.frames[0]
    out, found = swapper(frame, 0.0)
    assert found and out.shape == frame.shape and out.dtype == np.uint8
    landmarks = clip.landmarks[0]
    (x1, y1), (x2, y2) = landmarks.min(axis=0), landmarks.max(axis=0)
    face = (slice(int(y1) + 5, int(y2) - 5), slice(int(x1) + 5, int(x2) - 5))
    assert np.abs(out[face].astype(int) - frame[face]).mean() > 2  # the untrained decoder draws a blur
    far = np.ones(frame.shape[:2], bool)
    far[max(int(y1) - 30, 0) : int(y2) + 30, max(int(x1) - 30, 0) : int(x2) + 30] = False
    np.testing.assert_array_equal(out[far], frame[far])


@pytest.mark.todo("p1")
def test_frames_without_a_face_pass_through_and_are_counted(swap, clip):
    swapper = _swapper(swap)
    blank = np.full((120, 160, 3), 90, np.uint8)
    frames = [clip.frames[0], blank, clip.frames[1], blank]
    outputs = [swapper(frame, i / 25) for i, frame in enumerate(frames)]
    assert [found for _, found in outputs] == [True, False, True, False]
    np.testing.assert_array_equal(outputs[1][0], blank)
    stats = swapper.stats
    assert (stats.frames, stats.swapped, stats.no_face) == (4, 2, 2)


class _WantedOnce:
    """An identity filter that recognises the person in the first frame it sees only."""

    def __init__(self):
        self.calls = 0

    def pick(self, frame, candidates):
        self.calls += 1
        return 0 if self.calls == 1 else None


@pytest.mark.todo("p1")
def test_frames_of_other_people_are_counted_apart_from_frames_without_a_face(swap, clip):
    swapper = _swapper(swap, detect_every=1)
    swapper.identity_filter = _WantedOnce()
    blank = np.full((120, 160, 3), 90, np.uint8)
    for i, frame in enumerate([clip.frames[0], clip.frames[1], blank]):
        swapper(frame, i / 25)
    stats = swapper.stats
    assert (stats.frames, stats.swapped, stats.other_person, stats.no_face) == (3, 1, 1, 1)


@pytest.mark.todo("p1")
def test_tracking_between_detections_follows_the_landmarks(swap, clip):
    swapper = _swapper(swap, detect_every=4, smooth=False)
    for i, frame in enumerate(clip.frames):
        swapper(frame, i / 25)
    for tracked, truth in zip(swapper.stats.landmarks, clip.landmarks, strict=True):
        assert np.abs(tracked - truth).mean() < 4.0  # dlib vs the renderer's ground truth, in pixels


@pytest.mark.todo("p1")
def test_colour_transfer_recolours_the_generated_face_not_the_original(swap, clip):
    swapper = _swapper(swap, blend="alpha", color="reinhard", smooth=False)
    swapper.decode = lambda crop: (255 - crop, np.ones(crop.shape[:2], np.float32))  # a "negative" face
    frame = clip.frames[0]
    out, found = swapper(frame, 0.0)
    assert found
    (x1, y1), (x2, y2) = clip.landmarks[0].min(axis=0), clip.landmarks[0].max(axis=0)
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4
    middle = (slice(int(cy - r), int(cy + r)), slice(int(cx - r), int(cx + r)))  # the middle of the face

    def grey(image: np.ndarray) -> np.ndarray:
        return image[middle].astype(float).mean(axis=2).ravel()

    assert np.corrcoef(grey(out), grey(frame))[0, 1] < -0.5  # the negative's structure in the frame's colours


@pytest.mark.todo("p1")
def test_smoothing_starts_again_after_frames_without_a_face(swap, clip):
    blank = np.full((120, 160, 3), 90, np.uint8)
    smoothed = _swapper(swap, smooth=True, detect_every=1)
    for i, frame in enumerate([clip.frames[0], blank, clip.frames[3]]):
        smoothed(frame, i / 25)
    raw = _swapper(swap, smooth=False, detect_every=1)
    raw(clip.frames[3], 0.0)
    np.testing.assert_allclose(smoothed.stats.landmarks[2], raw.stats.landmarks[0])  # no pull towards frame 0
