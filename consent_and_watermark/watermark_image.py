"""Invisible, blind image/video watermark: a tiled spread-spectrum pattern in the luminance DFT.

How it works (read top to bottom):

**The pattern.** One T x T tile (T = 128) is defined by its 2-D DFT. The coefficients in a mid-frequency
ring (0.06 - 0.22 cycles/pixel, below what JPEG 50, a 3x3 blur or a 0.5x resize remove and above where
natural images hold most of their energy) are split by a keyed permutation into

- *pilot* coefficients (25 %): unit magnitude, keyed random phase; they carry no data and exist only so
  the detector can find where the tile grid sits (synchronisation);
- *payload* coefficients (75 %): unit magnitude, keyed phase, and a QPSK symbol whose real and imaginary
  parts are two chips of the keyed, convolutionally coded payload (``ecc.SpreadCode``).

The inverse DFT gives a real, noise-like tile that repeats over the whole image (Kutter's periodic
"self-reference" idea, Kutter 1998): a crop keeps whole periods, only their phase changes.

**Embedding.** ``Y' = Y + strength * mask * tile`` on luminance only (adding the same value to R, G and B
changes Y and leaves both chroma planes untouched, so 4:2:0 chroma subsampling cannot hurt it). The
mask is a mild perceptual weight (texture masking, Watson 1993): stronger in textured areas, weaker
in flat ones (a strong mask would hide the mark better but put it where the image itself is loudest,
which hurts detection). The change is rescaled to an RMS of exactly ``strength`` grey levels and
rounded: PSNR ~ 20 log10(255 / strength) = 40.5 dB at the default 2.4 (the target is >= 40 dB).

**Detection (blind).** High-pass the luminance and divide it by its local mean absolute value (a cheap
local whitening: busy regions, where the image itself is loud, count for less), *fold* it onto one
tile (sum all T x T blocks: the periodic watermark adds up coherently, the image content does not),
take the 2-D DFT, and find the cyclic shift by phase-only cross-correlation with the pilot (Kuglin &
Hines 1975). Undo the shift with a phase ramp, read the payload chips, Viterbi-decode, re-encode, and
count matching chips. ``detection.py`` turns the count into a false-positive bound.

**Geometry.** A zoom or rotation changes the period, and folding at the wrong period smears the mark.
The detector tries, in order: no change; the lattice *estimated* from the autocorrelation of the
whitened luminance (the periodic mark puts peaks at its period vectors, wherever a zoom of 0.75-1.4x or
a rotation of up to ~15 deg moved them; Kutter 1998); then a fixed grid, scale {1, 1/sqrt(0.9),
1/sqrt(0.75)} (a centred 90 % / 75 % crop resized back) x rotation {0, +-2 deg}, for images too small
for the estimate to stand out. Each guess is tried unflipped and flipped (folding a flipped image
gives the flipped tile up to a cyclic shift, which the pilot search absorbs). None of the guesses uses
the key, so each is one candidate: 2 x (9 + 1) = 20 multiply the bound; the pilot's shift search does
not (disjoint slots, independent key stream). The search stops at the first detection, so a marked,
unattacked frame costs one candidate and an unmarked one all of them.

**Video.** Every frame carries the same mark. ``detect_video`` sums the frames' tile spectra before
one decision (soft combining), and also reads each frame at its own pilot shift before summing: H.264
motion compensation drags the mark along with moving content, so its position drifts from frame to
frame. Both readings are candidates (40 in all).

**Limits (threat model).** Folding over a 1280-pixel-wide frame tolerates only ~0.2 % scale error and
~0.1 deg rotation (a 256-pixel image ~1 % and 0.5 deg); the lattice estimate reaches that precision on
720p frames, but on small images the autocorrelation peak drowns in the image content and only the
grid's exact guesses are recovered. Non-uniform warps (perspective, lens, local jitter) are not handled.
Small images carry little evidence: at 256 x 256 strong codecs (H.264 CRF 28) erase most of the mark.
Anyone with the key can remove or forge the mark; regeneration (re-synthesising
the image with a generative model) or heavy denoising removes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from consent_and_watermark.detection import FPR_THRESHOLD, Detection, match_fpr
from consent_and_watermark.ecc import SpreadCode, keyed_permutation, keyed_uniform


@dataclass(frozen=True)
class ImageWatermarkConfig:
    """Parameters shared by embedder and detector (changing any of them changes the mark)."""

    tile: int = 128  # T: period of the pattern in pixels
    band: tuple[float, float] = (0.08, 0.25)  # radial frequency ring in cycles/pixel
    pilot_fraction: float = 0.25  # share of ring coefficients used for synchronisation
    strength: float = 2.4  # RMS luminance change in grey levels (PSNR ~ 40.5 dB)
    mask_gamma: float = 0.25  # perceptual mask = (local activity + 2) ** gamma; 0 turns masking off
    highpass: int = 31  # box size of the detector's pre-filter (removes what lies below the band)
    whiten: int = 15  # box size of the detector's local-contrast normalisation
    lattice_z: float = 5.0  # autocorrelation peak z-score that counts as a visible tile lattice
    scales: tuple[float, ...] = (1.0, 1 / math.sqrt(0.9), 1 / math.sqrt(0.75))  # crop-and-resize-back
    angles: tuple[float, ...] = (0.0, 2.0, -2.0)  # rotations in degrees


CONFIG = ImageWatermarkConfig()
MIN_SIZE = CONFIG.tile  # one full period: below it the pattern cannot be folded
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma weights


@dataclass(frozen=True)
class _Layout:
    """Keyed carrier layout of one tile's rfft2 coefficients."""

    pilot_idx: tuple[np.ndarray, np.ndarray]  # (rows, cols) of pilot coefficients
    pilot_val: np.ndarray  # (P,) complex unit phasors
    data_idx: tuple[np.ndarray, np.ndarray]  # (rows, cols) of payload coefficients
    data_rot: np.ndarray  # (D,) complex unit phasors (keyed phase)
    data_ring: np.ndarray  # (D,) int ring index, for noise normalisation
    code: SpreadCode  # 2 D chips: D real parts then D imaginary parts


