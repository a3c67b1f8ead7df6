"""``python -m consent_and_watermark verify``: exit status, text and JSON reports, bad input."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from common import media
from common.cli import run
from consent_and_watermark import __main__ as cli
from consent_and_watermark import writer
from consent_and_watermark.provenance import ProvenanceLog
from consent_and_watermark.verify import format_report, verify


def _verify(args: list[str]) -> int:
    return run(cli.main, ["verify", *args])


def _edit_png_text(data: bytes, keyword: bytes, old: bytes, new: bytes) -> bytes:
    """Replace text inside one iTXt chunk and fix its CRC (PNG spec 5.3): a forged claim, valid PNG."""
    out, pos = bytearray(data[:8]), 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"iTXt" and body.startswith(keyword + b"\0"):
            assert old in body
            body = body.replace(old, new)
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + length
    return bytes(out)


def test_marked_file_exits_0_with_a_readable_report(out_dir: Path, natural_rgb, capsys):
    path = writer.save_image(out_dir / "face.png", natural_rgb)
    assert _verify([str(path)]) == 0
    text = capsys.readouterr().out
    expected = ("watermark: DETECTED", "metadata: synthetic", "C2PA: Trusted", "provenance: row", "MARKED")
    assert all(line in text for line in expected), text


def test_json_report(out_dir: Path, natural_rgb, capsys):
    path = writer.save_image(out_dir / "face.jpg", natural_rgb)
    assert _verify([str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["marked"] and report["c2pa"]["state"] == "Trusted" and report["matched_by"] == "sha256"
    assert report["watermark"]["payload"] == report["provenance"]["payload"] == report["c2pa"]["payload"]
    assert len(report["watermark"]["payload"]) == 16 and report["watermark"]["fpr"] < 1e-6


def test_unmarked_file_exits_1(out_dir: Path, natural_rgb, capsys):
    path = out_dir / "plain.png"
    Image.fromarray(natural_rgb).save(path)
    assert _verify([str(path)]) == 1
    text = capsys.readouterr().out
    assert "C2PA: absent" in text and "NOT MARKED" in text


def test_tampered_file_fails_c2pa_but_keeps_its_watermark(out_dir: Path, natural_rgb):
    path = writer.save_image(out_dir / "face.png", natural_rgb)
    forged = out_dir / "forged.png"
    # Claim the opposite in the description: same length, so only the hash of the content changes.
    forged.write_bytes(
        _edit_png_text(path.read_bytes(), b"Description", b"not a recording", b"now a recording")
    )
    report = verify(forged)
    assert report.c2pa.state == "Invalid" and report.c2pa.failures
    assert report.watermark["detected"] and report.marked
    assert report.matched_by == "payload"  # the hash changed, the payload did not
    assert f"  failure: {report.c2pa.failures[0]}" in format_report(report).splitlines()


def test_an_orientation_tag_added_later_does_not_hide_the_watermark(out_dir: Path, natural_rgb):
    marked = Image.open(writer.save_image(out_dir / "face.png", natural_rgb))
    exif = marked.getexif()
    exif[0x0112] = 6  # "show turned 90 degrees": viewers (and the tools) turn it, the pixels stay
    marked.save(out_dir / "tagged.png", exif=exif)
    assert media.read_image(out_dir / "tagged.png").shape[:2] == natural_rgb.shape[1::-1]
    report = verify(out_dir / "tagged.png")
    assert report.watermark["detected"] and report.matched_by == "payload"  # read as stored


def test_an_output_stored_turned_with_an_orientation_tag_is_still_traced(out_dir: Path, natural_rgb):
    marked = media.read_image(writer.save_image(out_dir / "face.png", natural_rgb))
    turned = Image.fromarray(np.ascontiguousarray(np.rot90(marked, -1)))  # the pixels turned clockwise...
    exif = turned.getexif()
    exif[0x0112] = 8  # ...and tagged "turn back 90 degrees to show": it looks as before
    turned.save(out_dir / "turned.png", exif=exif)
    np.testing.assert_array_equal(media.read_image(out_dir / "turned.png"), marked)
    report = verify(out_dir / "turned.png")
    assert report.watermark["detected"] and report.matched_by == "payload"  # read as shown
    assert report.watermark["fpr"] < 1e-6


def test_a_copy_converted_to_a_format_the_project_never_writes_is_still_traced(out_dir: Path, natural_rgb):
    marked = writer.save_image(out_dir / "face.png", natural_rgb)
    Image.open(marked).save(out_dir / "face.webp", quality=90)  # shared as WebP: metadata and manifest gone
    report = verify(out_dir / "face.webp")
    assert report.kind == "image" and report.c2pa.state == "absent" and not report.metadata.synthetic
    assert report.watermark["detected"] and report.marked and report.matched_by == "payload"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.png", None, "no such file"),
        ("notes.txt", b"hello", "supported formats"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, "cannot read"),
        ("broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50, "cannot read"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert _verify([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_damaged_provenance_log_exits_2(out_dir: Path, natural_rgb, tmp_path: Path, monkeypatch, capsys):
    path = writer.save_image(out_dir / "face.png", natural_rgb)
    damaged = tmp_path / "damaged-data"  # another user's data dir, whose log was overwritten
    damaged.mkdir()
    (damaged / "provenance.sqlite").write_bytes(b"not a database" * 100)
    monkeypatch.setenv("DEEPFAKE_DATA_DIR", str(damaged))
    assert _verify([str(path)]) == 2
    assert "provenance log" in capsys.readouterr().err
    assert _verify([str(out_dir)]) == 2  # a folder: one line too, not one per file
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "provenance log" in err


def test_log_lists_outputs_and_the_label_choice(out_dir: Path, natural_rgb, capsys):
    writer.save_image(out_dir / "on.png", natural_rgb)
    writer.save_image(out_dir / "off.png", natural_rgb, label=False)
    writer.save_audio(out_dir / "voice.wav", np.zeros(16000 * 3, np.float32), 16000)
    assert run(cli.main, ["log"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "voice.wav" in lines[0] and "no label" in lines[0]  # none to turn off
    assert "off.png" in lines[1] and "LABEL OFF" in lines[1] and "label on" in lines[2]


def test_transcoded_audio_is_traced_by_its_watermark(out_dir: Path):
    """A marked WAV re-encoded to 64 kbps AAC (.m4a): manifest and metadata gone, the watermark stays."""
    babble = (0.1 * np.random.default_rng(1).standard_normal(16000 * 10)).astype(np.float32)
    writer.save_audio(out_dir / "voice.wav", babble, 16000)
    (written,) = ProvenanceLog().rows()
    samples, rate = media.read_audio(out_dir / "voice.wav")
    with av.open(str(out_dir / "voice.m4a"), mode="w", format="ipod") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout, stream.bit_rate = "mono", 64_000
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    report = verify(out_dir / "voice.m4a")
    assert report.c2pa.state == "absent" and not report.metadata.synthetic
    assert report.marked and report.audio_watermark["payload"] == written.payload
    assert report.matched_by == "payload"


def test_a_marked_video_re_encoded_at_crf_28_is_traced_by_its_watermark(out_dir: Path, natural_rgb):
    """A marked MP4 decoded and encoded again by another program (libx264, CRF 28): the manifest and
    metadata are gone, the watermark still names the payload of the original's provenance row."""
    frames = np.stack([natural_rgb] * 12)  # a still shot (detected up to about CRF 32 here)
    writer.save_video(out_dir / "clip.mp4", frames, 25.0)
    (written,) = ProvenanceLog().rows()
    copy = out_dir / "copy.mp4"
    with av.open(str(out_dir / "clip.mp4")) as source, av.open(str(copy), mode="w") as target:
        stream = target.add_stream("libx264", rate=25, options={"crf": "28"})
        stream.width, stream.height, stream.pix_fmt = natural_rgb.shape[1], natural_rgb.shape[0], "yuv420p"
        for frame in source.decode(video=0):
            image = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            for packet in stream.encode(image):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    assert copy.read_bytes() != (out_dir / "clip.mp4").read_bytes()
    assert len(media.read_video(copy).frames) == len(frames)
    report = verify(copy)
    assert report.c2pa.state == "absent" and not report.metadata.synthetic
    assert report.marked and report.watermark["detected"] and report.watermark["payload"] == written.payload
    assert report.matched_by == "payload"


