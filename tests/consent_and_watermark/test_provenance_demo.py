"""The provenance stage of `make demo`: its pictures show a real reading; every file it writes is marked."""

from __future__ import annotations

import numpy as np

from common.synthetic import make_identity, render_clip
from consent_and_watermark import watermark_image as wm
from consent_and_watermark.verify import verify


def test_stage_pictures_and_sound_are_written_marked_and_the_verify_text_says_so(tmp_path):
    from consent_and_watermark.demo import run_stage

    items = run_stage(tmp_path / "provenance", quick=True)
    files = [item.path for item in items if item.path is not None]
    assert {f.suffix for f in files} == {".png", ".wav"} and len(files) == 5
    for path in files:
        report = verify(path)
        assert report.marked, (path, report.reasons)
    text = [item for item in items if item.kind == "text"][0].caption
    assert "watermark: DETECTED" in text and "verdict: MARKED" in text
    assert "Every edit here is survived." in [i for i in items if i.title == "What edits cost"][0].caption


def test_the_pilot_correlation_peaks_where_the_grid_sits_and_only_on_marked_pictures():
    key = bytes(range(32))
    face = render_clip(make_identity(2101), frames=1, size=256).frames[0]
    marked = wm.embed(face, 0x1234, key)
    shifted = np.ascontiguousarray(np.roll(marked, (17, 40), axis=(0, 1)))  # the grid moves with the picture
    found, unmarked = wm.read(shifted, key), wm.read(face, key)
    assert found.shift == (17, 40) and found.peak_z > 10
    assert unmarked.peak_z < 6
    carriers = wm.carrier_map(key)
    assert np.count_nonzero(carriers == 2) * 2 == found.chips.size  # two chips per payload coefficient
    assert 0.2 < np.count_nonzero(carriers == 1) / np.count_nonzero(carriers) < 0.3  # pilot: a quarter


def test_the_edits_chart_counts_only_the_right_payload_and_draws_the_bounds_limit():
    """A bar is green only when the mark is detected *with the payload the pictures carry*; the red line is
    the chip error share a still image's bound tolerates: 1 - k / n for the smallest k whose match_fpr over
    the still image's candidates is below 1e-6."""
    from consent_and_watermark.demo import EDITS, PAYLOAD, edits_figure
    from consent_and_watermark.detection import FPR_THRESHOLD, match_fpr

    key = bytes(range(32))
    clip = render_clip(make_identity(2101), frames=2, size=256).frames
    other = wm.embed(clip[0], PAYLOAD ^ 1, key)  # marked, but not with the demo's payload
    fig, rows = edits_figure(other, clip[0], clip, key)
    assert rows[0][0] == "none" and rows[0][1] < 0.2  # read clearly...
    assert [name for name, _, _ in rows[: len(EDITS)]] == EDITS
    assert not any(ok for _, _, ok in rows[: len(EDITS)])  # ...yet no still edit counts as survived
    n = wm.detect(clip[0], key).n_bits
    k = next(k for k in range(n // 2, n + 1)
             if match_fpr(n, k, wm.N_CANDIDATES, readable=True) < FPR_THRESHOLD)
    assert fig.axes[0].lines[0].get_ydata()[0] == 1 - k / n
