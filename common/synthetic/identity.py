"""A person who does not exist: every shape and colour parameter of one synthetic face, drawn from a seed.

The face lives in *face units*: the distance between the outer eye corners (landmarks 36 and 45) of
the average identity is about 1, x points right, y points down and z points towards the camera, with the
origin between the eyes. `neutral_landmarks` builds the 68 points of the iBUG 300-W markup
(jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67) in 3D from the parameters, so a head
pose is a rotation of these points and the renderer draws every feature exactly where they say.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

# Skin tones (RGB) from light to dark; an identity picks a blend of two neighbours.
SKIN_TONES = np.array(
    [[241, 204, 178], [226, 184, 152], [204, 160, 124], [176, 128, 94], [140, 98, 70], [102, 70, 50]],
    dtype=np.float64,
)
HAIR_COLOURS = np.array(
    [[24, 20, 18], [58, 40, 28], [102, 72, 44], [170, 130, 80], [138, 62, 34], [150, 148, 146]],
    dtype=np.float64,
)
IRIS_COLOURS = np.array(
    [[70, 44, 28], [110, 76, 44], [70, 110, 140], [80, 120, 80], [100, 100, 110]], dtype=np.float64
)


@dataclass(frozen=True)
class Identity:
    """Shape (face units) and appearance parameters of one synthetic person."""

    seed: int
    # Shape, in face units (defaults: the average identity).
    jaw_width: float = 0.85  # half-width of the face at ear level (landmarks 0 and 16)
    jaw_top: float = -0.03  # height of landmarks 0/16 below the eye line
    face_length: float = 1.40  # chin (landmark 8) below jaw_top
    jaw_square: float = 2.2  # superellipse exponent of the jaw: 2 = oval, larger = squarer
    eye_spacing: float = 0.485  # x of the outer eye corners (36 at -eye_spacing, 45 at +eye_spacing)
    eye_width: float = 0.255  # corner-to-corner width of one eye
    eye_open: float = 0.085  # lid-to-lid height of an open eye
    brow_height: float = 0.22  # brow arch above the eye line
    brow_thickness: float = 0.07
    brow_arch: float = 0.065  # how much the brows curve
    nose_length: float = 0.62  # eye line to the base of the nose (landmark 33)
    nose_width: float = 0.165  # half-width of the nostrils (31 and 35)
    mouth_y: float = 0.895  # height of the mouth corners below the eye line
    mouth_width: float = 0.305  # half-width of the mouth (48 and 54)
    upper_lip: float = 0.065  # upper lip thickness
    lower_lip: float = 0.11  # lower lip thickness
    # Appearance (RGB colours, hair style, light).
    skin: tuple[float, float, float] = (220.0, 175.0, 145.0)
    hair: tuple[float, float, float] = (58.0, 40.0, 28.0)
    iris: tuple[float, float, float] = (70.0, 44.0, 28.0)
    lips: tuple[float, float, float] = (180.0, 100.0, 95.0)
    background: tuple[float, float, float] = (120.0, 130.0, 140.0)
    shirt: tuple[float, float, float] = (60.0, 80.0, 120.0)
    hair_volume: float = 0.25  # how far the hair stands out of the head outline
    hair_length: float = 0.5  # 0 = short (ends above the ears), 1 = down to the jaw, 2 = to the shoulders
    hairline: float = -0.62  # height of the fringe's lower edge in the middle
    parting: float = 0.0  # -1..1: the fringe sweeps down to one side
    texture: float = 6.0  # amplitude of the skin texture (grey levels)
    light: tuple[float, float, float] = (-0.4, -0.5, 0.77)  # direction towards the light
    pitch_hz: float = 140.0  # speaking pitch (speech.py)

    @property
    def subject_id(self) -> str:
        """Stable name of this person, e.g. for its consent record."""
        return f"synthetic-{self.seed:06d}"

    @property
    def display_name(self) -> str:
        """A made-up but readable name derived from the seed."""
        first = ["Ada", "Bo", "Cyd", "Dee", "Eli", "Fen", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lux"]
        last = ["Moss", "Nook", "Oak", "Pike", "Quill", "Reed", "Sage", "Teal", "Umber", "Vale"]
        digest = hashlib.sha256(str(self.seed).encode()).digest()
        return f"{first[digest[0] % len(first)]} {last[digest[1] % len(last)]} (synthetic)"

    def to_dict(self) -> dict:
        """Plain JSON-friendly parameters (`identity.json`)."""
        return asdict(self)


# How much each shape parameter varies between people (standard deviation, face units).
SHAPE_SPREAD = {
    "jaw_width": 0.045,
    "jaw_top": 0.02,
    "face_length": 0.07,
    "jaw_square": 0.2,
    "eye_spacing": 0.025,
    "eye_width": 0.012,
    "eye_open": 0.008,
    "brow_height": 0.02,
    "brow_thickness": 0.015,
    "brow_arch": 0.015,
    "nose_length": 0.045,
    "nose_width": 0.02,
    "mouth_y": 0.03,
    "mouth_width": 0.03,
    "upper_lip": 0.01,
    "lower_lip": 0.012,
}


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> tuple[float, float, float]:
    """Blend two neighbouring palette colours, vary the brightness a little and jitter each channel."""
    i = rng.uniform(0, len(palette) - 1)
    lo = int(np.floor(i))
    hi = min(lo + 1, len(palette) - 1)
    blend = palette[lo] + (i - lo) * (palette[hi] - palette[lo])
    colour = blend * rng.uniform(0.93, 1.07) + np.clip(rng.normal(0, jitter, 3), -2 * jitter, 2 * jitter)
    return tuple(float(c) for c in np.clip(colour, 0, 255))


def make_identity(seed: int) -> Identity:
    """Draw every parameter of one identity from `seed` (same seed, same person)."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    average = Identity(seed=int(seed))
    # Each shape parameter: the average plus a normal deviation, clipped at two standard deviations.
    shape = {
        name: float(getattr(average, name) + spread * np.clip(rng.normal(), -2.0, 2.0))
        for name, spread in SHAPE_SPREAD.items()
    }
    skin = np.array(_pick(rng, SKIN_TONES, 3.0))
    green = rng.uniform(0.52, 0.62)  # lips: the skin tone, redder and darker
    lips = np.clip(skin * np.array([rng.uniform(0.78, 0.9), green, green + rng.uniform(-0.02, 0.06)]), 0, 255)
    hue = rng.uniform(0, 2 * np.pi)
    grey = rng.uniform(90, 190)
    background = np.clip(grey + 45 * np.array([np.cos(hue), np.cos(hue + 2.1), np.cos(hue + 4.2)]), 0, 255)
    shirt = np.clip(rng.uniform(30, 200, 3), 0, 255)
    azimuth = rng.uniform(-0.6, 0.6)
    elevation = rng.uniform(0.3, 0.7)
    light = np.array([np.sin(azimuth), -elevation, np.cos(azimuth)])
    return Identity(
        seed=int(seed),
        **shape,
        skin=tuple(float(c) for c in skin),
        hair=_pick(rng, HAIR_COLOURS, 6.0),
        iris=_pick(rng, IRIS_COLOURS, 8.0),
        lips=tuple(float(c) for c in lips),
        background=tuple(float(c) for c in background),
        shirt=tuple(float(c) for c in shirt),
        hair_volume=float(rng.uniform(0.12, 0.35)),
        hair_length=float(rng.choice([0.0, 0.5, 1.0, 1.8]) + rng.uniform(-0.1, 0.2)),
        hairline=float(rng.uniform(-0.75, -0.55)),
        parting=float(rng.uniform(-1.0, 1.0) if rng.random() < 0.5 else 0.0),
        texture=float(rng.uniform(3.0, 8.0)),
        light=tuple(float(c) for c in light / np.linalg.norm(light)),
        pitch_hz=float(rng.uniform(95, 210)),
    )