def test_the_kind_of_an_mp4_family_file_comes_from_its_streams_not_its_suffix(out_dir: Path, natural_rgb):
    babble = (0.1 * np.random.default_rng(2).standard_normal(16000 * 10)).astype(np.float32)
    writer.save_audio(out_dir / "voice.wav", babble, 16000)
    samples, rate = media.read_audio(out_dir / "voice.wav")
    with av.open(str(out_dir / "voice.mp4"), mode="w") as container:  # sound only, in an .mp4
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    report = verify(out_dir / "voice.mp4")
    assert report.kind == "audio" and report.audio_watermark is not None  # read as sound, not refused
    clip = writer.save_video(out_dir / "clip.mp4", np.stack([natural_rgb] * 3), 25.0, label=False)
    renamed = out_dir / "clip.m4a"  # a video whose name says sound
    renamed.write_bytes(clip.read_bytes())
    report = verify(renamed)
    assert report.kind == "video" and report.watermark is not None  # its frames are looked at


def test_a_detection_with_an_unreadable_payload_is_reported_not_crashed():
    from consent_and_watermark.verify import _describe_detection

    detection = {"detected": True, "payload": None, "bit_errors": 700, "n_bits": 2000, "fpr": 1e-9,
                 "details": {}}
    assert "payload unreadable" in _describe_detection("audio watermark", detection)


