"""``verify``: does a file carry this project's synthetic-media marks, and where did it come from?

Four independent checks, each of which can survive what the others do not:

| check | survives | proves |
|---|---|---|
| invisible watermark | re-encoding, resizing, mild edits | "marked with this watermark key" (+ payload) |
| metadata | plain copies, ffmpeg remuxes | nothing (anyone can write or strip it): a label |
| C2PA manifest | only the exact bytes | who signed these bytes and what they declared |
| provenance row | (local log) | which run wrote it: technique, consent, command line |

**Marked** (exit status 0) means: the watermark is detected (false-positive bound below 1e-6), *or* a
C2PA manifest validates (Trusted or Valid) and declares ``trainedAlgorithmicMedia`` *and* the plain
metadata says the same. The second rule is how outputs too small for the watermark count as marked;
it asks for both because the writer always writes both, so a file with only one was altered later.
"Valid" counts as well as "Trusted": the question is whether the file declares itself synthetic, not
whether it was made on this machine (the provenance row answers that). Not marked: exit status 1.
Unreadable or unsupported input: ``UserError`` (exit status 2).
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from PIL import Image

from common import media
from common.errors import UserError
from consent_and_watermark import c2pa_sign
from consent_and_watermark.consent import sha256_file
from consent_and_watermark.detection import FPR_THRESHOLD, Detection
from consent_and_watermark.keys import KeyMaterial, key_dir, load_keys, medium_key
from consent_and_watermark.metadata import (
    METADATA_SUFFIXES,
    TRAINED_ALGORITHMIC_MEDIA,
    MetadataReport,
    read_metadata,
)
from consent_and_watermark.provenance import ProvenanceLog, Row, payload_time

AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac"}
SIGNED_STATES = ("Trusted", "Valid")


@dataclass
class VerifyReport:
    """Everything ``verify`` found about one file."""

    path: str
    kind: str  # image / video / audio
    sha256: str
    watermark: dict | None  # the Detection of the pixels (images, video frames) as a dict
    audio_watermark: dict | None  # the Detection of the audio (audio files, video soundtracks)
    metadata: MetadataReport
    c2pa: c2pa_sign.C2paReport
    provenance: Row | None
    matched_by: str | None  # "sha256" (untouched output) or "payload" (re-encoded output)
    marked: bool
    reasons: list[str] = field(default_factory=list)  # why it counts as marked
    sources: list[Row] = field(default_factory=list)  # the earlier outputs it was made from, if logged
    new_keys: bool = False  # this machine had no keys before this check: only its own marks can be read

    def to_dict(self) -> dict:
        """JSON-ready form (`verify --json`)."""
        out = asdict(self)
        out["provenance"] = self.provenance.to_dict() if self.provenance else None
        out["sources"] = [row.to_dict() for row in self.sources]
        for key in ("watermark", "audio_watermark"):
            if out[key] and out[key]["payload"] is not None:
                out[key]["payload"] = f"{out[key]['payload']:016x}"
        out["metadata"]["payload"] = (
            f"{self.metadata.payload:016x}" if self.metadata.payload is not None else None
        )
        out["c2pa"]["payload"] = f"{self.c2pa.payload:016x}" if self.c2pa.payload is not None else None
        return out


def _detection_dict(detection) -> dict:
    """A Detection as plain data; the payload only when detected (otherwise it is noise decoded as bits)."""
    return {
        "detected": bool(detection.detected),
        "payload": detection.payload if detection.detected else None,
        "bit_errors": int(detection.bit_errors),
        "n_bits": int(detection.n_bits),
        "fpr": float(detection.fpr),
        "details": detection.details,
    }


def _skipped(reason: str) -> dict:
    """A detection that was not attempted (the input cannot carry a watermark)."""
    return {
        "detected": False,
        "payload": None,
        "bit_errors": 0,
        "n_bits": 0,
        "fpr": 1.0,
        "details": {"skipped": reason},
    }


def _first_reading(readings: list[Callable[[], Detection]]) -> dict:
    """The first of several readings of the same pixels that detects the mark, else the first one.
    Each reading is one more chance for unmarked content to match, so every bound is multiplied by
    their number (a union bound) before "detected" is decided."""
    results = []
    for read in readings:
        found = read()
        fpr = min(1.0, found.fpr * len(readings))
        found = replace(found, fpr=fpr, detected=found.detected and fpr < FPR_THRESHOLD)
        if found.detected:
            return _detection_dict(found)
        results.append(found)
    return _detection_dict(results[0])


def _detect_pixels(path: Path, kind: str, keys: KeyMaterial) -> dict:
    """The image watermark, read from the pixels as stored (where the writer put it) and, when the file
    says to show them turned (an EXIF orientation or rotation tag added since), as shown too: a photo
    app that stores a turned copy of a marked output turns the mark with it."""
    module = importlib.import_module("consent_and_watermark.watermark_image")
    key = medium_key(keys, "image")
    turned = media.is_turned(path)
    if kind == "image":
        try:
            rgb = media.read_image(path, upright=False)
        except UserError as err:  # damaged pixels: the metadata and the manifest can still be read
            return _skipped(f"pixels unreadable: {err}")
        if min(rgb.shape[:2]) < module.MIN_SIZE:
            return _skipped(f"smaller than {module.MIN_SIZE} px")
        readings = [lambda: module.detect(rgb, key)]
        if turned:
            readings.append(lambda: module.detect(media.read_image(path), key))
        return _first_reading(readings)
    info = media.video_info(path)
    if min(info.width, info.height) < module.MIN_SIZE:
        return _skipped(f"frames smaller than {module.MIN_SIZE} px")
    readings = [lambda: module.detect_video(media.iter_video(path, upright=False), key, max_frames=60)]
    if turned:
        readings.append(lambda: module.detect_video(media.iter_video(path), key, max_frames=60))
    return _first_reading(readings)


def _detect_audio(path: Path, keys: KeyMaterial) -> dict:
    module = importlib.import_module("consent_and_watermark.watermark_audio")
    samples, rate = media.read_audio(path)
    if rate < module.MIN_RATE:
        return _skipped(f"sampled at {rate} Hz, below {module.MIN_RATE} Hz")
    if len(samples) < module.MIN_SECONDS * rate:
        return _skipped(f"shorter than {module.MIN_SECONDS} s")
    return _detection_dict(module.detect(samples, rate, medium_key(keys, "audio")))


def _kind(path: Path) -> str:
    """image, video or audio, from the suffix and, for containers that may hold either (.mp4, .m4a,
    .mov, ...), from the streams. Besides the formats the project writes, any picture or media file a
    copy may have been converted to (WebP, GIF, TIFF, MKV, FLAC, Ogg, ...): its watermark can survive."""
    suffix = path.suffix.lower()
    if media.is_image_path(path):
        return "image"
    if suffix in media.VIDEO_SUFFIXES | {".gif", ".m4a"}:
        return "video" if _has_video(path) else "audio"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    formats = sorted(media.IMAGE_SUFFIXES | media.VIDEO_SUFFIXES | AUDIO_SUFFIXES | {".gif"})
    raise UserError(f"cannot verify {path.name}: supported formats are {', '.join(formats)}")


def media_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (recursively, sorted) that ``verify`` reads, hidden ones left out."""
    suffixes = media.IMAGE_SUFFIXES | media.VIDEO_SUFFIXES | AUDIO_SUFFIXES | {".gif"}
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _has_video(path: Path) -> bool:
    """Whether an MP4-family file holds a video stream (its suffix does not say: .m4a may carry one)."""
    try:
        media.video_info(path)
    except UserError:
        return False  # no video stream, or not readable: the audio path says which
    return True


