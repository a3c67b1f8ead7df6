"""The chokepoint: every output is labelled, watermarked, tagged, signed and logged, or not written at all."""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure  # a bare Figure renders with Agg, whatever the pyplot backend
from PIL import Image
from skimage import data

from common import media
from common.errors import UserError
from consent_and_watermark import c2pa_sign, watermark_image, writer
from consent_and_watermark.consent import Ledger, register_synthetic_identity
from consent_and_watermark.keys import create_keys, load_keys, medium_key
from consent_and_watermark.metadata import read_metadata
from consent_and_watermark.provenance import ProvenanceLog, make_payload, payload_time
from consent_and_watermark.verify import format_report, verify


def _assert_fully_marked(path: Path, kind: str, watermarked: bool = True):
    """verify finds every mark, and they all agree on the same payload and provenance row."""
    report = verify(path)
    assert report.marked, report.reasons
    assert report.c2pa.state == "Trusted", report.c2pa.failures
    assert report.metadata.synthetic
    row = report.provenance
    assert row is not None and report.matched_by == "sha256" and row.kind == kind
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row.watermarked is watermarked
    if watermarked:
        detection = report.audio_watermark if kind == "audio" else report.watermark
        assert detection["detected"] and detection["fpr"] < 1e-6
        assert detection["payload"] == row.payload == report.c2pa.payload == report.metadata.payload
    return report


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_images_pass_verify(out_dir: Path, natural_rgb, suffix):
    path = writer.save_image(out_dir / f"face{suffix}", natural_rgb)
    assert path == out_dir / f"face{suffix}"
    _assert_fully_marked(path, "image")
    assert sorted(p.name for p in out_dir.iterdir()) == [path.name]  # no temporary files left behind


def test_visible_label_is_on_by_default_and_can_be_turned_off(out_dir: Path, natural_rgb, psnr):
    labelled = media.read_image(writer.save_image(out_dir / "on.png", natural_rgb))
    plain = media.read_image(writer.save_image(out_dir / "off.png", natural_rgb, label=False))
    corner = (slice(200, 256), slice(0, 128))  # the label sits in the bottom-left corner
    assert psnr(plain, natural_rgb) > 38  # only the invisible watermark
    assert psnr(labelled[corner], natural_rgb[corner]) < 25  # a dark box with white text
    rows = {Path(r.path).name: r for r in ProvenanceLog().rows()}
    assert rows["on.png"].visible_label and not rows["off.png"].visible_label


def test_small_image_is_signed_and_tagged_without_watermark(out_dir: Path, natural_rgb, caplog):
    with caplog.at_level(logging.WARNING, logger="deepfake.provenance"):
        path = writer.save_image(out_dir / "tiny.png", natural_rgb[:64, :96])
    assert "smaller than the watermark minimum" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepfake.provenance"):
        writer.save_image(out_dir / "tiny_unlabelled.png", natural_rgb[:64, :96], label=False)
    assert "with no visible label nothing on it survives a re-encode" in caplog.text
    report = _assert_fully_marked(path, "image", watermarked=False)
    assert "skipped" in report.watermark["details"] and report.c2pa.payload is None


def _panning_clip(n_frames: int = 30, size: int = 256) -> np.ndarray:
    """A camera pan over a natural photo: (T, size, size, 3) uint8, every frame different."""
    scene = data.astronaut()  # (512, 512, 3)
    return np.stack([scene[100 : 100 + size, (4 * t) % 256 : (4 * t) % 256 + size] for t in range(n_frames)])


def test_video_passes_verify_and_streams_frames(out_dir: Path):
    clip = _panning_clip()
    path = writer.save_video(out_dir / "clip.mp4", (frame for frame in clip), fps=25)
    _assert_fully_marked(path, "video")
    info = media.video_info(path)
    assert (info.width, info.height) == (256, 256) and not info.has_audio
    frames = list(media.iter_video(path))
    assert len(frames) == 30
    key = medium_key(load_keys(), "image")
    last = watermark_image.detect(frames[-1], key)  # the grid moved with the picture: 4 px a frame
    assert last.detected and last.details["shift"] == (0, -4 * 29 % watermark_image.CONFIG.tile)


