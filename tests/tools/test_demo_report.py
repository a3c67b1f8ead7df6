"""`make demo` driver: stages run, the report links files that exist, and those files are marked."""

from __future__ import annotations

import re

import numpy as np
import pytest

from consent_and_watermark.__main__ import main as provenance_main
from tools import demo


def test_synthetic_stage_writes_a_report_whose_media_exist_and_verify(tmp_path, capsys):
    assert demo.main(["--output", str(tmp_path), "--stages", "synthetic"]) == 0
    page = (tmp_path / "index.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert len(sources) >= 3
    for src in sources:
        assert (tmp_path / src).is_file(), src
    capsys.readouterr()
    assert provenance_main(["verify", str(tmp_path / sources[0])]) == 0


def test_unknown_stage_is_a_user_error(tmp_path):
    with pytest.raises(demo.UserError):
        demo.main(["--output", str(tmp_path), "--stages", "phase9"])


def test_running_one_stage_again_keeps_the_other_stages_in_the_report(tmp_path, capsys, monkeypatch):
    """The merge, with a stand-in for the synthetic stage's work (its real run is tested above): a stage
    run again replaces its own part of index.html and keeps the parts of stages it did not run, in the
    order of `demo.STAGES`."""
    from common.report import ReportItem
    from common.synthetic import demo as synthetic_demo

    runs = []

    def fake_stage(out_dir, quick=True):
        runs.append((out_dir, quick))
        return [ReportItem(f"stand-in item of run {len(runs)}", None, "text")]

    monkeypatch.setattr(synthetic_demo, "run_stage", fake_stage)
    earlier = tmp_path / "phase1_face_swap"
    earlier.mkdir()
    (earlier / demo.SECTION_FILE).write_text("<h2>Phase 1 — from an earlier run</h2>")
    for _ in range(2):
        assert demo.main(["--output", str(tmp_path), "--stages", "synthetic"]) == 0
    assert runs == [(tmp_path / "synthetic", True)] * 2  # only the stage asked for, quick presets
    page = (tmp_path / "index.html").read_text()
    assert page.count("Synthetic consented identities") == 1 and page.count("<h2>") == 2
    assert "stand-in item of run 2" in page and "stand-in item of run 1" not in page  # replaced
    assert page.index("Synthetic consented identities") < page.index("stand-in item of run 2")
    assert page.index("stand-in item of run 2") < page.index("Phase 1 — from an earlier run")  # kept, after
    assert "stand-in item of run 2" in (tmp_path / "synthetic" / demo.SECTION_FILE).read_text()


def test_stages_without_names_is_refused_not_read_as_all(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--output", str(tmp_path), "--stages"])
    assert exit_info.value.code == 2 and not (tmp_path / "index.html").exists()


def test_demo_full_runs_the_stages_with_their_full_presets(tmp_path, monkeypatch):
    from common.report import ReportItem
    from common.synthetic import demo as synthetic_demo

    runs = []

    def fake_stage(out_dir, quick=True):
        runs.append(quick)
        return [ReportItem("stand-in", None, "text")]

    monkeypatch.setattr(synthetic_demo, "run_stage", fake_stage)
    assert demo.main(["--output", str(tmp_path), "--stages", "synthetic", "--full"]) == 0
    assert demo.main(["--output", str(tmp_path), "--stages", "synthetic"]) == 0
    assert runs == [False, True]


def test_a_text_item_is_a_paragraph_even_when_it_names_a_file(tmp_path):
    from common.report import ReportItem

    item = ReportItem("Numbers", tmp_path / "figures.txt", "text", "L1 0.05")
    assert demo.render_item(item, tmp_path) == (
        "<div class='item'><h3>Numbers</h3><p class='caption'>L1 0.05</p></div>"
    )


def test_an_item_without_a_file_is_a_paragraph_whatever_its_kind(tmp_path):
    from common.report import ReportItem

    item = ReportItem("Not rendered", None, "image", "skipped")
    assert demo.render_item(item, tmp_path) == (
        "<div class='item'><h3>Not rendered</h3><p class='caption'>skipped</p></div>"
    )


def test_audio_and_video_items_get_their_players_and_escaped_relative_sources(tmp_path):
    from common.report import ReportItem

    sound = ReportItem("Speech", tmp_path / "stage" / "it's.wav", "audio", "a < b")
    assert demo.render_item(sound, tmp_path) == (
        "<div class='item'><h3>Speech</h3><audio src='stage/it&#x27;s.wav' controls></audio>"
        "<p class='caption'>a &lt; b</p></div>"
    )
    clip = ReportItem("Clip", tmp_path / "stage" / "clip.mp4", "video")
    assert demo.render_item(clip, tmp_path) == (
        "<div class='item'><h3>Clip</h3>"
        "<video src='stage/clip.mp4' controls loop muted playsinline></video></div>"
    )


def test_the_unknown_stage_error_names_it_and_the_available_ones(tmp_path):
    with pytest.raises(demo.UserError, match=r"stage\(s\): phase9 \(available: synthetic, phase1_face_swap"):
        demo.main(["--output", str(tmp_path), "--stages", "phase9", "synthetic"])


def test_a_stage_whose_package_is_missing_is_not_available(monkeypatch):
    monkeypatch.setattr(demo, "STAGES", (*demo.STAGES, ("ghost", "no_such_package.demo", "Ghost")))
    assert [name for name, _, _ in demo.available_stages()] == [name for name, _, _ in demo.STAGES[:-1]]


def test_the_gallery_shows_each_face_above_the_same_face_with_its_landmarks():
    from common.synthetic import make_identity, render_clip
    from common.synthetic.demo import gallery

    sheet = gallery(range(2), size=64)
    assert sheet.shape == (128, 128, 3)  # two rows, one column per seed
    for seed in range(2):
        clip = render_clip(make_identity(seed), frames=1, size=64, speech=False)
        np.testing.assert_array_equal(sheet[:64, 64 * seed : 64 * seed + 64], clip.frames[0])
        marked = sheet[64:, 64 * seed : 64 * seed + 64]
        for x, y in np.round(clip.landmarks[0]).astype(int):
            assert tuple(marked[y, x]) == (0, 255, 0)  # a green dot on every ground-truth point


def test_the_speech_timeline_plots_the_audio_visemes_and_mouth_opening_against_seconds():
    from common.synthetic import EXPRESSION_FIELDS, make_identity, render_clip
    from common.synthetic.demo import timeline_figure

    clip = render_clip(make_identity(3), frames=10, size=32, fps=25.0, seed=1)
    speech, viseme, mouth = timeline_figure(clip).axes
    t_audio, samples = speech.lines[0].get_data()
    np.testing.assert_allclose(t_audio, np.arange(len(clip.audio)) / clip.sample_rate)
    np.testing.assert_array_equal(samples, clip.audio)
    np.testing.assert_allclose(viseme.lines[0].get_xdata(), np.arange(10) / 25.0)
    np.testing.assert_array_equal(viseme.lines[0].get_ydata(), clip.visemes)
    np.testing.assert_allclose(mouth.lines[0].get_xdata(), np.arange(10) / 25.0)
    opening = clip.expression[:, EXPRESSION_FIELDS.index("mouth_open")]
    np.testing.assert_array_equal(mouth.lines[0].get_ydata(), opening)


def test_the_synthetic_stage_shows_eight_faces_and_a_talking_clip_of_each_of_two_people(tmp_path,
                                                                                       monkeypatch):
    """The stage's choices, with small stand-ins for the rendering (its real run is tested above)."""
    from common.synthetic import demo as synthetic_demo
    from common.synthetic import render_clip

    exported, seeds = {}, []

    def export(out, identities, seed, config):
        exported.update(identities=identities, seed=seed)
        return [out / f"person_{i}" for i in range(identities)]

    monkeypatch.setattr(synthetic_demo, "export_dataset", export)
    monkeypatch.setattr(synthetic_demo, "gallery",
                        lambda s: seeds.extend(s) or np.zeros((128, 128, 3), np.uint8))
    monkeypatch.setattr(synthetic_demo, "render_clip",
                        lambda person, frames, size: render_clip(person, 3, 32))  # small and short
    items = synthetic_demo.run_stage(tmp_path)
    assert seeds == list(range(8)) and items[0].title == "Eight people who do not exist"
    assert exported["identities"] == 2
    assert [item.path for item in items if item.kind == "video"] == [
        tmp_path / "identities" / f"person_{i}" / "video.mp4" for i in range(2)
    ]
