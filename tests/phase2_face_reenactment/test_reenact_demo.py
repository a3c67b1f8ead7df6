"""The `make demo` stage of phase 2 (slow: renders and reenacts a 60-frame clip)."""

from __future__ import annotations

import numpy as np
import pytest

from consent_and_watermark.verify import verify


@pytest.mark.slow
@pytest.mark.todo("p2.expr", "p2.video", "p1.smooth.one_euro")
def test_demo_stage_writes_marked_report_items(tmp_path):
    from phase2_face_reenactment.demo import run_stage

    items = run_stage(tmp_path / "phase2", quick=True)
    assert [item.kind for item in items] == ["video", "image", "image", "image", "image"]
    for item in items:
        assert item.path.is_file() and verify(item.path).marked


def test_landmarks_are_drawn_on_a_copy_as_dots_at_their_pixels():
    from phase2_face_reenactment.demo import draw_landmarks

    frame = np.zeros((100, 120, 3), np.uint8)
    out = draw_landmarks(frame, np.array([[10.4, 20.6], [60.0, 30.0]]), (0, 255, 0))
    assert not frame.any()  # the frame itself is left as it was
    assert tuple(out[21, 10]) == (0, 255, 0) and tuple(out[30, 60]) == (0, 255, 0)
    assert tuple(out[50, 100]) == (0, 0, 0)


def test_strip_puts_each_list_in_a_row_and_its_frames_side_by_side():
    from phase2_face_reenactment.demo import strip

    a, b, c, d = (np.full((2, 3, 3), v, np.uint8) for v in (1, 2, 3, 4))
    grid = strip([[a, b], [c, d]])
    assert grid.shape == (4, 6, 3)
    assert (grid[:2, :3] == 1).all() and (grid[:2, 3:] == 2).all()
    assert (grid[2:, :3] == 3).all() and (grid[2:, 3:] == 4).all()


@pytest.mark.todo("p2.video")
def test_the_triangulation_picture_draws_the_triangles_through_the_border_points():
    from common.impl import load
    from common.synthetic import make_identity, neutral_pose, render_frame
    from phase2_face_reenactment.demo import triangulation_picture

    video = load("phase2_face_reenactment", "video_generator")
    _, landmarks = render_frame(make_identity(1), neutral_pose(), np.zeros(6), size=128)
    target = np.zeros((128, 128, 3), np.uint8)
    out = triangulation_picture(target, landmarks)
    assert not target.any()
    corners = video.border_points(video.face_box(landmarks, 128, 128))[::2]  # the box's four corners
    for x, y in np.round(corners).astype(int):
        r, g, b = out[y, x]
        assert r > 100 and g > 100 and b == 0, (x, y)  # a yellow line ends there


def test_the_smoothing_figure_plots_the_chin_height_against_seconds_before_and_after_filtering():
    from phase2_face_reenactment.demo import smoothing_figure

    rng = np.random.default_rng(0)
    raw, smoothed = rng.uniform(0, 100, (2, 10, 68, 2))
    ax = smoothing_figure(raw, smoothed, fps=20.0).axes[0]
    detected, filtered = ax.lines
    np.testing.assert_allclose(detected.get_xdata(), np.arange(10) / 20.0)
    np.testing.assert_array_equal(detected.get_ydata(), raw[:, 8, 1])  # landmark 8: the chin
    np.testing.assert_array_equal(filtered.get_ydata(), smoothed[:, 8, 1])
    assert ax.yaxis_inverted()  # image rows grow downwards