def test_small_videos_are_encoded_finer_so_their_few_tiles_keep_the_mark(out_dir: Path):
    """x264 records its settings in the stream: CRF 12 up to 256 x 256 px, 18 above (encode.video_crf)."""
    small = writer.save_video(out_dir / "small.mp4", _panning_clip(3, size=160), fps=25)
    large = writer.save_video(out_dir / "large.mp4", _panning_clip(3, size=288), fps=25)
    assert b"crf=12.0" in small.read_bytes() and b"crf=18.0" in large.read_bytes()


def test_video_encoded_on_parallel_encoders_passes_verify(out_dir: Path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_ENCODE_SEGMENTS", "2")
    clip = _panning_clip(60, size=128)  # one full run of 48 frames and a short one
    path = writer.save_video(out_dir / "clip.mp4", clip, fps=25)
    _assert_fully_marked(path, "video")
    assert len(list(media.iter_video(path))) == 60


def test_odd_sided_frames_are_padded_to_even_and_the_writer_says_so(out_dir: Path, caplog):
    clip = _panning_clip(3, size=160)[:, :131, :145]  # (3, 131, 145, 3): both sides odd
    with caplog.at_level(logging.WARNING, logger="deepfake.provenance"):
        path = writer.save_video(out_dir / "odd.mp4", clip, 25)
    assert caplog.text.count("145x131 px written as 146x132") == 1
    info = media.video_info(path)
    assert (info.width, info.height) == (146, 132)
    assert "146x132" in ProvenanceLog().find_by_sha256(
        hashlib.sha256(path.read_bytes()).hexdigest()).note


def test_small_video_is_signed_and_tagged_without_watermark(out_dir: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="deepfake.provenance"):
        path = writer.save_video(out_dir / "tiny.mp4", _panning_clip(3, size=64), 25)
    assert caplog.text.count("smaller than the watermark minimum") == 1  # said once, not per frame
    report = _assert_fully_marked(path, "video", watermarked=False)
    assert "skipped" in report.watermark["details"]


@pytest.mark.parametrize("audio, rate, message", [
    (np.zeros(0, np.float32), 16000, "the audio track is empty"),
    (np.zeros(1600, np.float32), None, "needs its sample_rate"),
])
def test_a_video_with_an_empty_or_rateless_audio_track_is_refused_before_anything_is_written(
        out_dir: Path, audio: np.ndarray, rate: int | None, message: str):
    """An empty track would be left out of the mp4 without a word; a track without a rate cannot be
    encoded. Either is refused at once: no file, no temporary file, no provenance row."""
    with pytest.raises(ValueError, match=message):
        writer.save_video(out_dir / "talk.mp4", _panning_clip(3, size=128), 25, audio=audio, sample_rate=rate)
    assert list(out_dir.iterdir()) == []
    assert ProvenanceLog().rows() == []


def test_video_with_audio_marks_both_tracks(out_dir: Path):
    rate, seconds = 16000, 10
    t = np.arange(rate * seconds) / rate
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))  # a 4 Hz loudness envelope, like speech
    babble = (0.1 * syllables * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    clip = _panning_clip(5 * seconds, size=128)  # 5 fps keeps the test quick; the audio lasts 10 s
    path = writer.save_video(out_dir / "talk.mp4", clip, 5, audio=babble, sample_rate=rate)
    report = _assert_fully_marked(path, "video")
    audio = report.audio_watermark
    assert audio["detected"] and audio["payload"] == report.provenance.payload  # survived AAC


def test_a_soundtrack_from_an_earlier_output_keeps_its_mark_and_is_linked(out_dir: Path):
    from common.media import read_audio

    rate, seconds = 16000, 10
    t = np.arange(rate * seconds) / rate
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    babble = (0.1 * syllables * np.random.default_rng(1).standard_normal(t.size)).astype(np.float32)
    speech = verify(writer.save_audio(out_dir / "speech.wav", babble, rate))
    samples, _ = read_audio(out_dir / "speech.wav")
    clip = _panning_clip(5 * seconds, size=128)
    report = _assert_fully_marked(
        writer.save_video(out_dir / "talk.mp4", clip, 5, audio=samples, sample_rate=rate), "video"
    )
    assert report.audio_watermark["payload"] == speech.provenance.payload  # one mark, readable
    assert report.provenance.sources == (speech.provenance.payload,)
    assert "made from: row" in format_report(report)


def test_a_video_fed_back_whole_names_its_source_once(out_dir: Path):
    rate, seconds = 16000, 10
    t = np.arange(rate * seconds) / rate
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    babble = (0.1 * syllables * np.random.default_rng(2).standard_normal(t.size)).astype(np.float32)
    first = verify(writer.save_video(out_dir / "a.mp4", _panning_clip(5 * seconds, size=128), 5,
                                     audio=babble, sample_rate=rate))
    video = media.read_video(out_dir / "a.mp4")  # frames and soundtrack both carry the first payload
    again = _assert_fully_marked(writer.save_video(out_dir / "b.mp4", video.frames, video.fps,
                                                   audio=video.audio, sample_rate=video.sample_rate), "video")
    assert again.provenance.sources == (first.provenance.payload,)
    assert format_report(again).count("made from:") == 1


def test_audio_passes_verify(out_dir: Path):
    rng = np.random.default_rng(0)
    samples = (0.1 * rng.standard_normal(16000 * 10)).astype(np.float32)
    path = writer.save_audio(out_dir / "voice.wav", samples, 16000)
    _assert_fully_marked(path, "audio")


def test_audio_below_8_khz_is_written_unmarked_and_verify_says_why(out_dir: Path, caplog):
    samples = (0.1 * np.random.default_rng(0).standard_normal(6000 * 5)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="deepfake.provenance"):
        path = writer.save_audio(out_dir / "phone.wav", samples, 6000)
    assert "6000 Hz is below the audio watermark's 8000 Hz" in caplog.text
    report = _assert_fully_marked(path, "audio", watermarked=False)  # metadata, manifest, log row
    assert "below 8000 Hz" in report.audio_watermark["details"]["skipped"]


def test_silent_audio_is_written_unmarked_rather_than_claiming_a_mark_it_lacks(out_dir: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="deepfake.provenance"):
        path = writer.save_audio(out_dir / "silence.wav", np.zeros(16000 * 3, np.float32), 16000)
    assert "no readable audio watermark (silent or nearly so)" in caplog.text
    report = _assert_fully_marked(path, "audio", watermarked=False)
    assert report.c2pa.payload is None  # the manifest binds no payload either


def test_stereo_samples_are_refused_not_interleaved_into_one_longer_track(out_dir: Path):
    stereo = np.zeros((16000 * 4, 2), np.float32)
    with pytest.raises(ValueError, match="mono"):
        writer.save_audio(out_dir / "stereo.wav", stereo, 16000)
    assert not (out_dir / "stereo.wav").exists()


def test_integer_pcm_is_scaled_not_clipped_and_loud_floats_are_clipped_before_marking(out_dir: Path, caplog):
    """int16 straight from scipy.io.wavfile.read used to be written at full scale (the log still said
    "watermarked"); float samples beyond +-1 are clipped before the mark, which is then read back."""
    speech = (0.3 * np.sin(np.arange(16000 * 4) * 0.05) * np.random.default_rng(0).uniform(0.5, 1, 16000 * 4))
    pcm = np.round(speech * 32767).astype(np.int16)
    path = writer.save_audio(out_dir / "pcm.wav", pcm, 16000.0)  # a float rate that is a whole number
    written, _ = media.read_audio(path, 16000)
    assert np.abs(written).max() < 0.35  # scaled, not saturated
    _assert_fully_marked(path, "audio")
    with caplog.at_level(logging.WARNING, logger="deepfake.provenance"):
        loud = writer.save_audio(out_dir / "loud.wav", (4 * speech).astype(np.float32), 16000)
    assert "samples beyond [-1, 1] clipped" in caplog.text
    _assert_fully_marked(loud, "audio")
    for rate in (16000.5, 0):
        with pytest.raises(ValueError, match="sample rate"):
            writer.save_audio(out_dir / "odd.wav", speech.astype(np.float32), rate)


def test_a_frame_rate_that_is_not_a_positive_number_is_refused(out_dir: Path):
    for fps in (0, -25, float("nan")):
        with pytest.raises(ValueError, match="fps must be a positive number"):
            writer.save_video(out_dir / "clip.mp4", _panning_clip(2), fps)
    assert not (out_dir / "clip.mp4").exists()


def test_an_output_name_near_the_file_system_limit_is_written(out_dir: Path, natural_rgb):
    """Temporary names nest (the writer's, then the encoder's): they keep only the start of the stem."""
    for stem in ("x" * 240, "名" * 80):  # 240 and 240 bytes: the name itself is allowed
        path = writer.save_image(out_dir / f"{stem}.png", natural_rgb)
        assert path.is_file() and verify(path).marked


def test_a_file_name_in_another_encoding_is_written_logged_and_verified(out_dir: Path, natural_rgb):
    """A Latin-1 name (bytes that are not UTF-8) reaches Python with a lone surrogate; SQLite text and the
    manifest's JSON cannot hold that, so the log and the manifest title spell its bytes as escapes."""
    import os

    path = writer.save_image(out_dir / os.fsdecode(b"caf\xe9.png"), natural_rgb)
    report = verify(path)
    assert report.marked and report.provenance.path.endswith("caf\\xe9.png")


def test_figure_is_marked_without_label(out_dir: Path):
    fig = Figure(figsize=(4, 3))
    fig.add_subplot().plot(np.arange(10), np.arange(10) ** 2)
    path = writer.save_figure(fig, out_dir / "loss.png")
    report = _assert_fully_marked(path, "figure")
    assert not report.provenance.visible_label


def test_run_context_reaches_every_mark(out_dir: Path, natural_rgb):
    record_id = register_synthetic_identity("synth-0001", "Synthetic person 1")
    records = writer.begin_run("animate", [record_id], visible_label=False, argv=["animate.py", "--quick"])
    path = writer.save_image(out_dir / "animated.png", natural_rgb)
    report = _assert_fully_marked(path, "image")
    row = report.provenance
    assert row.technique == "animate" and row.consent_ids == (record_id,)
    assert row.command == ("animate.py", "--quick") and not row.visible_label
    entry = report.c2pa.consent["records"][0]
    assert entry["id"] == record_id and entry["sha256"] == records[0].digest() and entry["synthetic"]
    assert report.metadata.fields["xmp:dfc:ConsentRecords"] == record_id


def test_output_context_applies_inside_its_block_only(out_dir: Path, natural_rgb):
    record = Ledger().get(register_synthetic_identity("synth-0002", "Synthetic person 2"))
    context = writer.OutputContext(technique="lipsync", consent=(record,), command=("lipsync.py",))
    with writer.output_context(context):
        writer.save_image(out_dir / "inside.png", natural_rgb)
    writer.save_image(out_dir / "after.png", natural_rgb)
    rows = {Path(r.path).name: r for r in ProvenanceLog().rows()}
    assert rows["inside.png"].technique == "lipsync" and rows["inside.png"].consent_ids == (record.id,)
    assert rows["after.png"].technique is None and rows["after.png"].consent_ids == ()
    assert writer.get_context() == writer.OutputContext()


def test_output_kind_outside_the_consent_scope_is_refused(out_dir: Path):
    record = Ledger().add("bob", "Bob", "Bob", techniques=["swap"], outputs=["image"])
    writer.begin_run("swap", [record.id])
    with pytest.raises(UserError, match="does not allow video"):
        writer.save_video(out_dir / "clip.mp4", _panning_clip(2), 25)
    assert list(out_dir.iterdir()) == [] and ProvenanceLog().rows() == []


def test_damaged_signing_keys_are_refused_by_begin_run_before_compute(tmp_path: Path, monkeypatch):
    config = tmp_path / "config"
    monkeypatch.setenv("DEEPFAKE_CONFIG_DIR", str(config))
    create_keys(config / "keys")
    (config / "keys" / "signer.key").write_bytes(b"garbage")
    record = register_synthetic_identity("synth-keys", "Synthetic keys")
    with pytest.raises(UserError, match="signer.key is damaged"):
        writer.begin_run("swap", [record], outputs=["image"])
    assert writer.get_context() == writer.OutputContext()


def test_a_key_folder_that_lost_its_root_says_so_and_is_left_alone(tmp_path: Path):
    from consent_and_watermark.keys import load_keys

    folder = tmp_path / "keys"
    create_keys(folder)
    (folder / "root.pem").unlink()
    with pytest.raises(UserError, match="incomplete .no root.pem.; move the folder aside"):
        load_keys(folder)
    assert (folder / "watermark.key").is_file()  # what was left is not replaced


def test_reencoded_output_is_still_traced_by_its_watermark(out_dir: Path, natural_rgb):
    original = verify(writer.save_image(out_dir / "face.png", natural_rgb))
    copy = out_dir / "copy.jpg"
    with Image.open(out_dir / "face.png") as img:
        img.save(copy, quality=80)  # a Pillow re-save drops the manifest and the metadata
    report = verify(copy)
    assert report.c2pa.state == "absent" and not report.metadata.synthetic
    assert report.marked and report.watermark["payload"] == original.provenance.payload
    assert report.matched_by == "payload" and report.provenance.id == original.provenance.id


def test_an_earlier_output_fed_back_is_remarked_not_marked_twice(out_dir: Path, natural_rgb, psnr):
    first = verify(writer.save_image(out_dir / "first.png", natural_rgb, label=False))
    with Image.open(out_dir / "first.png") as img:
        source = np.asarray(img.convert("RGB"))
    second = _assert_fully_marked(writer.save_image(out_dir / "second.png", source, label=False), "image")
    assert second.provenance.payload != first.provenance.payload
    assert second.provenance.sources == (first.provenance.payload,)
    assert [row.id for row in second.sources] == [first.provenance.id]  # verify follows the link
    assert "made from: row" in format_report(second)
    with Image.open(out_dir / "second.png") as img:
        assert psnr(natural_rgb, np.asarray(img.convert("RGB"))) > 39.0  # one mark's noise, not two


def test_unmarked_natural_images_are_not_detected(out_dir: Path):
    for name, rgb in (("cat", data.chelsea()), ("coffee", data.coffee()), ("rocket", data.rocket())):
        path = out_dir / f"{name}.png"
        Image.fromarray(rgb).save(path)
        report = verify(path)
        assert not report.marked and not report.watermark["detected"] and report.provenance is None


def test_a_failed_write_leaves_the_old_file_and_no_log_row(out_dir: Path, natural_rgb, monkeypatch):
    path = writer.save_image(out_dir / "face.png", natural_rgb)
    before = path.read_bytes()

    def broken_signer(*args, **kwargs):
        raise RuntimeError("signer unavailable")

    monkeypatch.setattr(c2pa_sign, "sign_file", broken_signer)
    with pytest.raises(RuntimeError, match="signer unavailable"):
        writer.save_image(path, natural_rgb[::-1])
    assert path.read_bytes() == before and sorted(p.name for p in out_dir.iterdir()) == ["face.png"]
    assert len(ProvenanceLog().rows()) == 1


def test_a_log_that_fails_after_the_rename_keeps_the_file_and_its_reserved_row(out_dir, natural_rgb,
                                                                                 monkeypatch):
    def locked(*args, **kwargs):
        raise UserError("provenance log is in use by another process (database is locked); try again")

    with monkeypatch.context() as patch:
        patch.setattr(ProvenanceLog, "complete", locked)
        with pytest.raises(UserError, match="written with all its marks, but its provenance row was not"):
            writer.save_image(out_dir / "face.png", natural_rgb)
    assert verify(out_dir / "face.png").watermark["detected"]  # the file is there, marked
    with ProvenanceLog()._connect() as conn:  # and its row is kept (reserved, no hash), not deleted
        assert conn.execute("SELECT count(*) FROM outputs WHERE sha256 IS NULL").fetchone()[0] == 1


def test_a_frame_source_failing_midway_writes_nothing(out_dir: Path):
    def frames():
        yield from _panning_clip(6)
        raise UserError("no face found in any frame")

    with pytest.raises(UserError, match="no face"):
        writer.save_video(out_dir / "clip.mp4", frames(), 25)
    assert list(out_dir.iterdir()) == [] and ProvenanceLog().rows() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("ordered_map")]  # the pools stopped