def jaw_curve(ident: Identity, n: int = 17) -> np.ndarray:
    """`n` points `(n, 2)` along the jaw, ear to chin to ear, evenly spaced by arc length.

    The jaw is the lower half of a superellipse |x/a|^p + |y/b|^p = 1 (p = `jaw_square`)
    centred at (0, jaw_top), with a = `jaw_width` and b = `face_length`.
    """
    theta = np.linspace(0.0, np.pi, 400)  # 0 = left ear, pi/2 = chin, pi = right ear
    c, s = np.cos(theta), np.sin(theta)
    p = ident.jaw_square
    x = -ident.jaw_width * np.sign(c) * np.abs(c) ** (2.0 / p)
    y = ident.jaw_top + ident.face_length * np.abs(s) ** (2.0 / p)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    at = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(at, arc, x), np.interp(at, arc, y)], axis=1)


def neutral_landmarks(ident: Identity) -> np.ndarray:
    """The 68 landmarks `(68, 3)` of the neutral face in face units (x right, y down, z to camera)."""
    pts = np.zeros((68, 3))

    # Jaw 0-16: the face outline as 300-W annotates it; the ear-level points sit further back.
    jaw = jaw_curve(ident)
    phi = np.linspace(0.0, np.pi, 17)
    pts[0:17, :2] = jaw
    pts[0:17, 2] = -0.45 + 0.65 * np.sin(phi)

    # Brows 17-21 (image-left brow, outer to inner) and 22-26 (mirror): an arch above each eye.
    e, w = ident.eye_spacing, ident.eye_width
    t = np.linspace(0.0, 1.0, 5)
    bx = -(e + 0.12) + t * (w + 0.17)  # from beyond the outer corner to beyond the inner corner
    by = -ident.brow_height + ident.brow_arch * (2 * t - 1.0) ** 2 - 0.02 * t
    pts[17:22, 0], pts[17:22, 1] = bx, by
    pts[22:27, 0], pts[22:27, 1] = -bx[::-1], by[::-1]
    pts[17:27, 2] = 0.25 - 0.6 * pts[17:27, 0] ** 2

    # Nose 27-30 down the bridge, 31-35 along the base from left to right.
    nl = ident.nose_length
    pts[27:31, 0] = 0.0
    pts[27:31, 1] = np.linspace(0.0, 0.8 * nl, 4)
    pts[27:31, 2] = np.linspace(0.2, 0.55, 4)
    nw = ident.nose_width
    pts[31:36, 0] = np.array([-1.0, -0.5, 0.0, 0.5, 1.0]) * nw
    pts[31:36, 1] = nl - np.array([0.06, 0.03, 0.0, 0.03, 0.06])
    pts[31:36, 2] = np.array([0.25, 0.32, 0.38, 0.32, 0.25])

    # Eyes 36-41 (outer corner, two upper-lid points, inner corner, two lower-lid points) and 42-47.
    half_open = ident.eye_open
    lid_x = np.array([0.0, 1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3])
    lid_y = np.array([0.0, -0.6, -0.6, 0.0, 0.4, 0.4]) * half_open
    left_x = -e + lid_x * w
    pts[36:42, 0], pts[36:42, 1] = left_x, lid_y
    right_x = e - lid_x * w
    order = [3, 2, 1, 0, 5, 4]  # 42 is the inner corner, 45 the outer corner
    pts[42:48, 0], pts[42:48, 1] = right_x[order], lid_y[order]
    pts[36:48, 2] = 0.12 - 0.45 * pts[36:48, 0] ** 2

    _set_mouth(pts, ident, opening=0.0, smile=0.0, width=0.0, rounding=0.0)
    return pts


