"""Temporal smoothing of landmarks: the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012).

Landmarks detected frame by frame jitter by a pixel or two even on a still head; the aligned crop
then shakes, and so does the pasted face (flicker). A low-pass filter removes jitter but adds lag
when the head moves. The One-Euro filter adapts its cut-off frequency to the speed of the signal:

    alpha(fc) = 1 / (1 + tau / Te),  tau = 1 / (2 pi fc),  Te = time since the last sample  (eq. 4-5)
    dx_hat    = exp. smoothing of the derivative (x_i - x_hat_{i-1}) / Te with cut-off d_cutoff
    fc        = min_cutoff + beta * |dx_hat|                                               (eq. 6)
    x_hat     = alpha(fc) * x_i + (1 - alpha(fc)) * x_hat_{i-1}

Slow motion -> low cut-off -> strong smoothing (no jitter); fast motion -> high cut-off -> little lag.
Each landmark coordinate is filtered independently (arrays of any shape work).
"""

from __future__ import annotations

import math

import numpy as np


def smoothing_factor(cutoff: np.ndarray | float, period: float) -> np.ndarray | float:
    """alpha = 1 / (1 + tau / Te) with tau = 1 / (2 pi cutoff) (Casiez et al. 2012, eq. 4-5)."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


class OneEuroFilter:
    """Adaptive low-pass filter for a stream of arrays (e.g. (68, 2) landmarks), one sample per call."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.min_cutoff = min_cutoff  # Hz: smoothing when still (lower = smoother, more lag)
        self.beta = beta  # how fast the cut-off rises with speed (higher = less lag when moving)
        self.d_cutoff = d_cutoff  # Hz: cut-off for the speed estimate itself
        self.reset()

    def reset(self) -> None:
        """Forget the past (e.g. after a cut, or when the face was lost)."""
        self.x_prev: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None
        self.t_prev: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter sample `x` taken at time `t` seconds; returns the smoothed sample (same shape)."""
        x = np.asarray(x, dtype=np.float64)
        if self.x_prev is None or self.t_prev is None or t <= self.t_prev:
            self.x_prev, self.dx_prev, self.t_prev = x.copy(), np.zeros_like(x), t
            return x.copy()
        # TODO p1.smooth.one_euro: One step of the One-Euro filter (derivative, adaptive cut-off, smoothing).
        # Hint: Casiez et al. 2012: te = t - t_prev; dx = (x - x_prev) / te; dx_hat = a_d*dx + (1-a_d)*dx_prev
        # Hint: with a_d = smoothing_factor(d_cutoff, te); fc = min_cutoff + beta * |dx_hat| (element-wise);
        # Hint: x_hat = a*x + (1-a)*x_prev with a = smoothing_factor(fc, te); store x_hat, dx_hat, t; return
        # Hint: x_hat.
        # Hint: with beta = 0 it is plain exponential smoothing; tests/phase1_face_swap/test_smoothing.py.
        # BEGIN SOLUTION p1.smooth.one_euro
        period = t - self.t_prev
        dx = (x - self.x_prev) / period
        alpha_d = smoothing_factor(self.d_cutoff, period)
        dx_hat = alpha_d * dx + (1 - alpha_d) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        alpha = smoothing_factor(cutoff, period)
        x_hat = alpha * x + (1 - alpha) * self.x_prev
        self.x_prev, self.dx_prev, self.t_prev = x_hat, dx_hat, t
        return x_hat.copy()
        # END SOLUTION