def test_bad_arguments_are_refused(out_dir: Path, natural_rgb):
    with pytest.raises(UserError, match="use one of"):
        writer.save_image(out_dir / "face.gif", natural_rgb)
    with pytest.raises(UserError, match="use one of"):
        writer.save_video(out_dir / "clip.avi", _panning_clip(2), 25)
    with pytest.raises(ValueError, match="uint8"):
        writer.save_image(out_dir / "face.png", natural_rgb.astype(np.float32))
    assert list(out_dir.iterdir()) == []


def test_figure_bytes_are_a_plain_render(out_dir: Path, psnr):
    """save_figure keeps what matplotlib drew (watermark aside): compare with an in-memory render."""
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().bar([1, 2, 3], [3, 1, 2])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    expected = np.asarray(Image.open(buffer).convert("RGB"))
    written = media.read_image(writer.save_figure(fig, out_dir / "bars.png"))
    assert written.shape == expected.shape and psnr(written, expected) > 38


def test_a_log_from_before_the_source_column_is_upgraded(tmp_path: Path):
    import sqlite3

    from consent_and_watermark.provenance import ProvenanceLog

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the first release's table, one finished row
        conn.execute(
            "CREATE TABLE outputs (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, "
            "path TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT, sha256 TEXT, technique TEXT, "
            "consent_ids TEXT NOT NULL, command TEXT NOT NULL, visible_label INTEGER NOT NULL, "
            "watermarked INTEGER NOT NULL DEFAULT 0, note TEXT)"
        )
        conn.execute(
            "INSERT INTO outputs (created, path, kind, payload, sha256, consent_ids, command, visible_label) "
            "VALUES ('2026-01-01T00:00:00+00:00', 'a.png', 'image', '00000001aaaaaaaa', 'ab', '[]', '[]', 1)"
        )
    log = ProvenanceLog(path)
    assert log.find_by_sha256("ab").sources == ()
    row_id, _ = log.reserve(tmp_path / "b.png", "image", None, (), (), True)
    log.complete(row_id, "cd", True, None, sources=(0x1AAAAAAAA,))
    assert log.find_by_sha256("cd").sources == (0x1AAAAAAAA,)