def test_a_detected_mark_whose_payload_is_unreadable_is_reported_not_looked_up(tmp_path, natural_rgb,
                                                                                  monkeypatch):
    """A re-encoded copy can read as marked with its payload's CRC failed: nothing to look the row up by
    (a transcoded soundtrack did this now and then, and verify crashed on it)."""
    from consent_and_watermark import verify as verify_module

    plain = tmp_path / "copy.png"
    Image.fromarray(natural_rgb).save(plain)  # not in the log: found by payload or not at all
    unreadable = {"detected": True, "payload": None, "bit_errors": 700, "n_bits": 2000, "fpr": 1e-9,
                  "details": {}}
    monkeypatch.setattr(verify_module, "_detect_pixels", lambda path, kind, keys: unreadable)
    report = verify(plain)
    assert report.marked and report.provenance is None
    assert "payload unreadable" in verify_module.format_report(report)


def test_verify_of_an_empty_folder_says_there_is_nothing_to_check(tmp_path: Path, capsys):
    (tmp_path / "notes.txt").write_text("not media")
    assert _verify([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path} is a folder without any image, video or audio file in it\n"


def test_verify_of_a_folder_checks_every_media_file_below_it_a_line_each(out_dir: Path, natural_rgb, capsys):
    folder = out_dir / "batch"
    writer.save_image(folder / "a.png", natural_rgb)
    writer.save_image(folder / "deeper" / "b.jpg", natural_rgb)
    (folder / "notes.json").write_text("{}")  # not media: left out
    (folder / ".hidden.png").write_bytes(b"half-written")  # hidden (a writer's temp name): left out
    assert _verify([str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["MARKED", "MARKED"]
    assert "a.png" in lines[0] and "b.jpg" in lines[1] and "log row" in lines[0]
    assert lines[2] == "2 files: 2 marked"


def test_verify_of_several_files_exits_by_the_worst_and_keeps_going(out_dir: Path, natural_rgb, capsys):
    marked = writer.save_image(out_dir / "m.png", natural_rgb)
    plain = out_dir / "plain.png"
    Image.fromarray(natural_rgb).save(plain)  # an input, not an output: unmarked on purpose
    broken = out_dir / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    assert _verify([str(marked), str(plain)]) == 1
    out = capsys.readouterr().out
    assert "NOT MARKED  " + str(plain) in out and out.rstrip().endswith("2 files: 1 marked, 1 not marked")
    assert _verify([str(broken), str(marked), str(plain), "--json"]) == 2
    results = json.loads(capsys.readouterr().out)
    assert "cannot read" in results[0]["error"] and results[1]["marked"] and not results[2]["marked"]


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_log_refuses_a_limit_below_one_in_one_line(out_dir: Path, natural_rgb, capsys, limit):
    writer.save_image(out_dir / "face.png", natural_rgb)
    assert run(cli.main, ["log", "--limit", limit]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --limit must be at least 1, got {limit}\n" and captured.out == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checked where poll() reports a closed pipe")
def test_log_into_a_pipe_whose_reader_has_gone_exits_quietly(out_dir: Path, natural_rgb):
    """`python -m consent_and_watermark log | head -5`: head stops reading; log ends without a traceback."""
    writer.save_image(out_dir / "face.png", natural_rgb)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first row is written
    try:
        done = subprocess.run([sys.executable, "-m", "consent_and_watermark", "log"], stdout=write_end,
                              stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2], timeout=300)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == b""


def test_verify_on_a_machine_without_keys_says_why_no_watermark_can_be_read(out_dir, natural_rgb, tmp_path,
                                                                              monkeypatch, capsys):
    path = writer.save_image(out_dir / "made_here.png", natural_rgb)
    monkeypatch.setenv("DEEPFAKE_CONFIG_DIR", str(tmp_path / "another_machine"))
    _verify([str(path)])
    out = capsys.readouterr().out
    assert "watermark: not detected" in out and "this machine had no keys before this check" in out
    _verify([str(path)])
    assert "had no keys" not in capsys.readouterr().out  # the keys made by the first check exist now


def test_damaged_pixels_still_get_a_report_of_the_metadata_and_the_manifest(out_dir: Path, natural_rgb):
    path = writer.save_image(out_dir / "face.png", natural_rgb)
    data = bytearray(path.read_bytes())
    data[data.index(b"IDAT") + 200] ^= 0xFF  # one flipped byte in the compressed pixels
    damaged = out_dir / "damaged.png"
    damaged.write_bytes(bytes(data))
    report = verify(damaged)
    assert "pixels unreadable" in report.watermark["details"]["skipped"]
    assert report.metadata.synthetic and report.c2pa.state == "Invalid" and not report.marked
    assert _verify([str(damaged)]) == 1  # a verdict (tampered, not marked), not a refusal


def test_several_readings_of_the_same_pixels_multiply_the_false_positive_bound():
    from consent_and_watermark.detection import Detection
    from consent_and_watermark.verify import _first_reading

    found = Detection(True, 7, 100, 2000, 6e-7)  # under the 1e-6 threshold once, not twice
    one = _first_reading([lambda: found])
    two = _first_reading([lambda: found, lambda: found])
    assert one["detected"] and one["fpr"] == pytest.approx(6e-7)
    assert not two["detected"] and two["fpr"] == pytest.approx(1.2e-6)


def test_log_limit_prints_that_many_of_the_newest_rows(tmp_path: Path, capsys):
    log = ProvenanceLog()
    for name in ("a.png", "b.png", "c.png"):
        row_id, _ = log.reserve(tmp_path / name, "image", "swap", (), (), True)
        log.complete(row_id, name, True)
    assert run(cli.main, ["log", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("c.png") and lines[1].endswith("b.png")


def test_log_names_an_unmarked_output_and_every_consent_record(tmp_path: Path, capsys):
    log = ProvenanceLog()
    row_id, _ = log.reserve(tmp_path / "small.png", "image", "swap", ("cr-a", "cr-b"), (), True)
    log.complete(row_id, "ab", False)
    assert run(cli.main, ["log"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert "no watermark" in line and "consent=cr-a,cr-b" in line


def test_an_undetected_mark_reports_no_payload_and_the_first_reading():
    """Undetected, the decoded bits are noise: no payload. Of several readings none of which detects,
    the one reported is the first (the pixels as stored)."""
    from consent_and_watermark.detection import Detection
    from consent_and_watermark.verify import _first_reading

    as_stored, as_shown = Detection(False, 7, 900, 2000, 0.5), Detection(False, 9, 950, 2000, 0.9)
    reported = _first_reading([lambda: as_stored, lambda: as_shown])
    assert reported["payload"] is None and reported["bit_errors"] == 900 and reported["fpr"] == 1.0


def test_verify_of_an_unmarked_file_names_no_payload_and_no_match(out_dir: Path, natural_rgb):
    path = out_dir / "plain.png"
    Image.fromarray(natural_rgb).save(path)
    report = verify(path)
    assert not report.marked and report.provenance is None and report.matched_by is None
    assert report.watermark["payload"] is None and not report.watermark["detected"]


def test_verify_reads_the_watermark_of_the_smallest_picture_and_the_slowest_audio_that_carry_one(
        out_dir: Path, natural_rgb):
    """128 px (one tile) and 8 kHz are the limits the marks are made for: checked, not skipped."""
    Image.fromarray(natural_rgb[:128, :128]).save(out_dir / "tile.png")
    assert "skipped" not in verify(out_dir / "tile.png").watermark["details"]
    import soundfile as sf

    noise = (0.1 * np.random.default_rng(0).standard_normal(8000 * 3)).astype(np.float32)
    sf.write(out_dir / "phone.wav", noise, 8000)
    assert "skipped" not in verify(out_dir / "phone.wav").audio_watermark["details"]


@pytest.mark.parametrize(("state", "synthetic", "marked"),
                         [("Valid", True, True), ("Trusted", False, False), ("Invalid", True, False)])
def test_a_signed_manifest_marks_a_file_only_with_synthetic_metadata_beside_it(out_dir: Path, natural_rgb,
                                                                               monkeypatch, state, synthetic,
                                                                               marked):
    """Without a watermark: a Trusted or Valid manifest declaring trainedAlgorithmicMedia, and metadata
    saying the same (the writer writes both: a file with one only was altered)."""
    from consent_and_watermark import c2pa_sign
    from consent_and_watermark import verify as verify_module
    from consent_and_watermark.metadata import TRAINED_ALGORITHMIC_MEDIA, MetadataReport

    path = out_dir / "plain.png"
    Image.fromarray(natural_rgb).save(path)
    monkeypatch.setattr(verify_module, "_detect_pixels", lambda path, kind, keys: None)
    monkeypatch.setattr(c2pa_sign, "read_manifest", lambda *args: c2pa_sign.C2paReport(
        state=state, digital_source_type=TRAINED_ALGORITHMIC_MEDIA))
    monkeypatch.setattr(verify_module, "read_metadata", lambda path: MetadataReport(
        synthetic=synthetic, digital_source_type=TRAINED_ALGORITHMIC_MEDIA if synthetic else None,
        payload=None, fields={}))
    report = verify(path)
    assert report.marked == marked
    if marked:
        assert report.reasons == [f"{state} C2PA manifest and metadata declare trainedAlgorithmicMedia"]


def test_verify_of_a_flat_picture_says_why_every_chip_is_wrong(out_dir: Path):
    """A flat picture has no high-pass content: every chip reads 0, which counts as a mismatch."""
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(out_dir / "grey.png")
    report = verify(out_dir / "grey.png")
    assert report.watermark["bit_errors"] == report.watermark["n_bits"] > 0
    assert "(all: a flat picture or silence reads so)" in format_report(report)


def test_a_detected_payload_is_reported_with_the_row_and_time_it_encodes():
    """A payload is (row id << 32) | write time in Unix seconds: 1,700,000,000 s is 2023-11-14 22:13:20."""
    from consent_and_watermark.verify import _describe_detection

    payload = (5 << 32) | 1_700_000_000
    detection = {"detected": True, "payload": payload, "bit_errors": 100, "n_bits": 2000, "fpr": 1e-30,
                 "details": {}}
    assert _describe_detection("watermark", detection) == (
        f"watermark: DETECTED payload {payload:016x} (row 5, written 2023-11-14 22:13:20 UTC), "
        "100/2000 bit errors, FPR 1.0e-30")


def test_the_report_lists_the_first_five_manifest_failures(out_dir: Path, natural_rgb):
    import dataclasses

    from consent_and_watermark.c2pa_sign import C2paReport

    Image.fromarray(natural_rgb).save(out_dir / "plain.png")
    failures = [f"failure number {i}" for i in range(7)]
    report = dataclasses.replace(verify(out_dir / "plain.png"), c2pa=C2paReport("Invalid", failures=failures))
    lines = [line for line in format_report(report).splitlines() if line.startswith("  failure: ")]
    assert lines == [f"  failure: failure number {i}" for i in range(5)]


def test_audio_shorter_than_one_period_is_not_checked_and_the_report_says_why(out_dir: Path):
    import soundfile as sf

    noise = (0.1 * np.random.default_rng(0).standard_normal(16000 * 2)).astype(np.float32)  # 2 s
    sf.write(out_dir / "short.wav", noise, 16000)
    report = verify(out_dir / "short.wav")
    assert report.audio_watermark["details"] == {"skipped": "shorter than 2.56 s"}  # 40 blocks of 64 ms
    assert "audio watermark: not checked (shorter than 2.56 s)" in format_report(report)


def test_the_report_names_the_metadata_containers_and_the_consent_the_manifest_declares(out_dir: Path,
                                                                                      natural_rgb):
    """Why it is marked (with the watermark's bound); a PNG output states it is synthetic in its EXIF, its
    PNG text chunks and its XMP (each container named once); the manifest and the log row name the run's
    consent record and technique."""
    from consent_and_watermark.consent import register_synthetic_identity

    record_id = register_synthetic_identity("synth-0002", "Synthetic person 2")
    writer.begin_run("animate", [record_id], argv=["animate.py"])
    report = verify(writer.save_image(out_dir / "face.png", natural_rgb))
    assert report.reasons == [f"watermark detected (FPR {report.watermark['fpr']:.1e})",
                              "Trusted C2PA manifest and metadata declare trainedAlgorithmicMedia"]
    lines = format_report(report).splitlines()
    assert "metadata: synthetic (IPTC trainedAlgorithmicMedia) in exif, text, xmp" in lines
    (c2pa,) = [line for line in lines if line.startswith("C2PA: ")]
    assert c2pa.startswith("C2PA: Trusted") and c2pa.endswith(f", consent {record_id} (animate)")
    (row,) = [line for line in lines if line.startswith("provenance: ")]
    assert f"technique animate, consent {record_id}, visible label on" in row