@lru_cache(maxsize=8)
def _layout(key: bytes, config: ImageWatermarkConfig) -> _Layout:
    t = config.tile
    fy = np.fft.fftfreq(t)[:, None]  # (T, 1) cycles/pixel
    fx = np.fft.rfftfreq(t)[None, :]  # (1, T/2+1)
    radius = np.hypot(fy, fx)
    cols = np.arange(t // 2 + 1)[None, :]
    # Columns 0 and T/2 are their own mirror in rfft2 (Hermitian): leave them out so that every chosen
    # coefficient is an independent complex number.
    usable = (radius >= config.band[0]) & (radius <= config.band[1]) & (cols > 0) & (cols < t // 2)
    rows, cols = np.nonzero(usable)
    order = keyed_permutation(key, "image/coefficients", rows.size)
    n_pilot = int(round(config.pilot_fraction * rows.size))
    phase = np.exp(2j * np.pi * keyed_uniform(key, "image/phase", rows.size))
    p, d = order[:n_pilot], order[n_pilot:]
    ring = np.round(radius[rows[d], cols[d]] * t).astype(np.int64)
    return _Layout(
        pilot_idx=(rows[p], cols[p]),
        pilot_val=phase[p],
        data_idx=(rows[d], cols[d]),
        data_rot=phase[d],
        data_ring=ring - ring.min(),
        code=SpreadCode(key, 2 * d.size, "image/payload"),
    )


@lru_cache(maxsize=8)
def _tile(key: bytes, payload: int, config: ImageWatermarkConfig) -> np.ndarray:
    """The spatial watermark tile for (key, payload): (T, T) float32 with unit RMS."""
    lay = _layout(key, config)
    chips = lay.code.chips(payload)  # (2D,) +-1
    n = lay.data_rot.size
    spectrum = np.zeros((config.tile, config.tile // 2 + 1), np.complex128)  # rfft2 layout
    spectrum[lay.pilot_idx] = lay.pilot_val
    spectrum[lay.data_idx] = (chips[:n] + 1j * chips[n:]) / math.sqrt(2.0) * lay.data_rot
    tile = np.fft.irfft2(spectrum, s=(config.tile, config.tile))
    return (tile / np.sqrt(np.mean(tile**2))).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 luma."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    return cv2.transform(rgb.astype(np.float32), LUMA[None, :]).reshape(rgb.shape[:2])


def _texture_mask(rgb: np.ndarray) -> np.ndarray:
    """Perceptual weight (H, W): (local activity + 2)^gamma, so flat areas get less than textured ones.

    A slowly varying weight, so it is computed at quarter resolution and interpolated (4x faster).
    """
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # (H, W) uint8 luma
    small = cv2.resize(grey, (w // 4, h // 4), interpolation=cv2.INTER_AREA).astype(np.float32)
    activity = cv2.blur(np.abs(small - cv2.blur(small, (3, 3))), (5, 5))  # (H/4, W/4)
    return cv2.resize((activity + 2.0) ** CONFIG.mask_gamma, (w, h), interpolation=cv2.INTER_LINEAR)


def embed(rgb: np.ndarray, payload: int, key: bytes, strength: float | None = None) -> np.ndarray:
    """Mark an (H, W, 3) uint8 RGB image with a 64-bit payload; returns a new (H, W, 3) uint8 image.

    Deterministic for (image, payload, key). ``strength`` is the RMS luminance change in grey levels
    (default 2.4: about 40.5 dB PSNR after rounding). Raises ValueError when a side is below ``MIN_SIZE``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"image {w}x{h} is too small to carry the watermark (sides must be >= {MIN_SIZE})")
    t = CONFIG.tile
    tile = _tile(key, payload, CONFIG)
    pattern = np.tile(tile, (-(-h // t), -(-w // t)))[:h, :w]  # (H, W) periodic pattern
    delta = cv2.multiply(_texture_mask(rgb), pattern)  # (H, W) float32
    rms = cv2.norm(delta) / math.sqrt(delta.size)
    gain = (CONFIG.strength if strength is None else strength) / max(rms, 1e-12)
    step = cv2.multiply(delta, gain, dtype=cv2.CV_16S)  # (H, W) rounded to the nearest integer
    return cv2.add(rgb, cv2.merge([step, step, step]), dtype=cv2.CV_8U)  # same step on R, G, B; saturates


def _highpass(y: np.ndarray) -> np.ndarray:
    """(H, W) luminance -> whitened (H, W): remove what lies below the band, then equalise local contrast."""
    r = y - cv2.blur(y, (CONFIG.highpass, CONFIG.highpass))
    # Divide by the local mean absolute level: busy regions (strong host "noise") count for less,
    # flat regions (where the mark stands out) for more -- a cheap local whitening.
    return r / (cv2.blur(np.abs(r), (CONFIG.whiten, CONFIG.whiten)) + 1.0)


def _fold(y: np.ndarray) -> np.ndarray:
    """Sum all T x T blocks of an (H, W) image (zero-padded to whole tiles) -> (T, T) float64."""
    t = CONFIG.tile
    h, w = y.shape
    padded = np.zeros((-(-h // t) * t, -(-w // t) * t), np.float32)
    padded[:h, :w] = y
    return padded.reshape(padded.shape[0] // t, t, padded.shape[1] // t, t).sum(axis=(0, 2), dtype=np.float64)


def _grid_matrix(scale: float, angle: float) -> np.ndarray:
    """2x2 matrix of a zoom by ``scale`` and a counter-clockwise rotation by ``angle`` degrees (as cv2).

    Its columns are where the tile's period vectors (T, 0) and (0, T) end up, in units of T.
    """
    return cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)[:, :2]


def _warp(y: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Undo the linear map ``a`` (2x2, about the image centre): output pixel p samples input a @ p."""
    if np.allclose(a, np.eye(2)):
        return y
    h, w = y.shape
    s = math.sqrt(abs(np.linalg.det(a)))
    out_w, out_h = max(1, round(w / s)), max(1, round(h / s))
    m = np.hstack([a, (np.array([w / 2, h / 2]) - a @ np.array([out_w / 2, out_h / 2]))[:, None]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(y, m, (out_w, out_h), flags=flags, borderMode=cv2.BORDER_CONSTANT)


def _lattice_peak(ac: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, float]:
    """Highest autocorrelation value over lags (ys, xs) -> ((x, y) lag refined to sub-pixel, z-score)."""
    window = ac[np.ix_(ys % ac.shape[0], xs % ac.shape[1])]
    iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)

    def parabola(a: np.ndarray, i: int) -> float:  # vertex of the parabola through a[i-1], a[i], a[i+1]
        if 0 < i < a.size - 1 and a[i - 1] - 2 * a[i] + a[i + 1] < 0:
            return i + 0.5 * (a[i - 1] - a[i + 1]) / (a[i - 1] - 2 * a[i] + a[i + 1])
        return float(i)

    lag = np.array([xs[0] + parabola(window[iy, :], ix), ys[0] + parabola(window[:, ix], iy)])
    return lag, float((window[iy, ix] - window.mean()) / (window.std() + 1e-12))


def _estimate_lattice(weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """The tile's period vectors from a whitened autocorrelation of the luminance (Kutter 1998).

    ``weights`` is |rfft2|^0.5 of the whitened luminance: the plain autocorrelation would use |rfft2|^2,
    but flattening the spectrum (as GCC-PHAT does) sharpens the peaks of a periodic pattern against the
    broad correlation of image content (z-score ~3 -> ~13 on 512-px photographs). A periodic mark puts
    peaks at its period vectors, wherever a zoom (0.75x - 1.4x) or a rotation (up to ~15 deg) moved
    them. Returns the 2x2 matrix with those vectors as columns (units of T), or None when either peak
    fails to stand out. Uses no key, so trying it costs one candidate in the bound, like a fixed guess.
    """
    t = CONFIG.tile
    ac = np.fft.irfft2(weights, s=shape)  # (H, W) generalised circular autocorrelation
    near = np.arange(-int(0.3 * t), int(0.3 * t) + 1)
    far = np.arange(int(0.75 * t), int(1.4 * t) + 1)
    along_x, zx = _lattice_peak(ac, near, far)
    along_y, zy = _lattice_peak(ac, far, near)
    if min(zx, zy) < CONFIG.lattice_z:
        return None
    return np.column_stack([along_x, along_y]) / t


GRID = [_grid_matrix(s, a) for a in CONFIG.angles for s in CONFIG.scales]  # fixed guesses, identity first
N_CANDIDATES = 2 * (len(GRID) + 1)  # (grid + the estimated lattice) x (unflipped, flipped)


def _pilot_shift(spectrum: np.ndarray, lay: _Layout) -> tuple[int, int, float]:
    """Phase-only correlation of a (T, T/2+1) tile spectrum with the pilot -> (dy, dx, peak z-score).

    The peak of the correlation surface is the cyclic shift of the tile grid (Kuglin & Hines 1975).
    """
    t = CONFIG.tile
    z = spectrum[lay.pilot_idx]
    cross = np.zeros_like(spectrum)
    cross[lay.pilot_idx] = z * np.conj(lay.pilot_val) / (np.abs(z) + 1e-9)
    corr = np.fft.irfft2(cross, s=(t, t))  # (T, T)
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return int(dy), int(dx), float((corr[dy, dx] - corr.mean()) / (corr.std() + 1e-12))


def _symbols(spectrum: np.ndarray, shift: tuple[int, int], lay: _Layout) -> np.ndarray:
    """Payload coefficients with the shift and their keyed phase undone -> (D,) complex ~ c_re + i c_im."""
    rows, cols = lay.data_idx
    ramp = np.exp(2j * np.pi * (rows * shift[0] + cols * shift[1]) / CONFIG.tile)  # undo a cyclic shift
    sym = spectrum[rows, cols] * ramp * np.conj(lay.data_rot)  # (D,)
    # Reliability weight: divide by the RMS magnitude of the coefficient's frequency ring.
    counts = np.maximum(np.bincount(lay.data_ring), 1)
    ring_power = np.bincount(lay.data_ring, weights=np.abs(sym) ** 2) / counts
    return sym / np.sqrt(ring_power[lay.data_ring] + 1e-12)


def _decide(sym: np.ndarray, lay: _Layout, n_candidates: int, details: dict) -> Detection:
    """Decode the payload from (D,) symbols, re-encode, count matching chips, bound the FPR."""
    soft = np.concatenate([sym.real, sym.imag])  # (2D,) soft chips
    payload, expected = lay.code.decode(soft)
    matches = int(np.count_nonzero(soft * expected > 0))  # an exact 0 counts as a mismatch
    fpr = match_fpr(soft.size, matches, n_candidates, readable=payload is not None)
    details = {**details, "candidates": n_candidates}
    return Detection(fpr < FPR_THRESHOLD, payload, soft.size - matches, soft.size, fpr, details)


def _geometries(power_for: Callable[[], np.ndarray | None]) -> Iterator[tuple[str, np.ndarray]]:
    """Geometric guesses in search order: identity, the estimated lattice (if visible), the fixed grid."""
    yield "identity", GRID[0]
    estimate = power_for()
    if estimate is not None:
        yield "estimated", estimate
    for i, a in enumerate(GRID[1:], start=1):
        yield f"grid {i}", a


def _search(lumas: list[np.ndarray], key: bytes, per_frame: bool) -> Detection:
    """Try every geometric candidate on whitened luminance frames; stop at the first readable detection.

    For each candidate the frames' folds are transformed to spectra and summed before one pilot search
    (a static mark); when ``per_frame``, each frame is also read at its own pilot peak before summing
    (a mark that drifts with the content, as H.264 motion compensation makes it), which doubles the
    candidate count.
    """
    lay = _layout(key, CONFIG)
    n_candidates = N_CANDIDATES * (2 if per_frame else 1)

    def lattice() -> np.ndarray | None:
        weights = sum(np.sqrt(np.abs(np.fft.rfft2(y))) for y in lumas[:8])  # (H, W/2+1)
        return _estimate_lattice(weights, lumas[0].shape)

    best = None
    for name, a in _geometries(lattice):
        folds = [_fold(_warp(y, a)) for y in lumas]  # (T, T) each
        for flip in (False, True):
            spectra = [np.fft.rfft2(f[:, ::-1] if flip else f) for f in folds]  # (T, T/2+1) each
            total = np.sum(spectra, axis=0)
            dy, dx, _ = _pilot_shift(total, lay)
            geometry = {"geometry": name, "matrix": np.round(a, 4).tolist(), "flip": flip}
            tries = [(_symbols(total, (dy, dx), lay), {**geometry, "shift": (dy, dx)})]
            if per_frame:
                aligned = np.zeros(lay.data_rot.size, np.complex128)
                for spectrum in spectra:
                    fy, fx, z = _pilot_shift(spectrum, lay)
                    aligned += max(z - 4.0, 0.0) * _symbols(spectrum, (fy, fx), lay)  # trust clear peaks
                tries.append((aligned, {**geometry, "shift": "per frame"}))
            for sym, details in tries:
                found = _decide(sym, lay, n_candidates, details)
                if found.detected and found.payload is not None:
                    return found
                # Otherwise keep the strongest evidence (a detection whose CRC failed ranks first).
                if best is None or (found.fpr, found.bit_errors) < (best.fpr, best.bit_errors):
                    best = found
    return best


def detect(rgb: np.ndarray, key: bytes) -> Detection:
    """Blind detection in an (H, W, 3) uint8 image (or (H, W) luminance); see the module docstring."""
    y = _highpass(luminance(rgb))
    if min(y.shape) < 16:
        return Detection(False, None, 0, 0, 1.0, {"reason": "image too small"})
    return _search([y], key, per_frame=False)


def detect_video(frames: Iterable[np.ndarray], key: bytes, max_frames: int = 60) -> Detection:
    """Blind detection over up to ``max_frames`` frames: soft evidence is combined before deciding.

    The frames' complex tile spectra are summed (soft combining): the mark adds up coherently, frame
    content does not, so a few weak frames give one strong decision, unlike a vote of per-frame decisions.
    """
    lumas = []
    for i, frame in enumerate(frames):
        if i >= max_frames:
            break
        lumas.append(_highpass(luminance(frame)).astype(np.float16))  # (H, W), half size in memory
    if not lumas or min(lumas[0].shape) < 16:
        return Detection(False, None, 0, 0, 1.0, {"frames": len(lumas)})
    found = _search([y.astype(np.float32) for y in lumas], key, per_frame=len(lumas) > 1)
    found.details["frames"] = len(lumas)
    return found
