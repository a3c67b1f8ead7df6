"""Expression transfer on landmarks: who the face is, where the head is, and what the face is doing.

Reenactment makes a *target* person pull the *source* (driver) person's faces. On 68 landmarks we
split every frame into three parts and swap only one of them:

    landmarks = pose( neutral_shape + expression_offset )

* **pose**: where the head sits in the picture. In 2D a similarity transform (rotation, scale,
  translation) removes it: we fit each frame onto a fixed **mean shape** by Procrustes analysis
  (Umeyama's least-squares similarity, reused from phase 1), using only points that expressions
  hardly move (nose, eye corners). The mouth must stay out of the fit: an open mouth would otherwise
  "explain" part of itself as a larger scale.
* **neutral shape**: who the person is (long nose, wide jaw), in pose-free coordinates. We estimate it
  as the per-point median over a clip (people are neutral most of the time).
* **expression offset**: normalised frame minus neutral shape. A **PCA basis** learned on synthetic
  faces keeps only the directions expressions actually move in (mouth opening, smile, brows, blinks)
  and throws away detector noise.

Transfer: `target_neutral + amplify * source_offset`, then the target's own pose puts it back into the
target's frame. This is Face2Face's idea (Thies et al. 2016, "Face2Face: Real-time Face Capture and
Reenactment of RGB Videos", CVPR, section "Expression Transfer": transfer the *expression*
parameters, keep the target's identity and pose), on 2D landmarks instead of a 3D morphable model.

**3D-lite**: a 2D similarity cannot remove a head *turn* (yaw), so a turning driver looks like a
changing expression. We lift the 68 points onto a generic 3D mean face, estimate the head's rotation
and translation with `cv2.solvePnP`, back-project every point onto the mean face's depth, and measure
expressions in the head's own frame; rotation is then transferred separately (or not at all).

Coordinates: landmarks `(68, 2)` pixels; normalised shapes `(68, 2)` in *face units* (outer eye
corners about 1 apart, x right, y down, origin between the eyes); 3D model points `(68, 3)` with z
pointing *away* from the camera, like OpenCV's camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.synthetic import make_identity, make_tracks
from common.synthetic.face_render import project
from common.synthetic.identity import Identity, expressive_landmarks, neutral_landmarks
from solutions.phase1_face_swap.alignment import invert_affine, transform_points, umeyama

# The generic mean face: the synthetic generator's average identity, in face units. Its z axis points
# towards the camera, so we flip it to get OpenCV's convention (z away from the camera).
MEAN_FACE_3D = neutral_landmarks(Identity(seed=0)) * np.array([1.0, 1.0, -1.0])  # (68, 3)
MEAN_SHAPE = MEAN_FACE_3D[:, :2].copy()  # (68, 2): the frontal mean shape every frame is fitted onto

# Points that expressions hardly move: the nose (27-35) and the eye corners (36, 39, 42, 45).
STABLE_POINTS = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])
# For the head pose add the ear-level jaw points (0, 1, 15, 16): they give the fit depth to work with.
POSE_POINTS = np.concatenate([STABLE_POINTS, [0, 1, 15, 16]])


# ----------------------------------------------------------------------------------------------
# 2D: Procrustes normalisation, neutral shape, expression offsets
# ----------------------------------------------------------------------------------------------


def normalise(landmarks: np.ndarray, reference: np.ndarray = MEAN_SHAPE,
              points: np.ndarray = STABLE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Remove pose and scale: fit `landmarks` onto `reference` with a similarity transform.

    `landmarks`, `reference`: `(68, 2)`. Returns `(shape (68, 2) in reference units, matrix (2, 3))`
    where `matrix` maps frame pixels to the normalised frame (`invert_affine` maps back).
    """
    # TODO p2.expr.procrustes: Fit a similarity from landmarks[points] to reference[points]; apply to all 68.
    # Hint: ordinary Procrustes analysis = phase 1's umeyama(src, dst) (Umeyama 1991): (2, 3) matrix
    # Hint: frame -> reference; transform_points(landmarks, matrix) -> (68, 2).
    # Hint: pitfall: fit on the stable `points` only (nose, eye corners); a fit on all 68 lets an open
    # Hint: mouth shrink the scale. tests/phase2_face_reenactment/test_reenact_expression.py.
    # BEGIN SOLUTION p2.expr.procrustes
    landmarks = np.asarray(landmarks, dtype=np.float64)
    matrix = umeyama(landmarks[points], np.asarray(reference, dtype=np.float64)[points])  # (2, 3)
    return transform_points(landmarks, matrix), matrix
    # END SOLUTION