def verify(path: str | Path, *, log: ProvenanceLog | None = None) -> VerifyReport:
    """Run every check on ``path``. Raises ``UserError`` for a missing, unreadable or unsupported file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    kind = _kind(path)
    new_keys = not (key_dir() / "watermark.key").exists()
    keys = load_keys()
    suffix = path.suffix.lower()
    if suffix in METADATA_SUFFIXES:
        try:
            metadata = read_metadata(path)
        except (OSError, ValueError, Image.DecompressionBombError) as err:  # the last: a huge picture
            raise UserError(f"cannot read {path}: {err}") from err
    else:  # a format the project never writes (a converted copy): only the watermark can be there
        metadata = MetadataReport(synthetic=False, digital_source_type=None, payload=None, fields={})
    watermark = _detect_pixels(path, kind, keys) if kind in ("image", "video") else None
    has_audio = kind == "audio" or media.video_info(path).has_audio
    audio_watermark = _detect_audio(path, keys) if has_audio else None
    c2pa = c2pa_sign.C2paReport(state="absent")
    if suffix in c2pa_sign.MIME_TYPES:
        with open(path, "rb") as stream:
            c2pa = c2pa_sign.read_manifest(stream, c2pa_sign.mime_type(path), keys)

    digest = sha256_file(path)
    log = log or ProvenanceLog()
    row, matched_by = log.find_by_sha256(digest), "sha256"
    if row is None:
        detected = [d["payload"] for d in (watermark, audio_watermark)  # readable payloads only
                    if d and d["detected"] and d["payload"] is not None]
        row = log.find_by_payload(detected[0]) if detected else None
        matched_by = "payload"
    reasons = []
    for name, detection in (("watermark", watermark), ("audio watermark", audio_watermark)):
        if detection and detection["detected"]:
            reasons.append(f"{name} detected (FPR {detection['fpr']:.1e})")
    if (
        c2pa.state in SIGNED_STATES
        and c2pa.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
        and metadata.synthetic
    ):
        reasons.append(f"{c2pa.state} C2PA manifest and metadata declare trainedAlgorithmicMedia")
    found = [log.find_by_payload(p) for p in row.sources] if row else []
    return VerifyReport(
        path=str(path),
        kind=kind,
        sha256=digest,
        watermark=watermark,
        audio_watermark=audio_watermark,
        metadata=metadata,
        c2pa=c2pa,
        provenance=row,
        matched_by=matched_by if row else None,
        marked=bool(reasons),
        reasons=reasons,
        sources=[r for r in found if r is not None],
        new_keys=new_keys,
    )


def _describe_detection(name: str, detection: dict | None) -> str:
    if detection is None:
        return f"{name}: (no such track)"
    if "skipped" in detection["details"]:
        return f"{name}: not checked ({detection['details']['skipped']})"
    if not detection["detected"]:
        errors, bits = detection["bit_errors"], detection["n_bits"]
        flat = " (all: a flat picture or silence reads so)" if errors >= bits else ""
        return f"{name}: not detected (best match {errors}/{bits} errors{flat})"
    payload = detection["payload"]
    if payload is None:  # the bound says marked, but the payload failed its CRC
        return (
            f"{name}: DETECTED, payload unreadable (CRC failed), "
            f"{detection['bit_errors']}/{detection['n_bits']} bit errors, FPR {detection['fpr']:.1e}"
        )
    when = payload_time(payload).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"{name}: DETECTED payload {payload:016x} (row {payload >> 32}, written {when}), "
        f"{detection['bit_errors']}/{detection['n_bits']} bit errors, FPR {detection['fpr']:.1e}"
    )


def format_line(report: VerifyReport) -> str:
    """One line per file for a folder's check: the verdict, the path, and why."""
    if report.marked:
        why = "; ".join(report.reasons)
        row = report.provenance
        return f"MARKED      {report.path}: {why}" + (f"; log row {row.id}" if row else "; not in this log")
    return f"NOT MARKED  {report.path}: no watermark, no signed manifest with synthetic metadata"