def test_an_older_log_opened_by_many_processes_at_once_gains_its_columns_once(tmp_path: Path):
    """Data-loader workers or torchrun ranks opening a log from before a column existed used to race to
    add it ("duplicate column name", reported as a damaged log)."""
    import multiprocessing
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the first release's table, in rollback-journal mode
        conn.execute(
            "CREATE TABLE outputs (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, "
            "path TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT, sha256 TEXT, technique TEXT, "
            "consent_ids TEXT NOT NULL, command TEXT NOT NULL, visible_label INTEGER NOT NULL, "
            "watermarked INTEGER NOT NULL DEFAULT 0, note TEXT)"
        )
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(6), ctx.Queue()
    workers = [ctx.Process(target=_open_log_rows, args=(str(path), start, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert outcomes == ["ok"] * 6


def _open_log_rows(path: str, start, results) -> None:
    from consent_and_watermark.provenance import ProvenanceLog

    start.wait()  # all six open the log together
    try:
        ProvenanceLog(path).rows(1)
    except UserError as err:
        results.put(str(err))
    else:
        results.put("ok")


def test_a_log_row_edited_into_nonsense_is_one_error_line_naming_it(tmp_path: Path):
    import sqlite3

    log = ProvenanceLog(tmp_path / "log.sqlite")
    row_id, _ = log.reserve(tmp_path / "a.png", "image", None, (), (), True)
    log.complete(row_id, "ab", True, None)
    with sqlite3.connect(log.path) as conn:
        conn.execute("UPDATE outputs SET consent_ids = 'not json' WHERE id = ?", (row_id,))
    with pytest.raises(UserError, match=f"row {row_id} cannot be read"):
        log.rows()


def test_a_staged_folder_appears_whole_and_its_log_rows_follow_it(out_dir: Path, natural_rgb):
    folder = out_dir / "faces"
    with writer.staged_folder(folder) as staging:
        writer.save_image(staging / "a.png", natural_rgb, label=False)
        assert not folder.exists()
    report = verify(folder / "a.png")
    assert report.provenance is not None and report.provenance.path == str((folder / "a.png").resolve())


def test_a_staged_folder_that_fails_leaves_neither_files_nor_log_rows(out_dir: Path, natural_rgb):
    before = len(ProvenanceLog().rows(limit=10_000))
    with pytest.raises(KeyboardInterrupt), writer.staged_folder(out_dir / "faces") as staging:
        writer.save_image(staging / "a.png", natural_rgb, label=False)
        writer.save_image(staging / "b.png", natural_rgb, label=False)
        raise KeyboardInterrupt  # Ctrl-C half-way through a set
    assert list(out_dir.iterdir()) == []
    assert len(ProvenanceLog().rows(limit=10_000)) == before


def test_a_video_whose_input_fails_late_says_how_far_it_got_and_writes_nothing(out_dir: Path):
    def frames():
        for i in range(12):
            if i == 9:
                raise UserError("frame 9 of input.mp4 is damaged")
            yield np.full((64, 64, 3), 20 * i, np.uint8)

    target = out_dir / "late.mp4"
    with pytest.raises(UserError, match=r"frame 9 of input.mp4 is damaged \(stopped after \d frames; "):
        writer.save_video(target, frames(), 25.0)
    assert list(out_dir.iterdir()) == []


def test_check_suffix_ignores_case_as_the_encoder_does(out_dir: Path):
    """A ``.PNG`` or ``.MP4`` name is written (encode picks the format by the lower-cased suffix),
    not refused before compute."""
    writer.check_suffix(out_dir / "face.PNG", "image")
    writer.check_suffix(out_dir / "clip.MP4", "video")
    writer.check_suffix(out_dir / "voice.WAV", "audio")
    scene = np.ascontiguousarray(data.astronaut()[:64, :64])
    assert writer.save_image(out_dir / "face.JPG", scene).exists()


def test_a_figure_needs_only_image_consent(out_dir: Path):
    """A figure is an image as far as consent goes: a record allowing image outputs covers it."""
    from matplotlib.figure import Figure

    record = Ledger().add("bob", "Bob", "Bob", techniques=["swap"], outputs=["image"])
    writer.begin_run("swap", [record.id])
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    assert writer.save_figure(fig, out_dir / "loss.png").exists()


def test_a_small_video_with_a_marked_soundtrack_claims_its_payload(out_dir: Path):
    """Frames too small for the image mark, audio long enough for its own: the file is watermarked
    (through its audio), and the metadata states the payload, as the provenance row does."""
    rate = 16000
    t = np.arange(10 * rate) / rate  # as test_video_with_audio_marks_both_tracks: survives AAC
    babble = (0.05 * (1 + np.sin(2 * np.pi * 4 * t)) * np.random.default_rng(0).standard_normal(t.size))
    clip = np.stack([data.astronaut()[100:164, 4 * i : 4 * i + 64] for i in range(10)])  # 64 px
    path = writer.save_video(out_dir / "tiny.mp4", clip, 1, audio=babble.astype(np.float32), sample_rate=rate)
    row = ProvenanceLog().rows()[-1]
    assert row.watermarked
    assert read_metadata(path).payload == row.payload
    report = verify(path)
    assert report.audio_watermark["detected"] and report.audio_watermark["payload"] == row.payload


@pytest.mark.parametrize("segments", ["1", "2"])
def test_a_video_whose_frames_change_size_is_refused_and_nothing_is_written(out_dir: Path, monkeypatch,
                                                                            segments):
    """The encoder would rescale the odd frame silently, and the watermark embedded at its size with it."""
    monkeypatch.setenv("DEEPFAKE_ENCODE_SEGMENTS", segments)
    frames = [np.zeros((160, 160, 3), np.uint8)] * 3 + [np.zeros((128, 192, 3), np.uint8)]
    with pytest.raises(UserError, match="frame 3 of the video is 192x128 px, the frames before it 160x160"):
        writer.save_video(out_dir / "clip.mp4", iter(frames), 25.0)
    assert list(out_dir.iterdir()) == [] and ProvenanceLog().rows() == []


def test_a_file_logged_twice_is_found_as_its_newest_row(tmp_path: Path):
    log = ProvenanceLog()
    for name in ("first.png", "second.png"):  # the same bytes written again under another name
        row_id, _ = log.reserve(tmp_path / name, "image", None, (), (), True)
        log.complete(row_id, "ab" * 32, True)
    assert log.find_by_sha256("ab" * 32).path.endswith("second.png")


def test_a_row_whose_file_was_never_finished_is_neither_listed_nor_found_by_its_payload(tmp_path: Path):
    log = ProvenanceLog()
    _, pending = log.reserve(tmp_path / "pending.png", "image", None, (), (), True)
    row_id, done = log.reserve(tmp_path / "done.png", "image", None, (), (), True)
    log.complete(row_id, "cd" * 32, True)
    assert log.find_by_payload(pending) is None
    assert log.find_by_payload(done).id == row_id
    assert [row.id for row in log.rows()] == [row_id]


def test_discard_drops_only_a_row_whose_file_was_never_finished(tmp_path: Path):
    log = ProvenanceLog()
    row_id, _ = log.reserve(tmp_path / "done.png", "image", None, (), (), True)
    log.complete(row_id, "ab" * 32, True)
    log.discard(row_id)
    assert [row.id for row in log.rows()] == [row_id]


def _rows_in_out_and_out2(tmp_path: Path) -> ProvenanceLog:
    """A log with one row in tmp_path/out and one in tmp_path/out2 (a folder whose name starts alike);
    each row's sha256 field holds its folder's name, to tell them apart."""
    log = ProvenanceLog()
    for folder in ("out", "out2"):
        (tmp_path / folder).mkdir()
        row_id, _ = log.reserve((tmp_path / folder / "a.png").resolve(), "image", None, (), (), True)
        log.complete(row_id, folder, True)
    return log


def test_forgetting_a_folder_keeps_the_rows_of_a_folder_whose_name_starts_alike(tmp_path: Path):
    log = _rows_in_out_and_out2(tmp_path)
    assert log.forget_folder(tmp_path / "out") == 1
    assert [row.sha256 for row in log.rows()] == ["out2"]


def test_moving_a_folder_leaves_the_rows_of_a_folder_whose_name_starts_alike(tmp_path: Path):
    log = _rows_in_out_and_out2(tmp_path)
    assert log.moved(tmp_path / "out", tmp_path / "new") == 1
    paths = {row.sha256: Path(row.path) for row in log.rows()}
    assert paths == {"out": (tmp_path / "new" / "a.png").resolve(),
                     "out2": (tmp_path / "out2" / "a.png").resolve()}


def test_integer_audio_is_scaled_so_that_full_scale_is_exactly_one():
    int16 = writer._as_float_audio(np.array([-32768, 16384, 0], np.int16), "audio")
    np.testing.assert_array_equal(int16, np.array([-1.0, 0.5, 0.0], np.float32))
    uint8 = writer._as_float_audio(np.array([0, 128, 192], np.uint8), "audio")
    np.testing.assert_array_equal(uint8, np.array([-1.0, 0.0, 0.5], np.float32))


def test_float_audio_beyond_minus_one_is_clipped_too():
    clipped = writer._as_float_audio(np.array([-2.0, 0.5], np.float32), "audio")  # nothing above +1
    np.testing.assert_array_equal(clipped, np.array([-1.0, 0.5], np.float32))


def test_only_three_channel_images_are_accepted():
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB image"):
        writer._as_rgb(np.zeros((4, 4, 4), np.uint8))


def test_figures_are_rendered_at_the_dpi_asked_for(out_dir: Path):
    fig = Figure(figsize=(2, 1))
    assert media.read_image(writer.save_figure(fig, out_dir / "small.png", dpi=50)).shape == (50, 100, 3)


def test_the_label_is_a_see_through_box_in_the_bottom_left_corner_sized_to_the_picture():
    """On white: the box's bare padding is 255 x (1 - 0.6) = 102, the white text leaves its pixels white;
    the box sits as far from the bottom as from the left and is taller than 6 % of the side (the text's
    height, plus padding). 32 px is the smallest side labelled."""
    from consent_and_watermark.label import BOX_ALPHA, draw_label

    white = np.full((256, 256, 3), 255, np.uint8)
    out = draw_label(white)
    rows, cols = np.nonzero((out != 255).any(axis=2))
    assert out[rows.min(), cols.min()].tolist() == [round(255 * (1 - BOX_ALPHA))] * 3 == [102] * 3
    assert out[out != 255].min() == 102  # text and box blend, nothing darker than the bare box
    assert cols.min() == 255 - rows.max() > 0  # the same margin to the left and to the bottom edge
    assert rows.max() - rows.min() + 1 > 0.06 * 256 and cols.max() < 128
    assert not np.array_equal(draw_label(white[:32, :32]), white[:32, :32])
    assert np.array_equal(draw_label(white[:31, :40]), white[:31, :40])


def test_a_payload_is_the_row_id_above_the_unix_seconds_of_its_write(tmp_path: Path):
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)  # 1767225600 s = 0x6955b900 s after 1970
    assert make_payload(5, moment) == 0x00000005_6955B900
    assert payload_time(make_payload(5, moment)) == moment
    row_id, payload = ProvenanceLog().reserve(tmp_path / "a.png", "image", None, (), (), True)
    assert payload >> 32 == row_id


def test_a_rows_json_form_writes_every_payload_as_16_hex_digits(tmp_path: Path):
    log = ProvenanceLog()
    row_id, _ = log.reserve(tmp_path / "a.png", "image", None, (), (), True)
    log.complete(row_id, "ab" * 32, True, sources=(0x1_000000FF,))
    (row,) = log.rows()
    assert row.to_dict()["sources"] == ["00000001000000ff"] and len(row.to_dict()["payload"]) == 16