def _set_mouth(
    pts: np.ndarray, ident: Identity, opening: float, smile: float, width: float, rounding: float
) -> None:
    """Write the mouth landmarks 48-67 in place.

    `opening` is the lip gap (face units), `smile` lifts and widens the corners (0..1),
    `width` stretches (+) or narrows (-) the mouth, `rounding` pushes the lips forward into an O.
    """
    my = ident.mouth_y
    hw = ident.mouth_width * (1.0 + 0.18 * smile + 0.25 * width - 0.35 * rounding)
    lift = 0.06 * smile
    up, lo = ident.upper_lip * (1.0 + 0.3 * rounding), ident.lower_lip * (1.0 + 0.2 * rounding)
    gap_y = my - lift * 0.5  # where the lips meet in the middle
    # Outer upper lip 48-54 (corner, three points up to the cupid's bow, corner).
    ox = np.array([-1.0, -0.62, -0.26, 0.0, 0.26, 0.62, 1.0]) * hw
    bow = np.array([0.0, 0.75, 1.05, 0.95, 1.05, 0.75, 0.0])
    pts[48:55, 0] = ox
    pts[48:55, 1] = gap_y - bow * up - opening * 0.35 * np.array([0, 0.6, 1, 1, 1, 0.6, 0])
    pts[[48, 54], 1] = my - lift
    # Inner upper lip 60-64 and inner lower lip 65-67 (the lip gap).
    ix = np.array([-0.85, -0.26, 0.0, 0.26, 0.85]) * hw
    inner_up = gap_y - opening * 0.35 * np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    pts[60:65, 0], pts[60:65, 1] = ix, inner_up
    pts[[60, 64], 1] = my - lift
    inner_lo = gap_y + opening * 0.65 * np.array([1.0, 1.0, 1.0])
    pts[65:68, 0] = np.array([0.26, 0.0, -0.26]) * hw
    pts[65:68, 1] = inner_lo
    # Outer lower lip 55-59 (from the right corner back to the left).
    pts[55:60, 0] = np.array([0.7, 0.28, 0.0, -0.28, -0.7]) * hw
    drop = np.array([0.55, 0.95, 1.0, 0.95, 0.55])
    pts[55:60, 1] = gap_y + opening * 0.65 * np.array([0.7, 1.0, 1.0, 1.0, 0.7]) + drop * lo
    pts[48:68, 2] = 0.32 - 0.9 * pts[48:68, 0] ** 2 + 0.1 * rounding