def format_report(report: VerifyReport) -> str:
    """The human-readable summary printed by ``python -m consent_and_watermark verify FILE``."""
    meta, c2pa, row = report.metadata, report.c2pa, report.provenance
    lines = [f"file: {report.path} ({report.kind}, sha256 {report.sha256[:16]}...)"]
    if report.kind != "audio":
        lines.append(_describe_detection("watermark", report.watermark))
    if report.audio_watermark is not None or report.kind == "audio":
        lines.append(_describe_detection("audio watermark", report.audio_watermark))
    if report.new_keys:
        lines.append(f"note: this machine had no keys before this check (new ones are in {key_dir()}): a "
                     "watermark is keyed per install, so only the install that marked a file can detect it")
    where = sorted({key.split(":")[0] for key in meta.fields})
    statement = (
        "synthetic (IPTC trainedAlgorithmicMedia)" if meta.synthetic else "no synthetic-media statement"
    )
    lines.append(f"metadata: {statement}" + (f" in {', '.join(where)}" if where else ""))
    c2pa_line = f"C2PA: {c2pa.state}"
    if c2pa.signer:
        c2pa_line += f", signed by {c2pa.signer!r}"
    if c2pa.consent:
        ids = [r.get("id") for r in c2pa.consent.get("records", [])]
        c2pa_line += (
            f", consent {', '.join(ids) or 'none'} ({c2pa.consent.get('technique') or 'no technique'})"
        )
    lines.append(c2pa_line)
    lines += [f"  failure: {failure}" for failure in c2pa.failures[:5]]
    if row is None:
        lines.append("provenance: no matching row in the local log")
    else:
        created = datetime.datetime.fromisoformat(row.created).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(
            f"provenance: row {row.id} (matched by {report.matched_by}), {row.kind} written {created}, "
            f"technique {row.technique or 'none'}, consent {', '.join(row.consent_ids) or 'none'}, "
            f"visible label {'on' if row.visible_label else 'off'}, command: {' '.join(row.command)}"
        )
        logged = {r.payload: r for r in report.sources}
        for payload in row.sources:
            origin = logged.get(payload)
            lines.append(
                f"made from: row {origin.id}, {origin.kind} {origin.path}" if origin
                else f"made from: an output with payload {payload:016x}, not in this log"
            )
    lines.append(
        "verdict: " + ("MARKED (" + "; ".join(report.reasons) + ")" if report.marked else "NOT MARKED")
    )
    return "\n".join(lines)
