"""Expression transfer: Procrustes, PCA basis (vs covariance eigenvectors), transfer, pose, lifting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.impl import load


@pytest.fixture
def expr():
    return load("phase2_face_reenactment", "expression_transfer")


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _face(expr, seed: int = 0) -> np.ndarray:
    """A plausible face in normalised units: the mean shape with a little individual variation."""
    return expr.MEAN_SHAPE + np.random.default_rng(seed).normal(0, 0.02, size=(68, 2))


@pytest.mark.todo("p2.expr.procrustes")
def test_procrustes_removes_a_known_similarity(expr):
    face = _face(expr)
    pose = _similarity(180.0, 0.4, 320.0, 200.0)  # a face 180 px wide, tilted, somewhere in a frame
    shape, matrix = expr.normalise(_apply(pose, face))
    reference_shape, reference_matrix = expr.normalise(face)
    np.testing.assert_allclose(shape, reference_shape, atol=1e-9)
    # The matrix undoes the pose: matrix o pose equals the fit of the unposed face.
    composed = matrix[:, :2] @ pose[:, :2], matrix[:, :2] @ pose[:, 2] + matrix[:, 2]
    np.testing.assert_allclose(composed[0], reference_matrix[:, :2], atol=1e-9)
    np.testing.assert_allclose(composed[1], reference_matrix[:, 2], atol=1e-9)


@pytest.mark.todo("p2.expr.procrustes")
def test_procrustes_ignores_the_mouth_and_maps_the_mean_shape_to_itself(expr):
    shape, matrix = expr.normalise(expr.MEAN_SHAPE)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(shape, expr.MEAN_SHAPE, atol=1e-12)
    open_mouth = expr.MEAN_SHAPE.copy()
    open_mouth[[56, 57, 58, 65, 66, 67], 1] += 0.3  # drop the lower lip: no effect on the fit
    _, matrix_open = expr.normalise(open_mouth)
    np.testing.assert_allclose(matrix_open, matrix, atol=1e-12)


@pytest.mark.todo("p2.expr.pca")
def test_pca_matches_the_covariance_eigenvectors(expr):
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(3, 136))
    offsets = (rng.normal(size=(200, 3)) * [3.0, 1.5, 0.5]) @ directions + rng.normal(0, 0.01, (200, 136))
    basis = expr.fit_expression_basis(offsets.reshape(200, 68, 2), n_components=3)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(offsets, rowvar=False))  # ascending order
    np.testing.assert_allclose(basis.variance, eigenvalues[::-1][:3], rtol=1e-8)
    np.testing.assert_allclose(basis.mean, offsets.mean(axis=0), atol=1e-10)
    cosines = np.sum(basis.components * eigenvectors[:, ::-1][:, :3].T, axis=1)  # same directions up to sign
    np.testing.assert_allclose(np.abs(cosines), 1.0, atol=1e-8)
    for row in basis.components:  # the sign convention: the largest entry of each direction is positive
        assert row[np.abs(row).argmax()] > 0


@pytest.mark.todo("p2.expr.pca")
def test_basis_keeps_offsets_in_its_span_and_drops_the_rest(expr):
    rng = np.random.default_rng(1)
    directions = np.linalg.qr(rng.normal(size=(136, 2)))[0].T  # (2, 136) orthonormal
    offsets = rng.normal(size=(40, 2)) @ directions
    basis = expr.fit_expression_basis(offsets.reshape(40, 68, 2), n_components=2)
    inside = (np.array([0.7, -1.2]) @ directions).reshape(68, 2)
    np.testing.assert_allclose(basis.filter(inside), inside, atol=1e-9)
    outside = np.linalg.qr(np.column_stack([directions.T, rng.normal(size=136)]))[0][:, 2].reshape(68, 2)
    np.testing.assert_allclose(basis.filter(outside + basis.mean.reshape(68, 2)), basis.mean.reshape(68, 2),
                               atol=1e-9)


@pytest.mark.todo("p2.expr.procrustes", "p2.expr.transfer")
def test_zero_expression_returns_the_target_neutral_shape(expr):
    source = _apply(_similarity(90.0, -0.2, 100.0, 120.0), _face(expr, 1))
    target = _apply(_similarity(150.0, 0.3, 400.0, 260.0), _face(expr, 2))
    source_neutral, _ = expr.normalise(source)
    target_neutral, _ = expr.normalise(target)
    out = expr.reenact_landmarks(source, source_neutral, target, target_neutral)
    np.testing.assert_allclose(out, target, atol=1e-9)
    # amplify = 0 keeps the target neutral whatever the driver does
    smiling = source.copy()
    smiling[[48, 54]] += [[-5.0, -4.0], [5.0, -4.0]]
    np.testing.assert_allclose(expr.reenact_landmarks(smiling, source_neutral, target, target_neutral, 0.0),
                               target, atol=1e-9)


@pytest.mark.todo("p2.expr.procrustes", "p2.expr.transfer")
def test_offset_moves_with_the_target_pose_and_amplification(expr):
    source_neutral = expr.MEAN_SHAPE  # fits onto itself with the identity
    target_pose = _similarity(200.0, 0.5, 300.0, 300.0)
    target = _apply(target_pose, expr.MEAN_SHAPE)  # the mean face posed: its fit is exactly the pose
    target_neutral, _ = expr.normalise(target)
    opened = source_neutral.copy()
    opened[66, 1] += 0.1  # the inner lower lip drops by 0.1 face units
    out = expr.reenact_landmarks(opened, source_neutral, target, target_neutral, amplify=2.0)
    moved = out - target
    expected = target_pose[:, :2] @ np.array([0.0, 0.2])  # 2 x 0.1 units, scaled and rotated with the target
    np.testing.assert_allclose(moved[66], expected, atol=1e-9)
    np.testing.assert_allclose(np.delete(moved, 66, axis=0), 0.0, atol=1e-9)


def _posed_projection(expr, rvec, tvec, size=(640, 480)):
    camera = np.array([[640.0, 0, 320.0], [0, 640.0, 240.0], [0, 0, 1.0]])  # = camera_matrix(640, 480)
    rvec, tvec = np.array(rvec, float), np.array(tvec, float)
    pixels, _ = cv2.projectPoints(expr.MEAN_FACE_3D, rvec, tvec, camera, None)
    return pixels[:, 0], camera


@pytest.mark.todo("p2.expr.head_pose")
def test_solvepnp_recovers_a_known_head_pose(expr):
    rvec = cv2.Rodrigues(cv2.Rodrigues(np.radians([10.0, 20.0, 5.0]))[0])[0].ravel()
    pixels, camera = _posed_projection(expr, rvec, [0.1, -0.2, 6.0])
    pose = expr.head_pose(pixels, 640, 480)
    np.testing.assert_allclose(pose.camera, camera)
    np.testing.assert_allclose(pose.rotation, cv2.Rodrigues(rvec)[0], atol=1e-6)
    np.testing.assert_allclose(pose.translation, [0.1, -0.2, 6.0], atol=1e-5)


@pytest.mark.todo("p2.expr.head_pose", "p2.expr.lift")
def test_lifting_the_exact_projection_gives_the_model_back(expr):
    rvec = np.radians([-8.0, 15.0, -4.0])
    pixels, _ = _posed_projection(expr, rvec, [-0.3, 0.1, 5.0])
    pose = expr.head_pose(pixels, 640, 480)
    np.testing.assert_allclose(expr.lift(pixels, pose), expr.MEAN_FACE_3D, atol=1e-6)
    moved = pixels + np.random.default_rng(0).normal(0, 2.0, pixels.shape)  # someone else's face
    lifted = expr.lift(moved, pose)
    rvec_fit = cv2.Rodrigues(pose.rotation)[0]
    reprojected, _ = cv2.projectPoints(lifted, rvec_fit, pose.translation, pose.camera, None)
    np.testing.assert_allclose(reprojected[:, 0], moved, atol=1e-6)  # each point stays on its ray


@pytest.mark.todo("p2.expr.head_pose", "p2.expr.lift")
def test_3d_transfer_of_a_zero_expression_returns_the_target(expr):
    source, _ = _posed_projection(expr, np.radians([5.0, -12.0, 3.0]), [0.0, 0.0, 7.0])
    target, _ = _posed_projection(expr, np.radians([-6.0, 18.0, -2.0]), [0.2, 0.1, 5.0])
    target = target + np.random.default_rng(1).normal(0, 1.0, target.shape)
    src_pose, tgt_pose = expr.head_pose(source, 640, 480), expr.head_pose(target, 640, 480)
    out = expr.transfer_expression_3d(source, (640, 480), expr.lift(source, src_pose), src_pose.rotation,
                                      target, (640, 480), expr.lift(target, tgt_pose), transfer_rotation=True)
    np.testing.assert_allclose(out, target, atol=1e-6)


@pytest.mark.todo("p2.expr.head_pose", "p2.expr.lift")
def test_3d_transfer_turns_the_target_by_the_drivers_turn_away_from_its_rest_pose(expr):
    rest, turned = np.radians([0.0, 5.0, 0.0]), np.radians([0.0, 25.0, 10.0])  # the driver turns
    target_rvec, target_t = np.radians([10.0, -15.0, 0.0]), [0.2, 0.1, 5.0]
    source, _ = _posed_projection(expr, turned, [0.0, 0.0, 7.0])
    target, camera = _posed_projection(expr, target_rvec, target_t)
    src_pose, tgt_pose = expr.head_pose(source, 640, 480), expr.head_pose(target, 640, 480)
    r_rest = cv2.Rodrigues(rest)[0]
    out = expr.transfer_expression_3d(source, (640, 480), expr.lift(source, src_pose), r_rest, target,
                                      (640, 480), expr.lift(target, tgt_pose), transfer_rotation=True)
    r_new = cv2.Rodrigues(turned)[0] @ r_rest.T @ cv2.Rodrigues(target_rvec)[0]  # R_src R_rest^T R_tgt
    want, _ = cv2.projectPoints(expr.MEAN_FACE_3D, cv2.Rodrigues(r_new)[0], np.array(target_t), camera, None)
    np.testing.assert_allclose(out, want[:, 0], atol=1e-4)


def test_the_neutral_mouth_comes_from_the_most_closed_frames(expr):
    shapes = np.repeat(expr.MEAN_SHAPE[None], 20, axis=0).copy()
    drop = np.random.default_rng(0).uniform(0.0, 0.3, 20)
    drop[:4] = 0.0  # four closed frames (20 % of the clip); the inner lower lip opens in the others
    shapes[:, 65:68, 1] += drop[:, None]
    np.testing.assert_allclose(expr.neutral_shape(shapes), expr.MEAN_SHAPE, atol=1e-12)


@pytest.mark.todo("p2.expr.procrustes", "p2.expr.transfer")
def test_a_driver_pressing_its_lips_does_not_push_the_targets_lips_through_each_other(expr):
    target = expr.MEAN_SHAPE * 120 + [160, 120]  # pixels; the mean face's inner lips touch
    source = expr.MEAN_SHAPE * 90 + [40, 60]
    pressed = source.copy()
    pressed[65:68, 1] -= 0.2 * 90  # the driver's inner lower lip rises above its neutral position
    out = expr.reenact_landmarks(pressed, expr.normalise(source)[0], target, expr.normalise(target)[0])
    assert (out[[67, 66, 65], 1] >= out[[61, 62, 63], 1] - 1e-6).all()  # image y grows downwards