# Columns of the per-frame expression track (animation.py) and what each one does to the face.
EXPRESSION_FIELDS = ("smile", "brow_raise", "mouth_open", "mouth_width", "mouth_round", "blink")


def expressive_landmarks(ident: Identity, expression: np.ndarray) -> np.ndarray:
    """Neutral landmarks deformed by one expression vector `(6,)` (see EXPRESSION_FIELDS) -> `(68, 3)`.

    smile 0..1 lifts and widens the mouth corners and squints the lower lids; brow_raise -1..1 moves
    the brows (negative = frown); mouth_open is the lip gap in face units (the chin drops with it);
    mouth_width -1..1 and mouth_round 0..1 come from the viseme; blink 0..1 closes the upper lids.
    """
    smile, brow, opening, width, rounding, blink = (float(v) for v in expression)
    pts = neutral_landmarks(ident)
    _set_mouth(pts, ident, opening=max(opening, 0.0), smile=smile, width=width, rounding=rounding)

    # The chin follows the lower lip: the jaw drops by most of the opening at the chin, none at the ears.
    phi = np.linspace(0.0, np.pi, 17)
    pts[0:17, 1] += 0.7 * max(opening, 0.0) * np.sin(phi) ** 2
    pts[0:17, 0] *= 1.0 + 0.02 * smile

    # Brows: raise lifts the whole arch, frowning lowers it and pulls the inner ends together.
    pts[17:27, 1] -= 0.08 * brow
    if brow < 0:
        inner = np.array([0, 0.25, 0.5, 0.75, 1.0])
        pts[17:22, 0] -= 0.03 * brow * inner
        pts[22:27, 0] += 0.03 * brow * inner[::-1]

    # Eyes: the upper lid (37, 38, 43, 44) comes down onto the lower lid; smiling lifts the lower lid.
    half = ident.eye_open
    for upper, lower in (((37, 38), (41, 40)), ((43, 44), (47, 46))):
        for u, lo in zip(upper, lower, strict=True):
            pts[lo, 1] -= 0.25 * half * smile
            pts[u, 1] += blink * (pts[lo, 1] - 0.1 * half - pts[u, 1])
    return pts
