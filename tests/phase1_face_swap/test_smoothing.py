"""One-Euro filter: exponential smoothing when beta = 0 (vs scipy.signal.lfilter), less jitter, little lag."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from common.impl import load


@pytest.fixture
def smoothing():
    return load("phase1_face_swap", "smoothing")


@pytest.mark.todo("p1.smooth.one_euro")
def test_beta_zero_is_exponential_smoothing(smoothing):
    fps, cutoff = 30.0, 2.0
    rng = np.random.default_rng(0)
    signal = np.cumsum(rng.normal(size=100))
    tau = 1 / (2 * math.pi * cutoff)
    alpha = 1 / (1 + tau * fps)  # Casiez et al. eq. 4-5 with Te = 1 / fps
    expected, _ = lfilter([alpha], [1, alpha - 1], signal[1:], zi=[(1 - alpha) * signal[0]])
    flt = smoothing.OneEuroFilter(min_cutoff=cutoff, beta=0.0)
    got = [flt(np.array([x]), i / fps)[0] for i, x in enumerate(signal)]
    assert got[0] == signal[0]
    np.testing.assert_allclose(got[1:], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.todo("p1.smooth.one_euro")
def test_still_landmarks_jitter_less(smoothing):
    rng = np.random.default_rng(1)
    still = rng.uniform(50, 200, size=(68, 2))
    noisy = still + rng.normal(0, 1.0, size=(120, 68, 2))  # a pixel of detector jitter
    flt = smoothing.OneEuroFilter(min_cutoff=1.0, beta=0.05)
    smoothed = np.stack([flt(frame, i / 25) for i, frame in enumerate(noisy)])
    raw_jitter = np.abs(np.diff(noisy, axis=0)).mean()
    smooth_jitter = np.abs(np.diff(smoothed[20:], axis=0)).mean()
    assert smooth_jitter < 0.5 * raw_jitter


@pytest.mark.todo("p1.smooth.one_euro")
def test_fast_motion_is_followed_with_little_lag(smoothing):
    times = np.arange(50) / 25
    positions = 400.0 * times  # 400 px/s, a quick head turn
    slow = smoothing.OneEuroFilter(min_cutoff=1.0, beta=0.0)
    adaptive = smoothing.OneEuroFilter(min_cutoff=1.0, beta=0.05)
    lag_slow = positions[-1] - [slow(np.array([p]), t) for p, t in zip(positions, times, strict=True)][-1][0]
    lag_adaptive = (
        positions[-1] - [adaptive(np.array([p]), t) for p, t in zip(positions, times, strict=True)][-1][0]
    )
    assert lag_adaptive < 0.5 * lag_slow


@pytest.mark.todo("p1.smooth.one_euro")
def test_one_euro_step_follows_the_paper_with_its_own_derivative_cutoff(smoothing):
    """One step by hand (Casiez et al. eq. 4-6): derivative in units per second, smoothed at d_cutoff."""
    flt = smoothing.OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=5.0)
    te = 1 / 30
    flt(np.array([0.0]), 0.0)
    got = flt(np.array([2.0]), te)

    def alpha(fc):
        return 1 / (1 + 1 / (2 * math.pi * fc) / te)

    dx_hat = alpha(5.0) * 2.0 / te
    fc = 1.0 + 0.5 * abs(dx_hat)
    np.testing.assert_allclose(got, [alpha(fc) * 2.0], rtol=1e-12)


def test_one_euro_restarts_on_a_repeated_timestamp(smoothing):
    """Two samples at the same time: the second restarts the filter (no division by a zero period)."""
    flt = smoothing.OneEuroFilter()
    flt(np.zeros(2), 0.0)
    out = flt(np.array([3.0, 4.0]), 0.0)
    np.testing.assert_array_equal(out, [3.0, 4.0])