def denormalise(shape: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Put a normalised shape `(68, 2)` back into the frame whose `normalise` matrix is `matrix`."""
    return transform_points(shape, invert_affine(matrix))


def neutral_shape(shapes: np.ndarray, closed_share: float = 0.2) -> np.ndarray:
    """The neutral shape `(68, 2)` of a clip of normalised shapes `(T, 68, 2)`.

    Brows, eyes and nose: the per-point median (people are neutral most of the time, blinks are
    short). Mouth and jaw: the median over the `closed_share` of frames with the smallest lip gap,
    because a talking person's *median* mouth is half open, and an open "neutral" mouth would turn
    every closed driver frame into a negative opening (lips pushed through each other). Give a single
    neutral frame `(1, 68, 2)` when you have one.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    neutral = np.median(shapes, axis=0)
    gap = np.linalg.norm(shapes[:, 66] - shapes[:, 62], axis=1)  # (T,) inner-lip opening
    closed = shapes[np.argsort(gap)[: max(1, int(round(closed_share * len(shapes))))]]
    mouth_and_jaw = np.r_[0:17, 48:68]
    neutral[mouth_and_jaw] = np.median(closed[:, mouth_and_jaw], axis=0)
    return neutral


def keep_lips_apart(shape: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Stop the inner lower lip (65-67) from crossing the inner upper lip (63-61) of a normalised shape.

    A driver whose lips close tighter than its neutral frame gives negative openings; added to a
    target whose neutral mouth is closed, they would push the lips through each other. A lower lip
    may still sit as high as it does in `reference` (the target's neutral shape), so a zero
    expression always returns the reference unchanged.
    """
    shape = np.array(shape, dtype=np.float64)
    for lower, upper in ((65, 63), (66, 62), (67, 61)):
        limit = min(shape[upper, 1], reference[lower, 1])
        shape[lower, 1] = max(shape[lower, 1], limit)
    return shape


# ----------------------------------------------------------------------------------------------
# The expression basis: PCA of expression offsets
# ----------------------------------------------------------------------------------------------


@dataclass
class ExpressionBasis:
    """A linear expression model: offset ~ mean + coefficients @ components."""

    mean: np.ndarray  # (136,) the average offset (x0, y0, x1, y1, ...)
    components: np.ndarray  # (K, 136) orthonormal directions, largest variance first
    variance: np.ndarray  # (K,) variance of the offsets along each direction

    def project(self, offsets: np.ndarray) -> np.ndarray:
        """Offsets `(..., 68, 2)` -> coefficients `(..., K)`."""
        flat = np.asarray(offsets, dtype=np.float64).reshape(*np.shape(offsets)[:-2], 136)
        return (flat - self.mean) @ self.components.T

    def reconstruct(self, coefficients: np.ndarray) -> np.ndarray:
        """Coefficients `(..., K)` -> offsets `(..., 68, 2)`."""
        flat = np.asarray(coefficients) @ self.components + self.mean  # (..., 136)
        return flat.reshape(*flat.shape[:-1], 68, 2)

    def filter(self, offsets: np.ndarray) -> np.ndarray:
        """Keep only the part of `offsets` `(..., 68, 2)` that the basis can express."""
        return self.reconstruct(self.project(offsets))


def fit_expression_basis(offsets: np.ndarray, n_components: int = 8) -> ExpressionBasis:
    """Principal component analysis of expression offsets `(N, 68, 2)`, keeping `n_components`."""
    # TODO p2.expr.pca: PCA by SVD of the centred (N, 136) offset matrix.
    # Hint: X = offsets.reshape(N, 136); mean = X.mean(0); U, S, Vt = np.linalg.svd(X - mean,
    # Hint: full_matrices=False); components = Vt[:K] (rows, orthonormal); variance = S[:K]**2 / (N - 1).
    # Hint: pitfall: singular vectors have an arbitrary sign; flip each row so its largest-|.| entry is
    # Hint: positive (a stable model). Checked against np.linalg.eigh of the covariance (tests).
    # BEGIN SOLUTION p2.expr.pca
    flat = np.asarray(offsets, dtype=np.float64).reshape(len(offsets), 136)  # (N, 136)
    if len(flat) < 2:
        raise ValueError("need at least two offsets to fit a basis")
    mean = flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(flat - mean, full_matrices=False)
    k = min(n_components, len(vt))
    components = vt[:k]  # (K, 136)
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    return ExpressionBasis(mean, components * signs[:, None], singular[:k] ** 2 / (len(flat) - 1))
    # END SOLUTION


def synthetic_offsets(identities: int = 12, frames: int = 100, seed: int = 0) -> np.ndarray:
    """Expression offsets `(identities * frames, 68, 2)` with exact neutral shapes, from synthetic people.

    Only the landmark model of `common.synthetic` runs (no pixels are drawn), so this is fast. Each
    frame's expressive landmarks and the same person's neutral landmarks are projected with the same
    head pose, normalised, and subtracted: what remains is expression (plus the little that a 2D
    similarity cannot remove of a head turn).
    """
    size = 256
    out = []
    for i in range(identities):
        person = make_identity(seed * 10_000 + i)
        tracks = make_tracks(frames, 25.0, seed=seed * 10_000 + i)
        neutral = neutral_landmarks(person)
        for pose, expression in zip(tracks.pose, tracks.expression, strict=True):
            shape, _ = normalise(project(expressive_landmarks(person, expression), pose, size))
            rest, _ = normalise(project(neutral, pose, size))
            out.append(shape - rest)
    return np.stack(out)  # (N, 68, 2)


def transfer_expression(source_shape: np.ndarray, source_neutral: np.ndarray, target_neutral: np.ndarray,
                        amplify: float = 1.0, basis: ExpressionBasis | None = None) -> np.ndarray:
    """The target's neutral shape wearing the source's expression (all normalised `(68, 2)`).

    `amplify` scales the expression (0: the target stays neutral, 1: as strong as the driver's, >1:
    exaggerated); `basis`, when given, filters the offset to plausible expressions first.
    """
    # TODO p2.expr.transfer: offset = source_shape - source_neutral; return target_neutral + amplify * offset.
    # Hint: Face2Face (Thies et al. 2016) transfers the expression, never the identity: subtract
    # Hint: the *source's* neutral, add the *target's*. With a basis: offset = basis.filter(offset) first.
    # Hint: shapes (68, 2) in; a zero expression must give the target's neutral back exactly
    # Hint: (tests/phase2_face_reenactment/test_reenact_expression.py).
    # BEGIN SOLUTION p2.expr.transfer
    offset = np.asarray(source_shape, dtype=np.float64) - source_neutral  # (68, 2)
    if basis is not None:
        offset = basis.filter(offset)
    return np.asarray(target_neutral, dtype=np.float64) + amplify * offset
    # END SOLUTION


def reenact_landmarks(source_landmarks: np.ndarray, source_neutral: np.ndarray, target_landmarks: np.ndarray,
                      target_neutral: np.ndarray, amplify: float = 1.0,
                      basis: ExpressionBasis | None = None) -> np.ndarray:
    """Pixels in, pixels out: the target's landmarks `(68, 2)` with the source frame's expression.

    `source_neutral`, `target_neutral` are normalised `(68, 2)`; the target's pose comes from
    `target_landmarks` (the target frame being redrawn).
    """
    source_shape, _ = normalise(source_landmarks)
    _, target_matrix = normalise(target_landmarks)
    shape = transfer_expression(source_shape, source_neutral, target_neutral, amplify, basis)
    return denormalise(keep_lips_apart(shape, target_neutral), target_matrix)


# ----------------------------------------------------------------------------------------------
# 3D-lite: head pose with solvePnP, lifting onto the mean face, rotation transferred separately
# ----------------------------------------------------------------------------------------------


def camera_matrix(width: int, height: int) -> np.ndarray:
    """A plausible pinhole camera `(3, 3)` for an uncalibrated picture: focal length = the longer image
    side (about a 53 degree field of view across it), principal point at the centre."""
    focal = float(max(width, height))
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


@dataclass
class HeadPose:
    """Object-to-camera transform of the mean face: X_cam = rotation @ X_obj + translation."""

    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)
    camera: np.ndarray  # (3, 3) intrinsics used for the fit


def head_pose(landmarks: np.ndarray, width: int, height: int, model: np.ndarray = MEAN_FACE_3D,
              points: np.ndarray = POSE_POINTS) -> HeadPose:
    """Rotation and translation of the generic 3D face that best explain the 2D landmarks `(68, 2)`."""
    camera = camera_matrix(width, height)
    # TODO p2.expr.head_pose: Solve the perspective-n-point problem for model[points] -> landmarks[points].
    # Hint: cv2.solvePnP(object (N, 3) float64, image (N, 2) float64, camera, None, flags=cv2.SOLVEPNP_EPNP)
    # Hint: gives rvec, tvec (3, 1); refine with flags=cv2.SOLVEPNP_ITERATIVE, useExtrinsicGuess=True;
    # Hint: rotation = cv2.Rodrigues(rvec)[0] (3, 3). Pitfall: a failed or behind-the-camera fit (tvec z
    # Hint: <= 0) must raise ValueError. Face2Face fits pose jointly with a morphable model (Thies 2016).
    # BEGIN SOLUTION p2.expr.head_pose
    obj = np.ascontiguousarray(model[points], dtype=np.float64)  # (N, 3)
    img = np.ascontiguousarray(np.asarray(landmarks, dtype=np.float64)[points])  # (N, 2)
    ok, rvec, tvec = cv2.solvePnP(obj, img, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(obj, img, camera, None, rvec, tvec, useExtrinsicGuess=True,
                                      flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] <= 0:
        raise ValueError("solvePnP found no head pose in front of the camera")
    return HeadPose(cv2.Rodrigues(rvec)[0], tvec[:, 0], camera)
    # END SOLUTION


def lift(landmarks: np.ndarray, pose: HeadPose, model: np.ndarray = MEAN_FACE_3D) -> np.ndarray:
    """Back-project landmarks `(68, 2)` onto the mean face's depth -> the face in object space `(68, 3)`.

    Each landmark's viewing ray is cut at the depth the posed mean face has at that point; rotating
    the camera-space point back gives a frontal, pose-free 3D shape that keeps the person's own 2D
    layout (a mouth that opens, brows that rise) with the mean face's depth.
    """
    # TODO p2.expr.lift: depth Z_i of the posed model; X_cam = Z_i K^-1 [u, v, 1]; X_obj = R^T (X_cam - t).
    # Hint: camera_pts = model @ R.T + t (68, 3) and Z = camera_pts[:, 2]; rays = K^-1 @ [u, v, 1] per
    # Hint: point (68, 3) with third coordinate 1; camera space = Z[:, None] * rays; object space =
    # Hint: (camera - t) @ R (that is R^T applied to each row). Lifting the exact projection of the model
    # Hint: gives the model back (test_reenact_expression.py).
    # BEGIN SOLUTION p2.expr.lift
    points = np.asarray(landmarks, dtype=np.float64)
    depth = (model @ pose.rotation.T + pose.translation)[:, 2]  # (68,)
    homogeneous = np.hstack([points, np.ones((len(points), 1))])  # (68, 3)
    rays = homogeneous @ np.linalg.inv(pose.camera).T  # (68, 3), z = 1
    camera_points = depth[:, None] * rays
    return (camera_points - pose.translation) @ pose.rotation
    # END SOLUTION


def project_points(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                   camera: np.ndarray) -> np.ndarray:
    """Pinhole projection of object points `(N, 3)` -> pixels `(N, 2)` (no lens distortion)."""
    rvec = cv2.Rodrigues(np.asarray(rotation, dtype=np.float64))[0]
    pixels, _ = cv2.projectPoints(np.asarray(points, dtype=np.float64), rvec,
                                  np.asarray(translation, dtype=np.float64), camera, None)
    return pixels[:, 0, :]


def transfer_expression_3d(source_landmarks: np.ndarray, source_size: tuple[int, int],
                           source_neutral_3d: np.ndarray, source_neutral_rotation: np.ndarray,
                           target_landmarks: np.ndarray, target_size: tuple[int, int],
                           target_neutral_3d: np.ndarray, amplify: float = 1.0,
                           transfer_rotation: bool = False) -> np.ndarray:
    """The 3D-lite transfer: expression measured in the head's own frame, rotation handled apart.

    `*_size` are `(width, height)`; `*_neutral_3d` lifted neutral shapes `(68, 3)` (e.g. the median of
    `lift` over a clip); `source_neutral_rotation` `(3, 3)` is the driver's rest pose. With
    `transfer_rotation` the target's head also turns as the driver's turns away from its rest pose:
    R_new = (R_src R_rest^T) R_tgt. Returns the target's new landmarks `(68, 2)` in pixels.
    """
    source_pose = head_pose(source_landmarks, *source_size)
    target_pose = head_pose(target_landmarks, *target_size)
    offset = lift(source_landmarks, source_pose) - source_neutral_3d  # (68, 3) in the head's frame
    shape = target_neutral_3d + amplify * offset
    rotation = target_pose.rotation
    if transfer_rotation:
        rotation = source_pose.rotation @ source_neutral_rotation.T @ rotation
    return project_points(shape, rotation, target_pose.translation, target_pose.camera)
