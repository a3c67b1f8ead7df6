"""The chokepoint: every image, video, sound and figure the project writes passes through here.

Each ``save_*`` call marks its output, in this order (each step explains the next one's place):

0. **visible label** "SYNTHETIC" drawn on images and frames (``label.py``; on by default, off with
   ``--no-visible-label``, which the provenance log records);
1. **invisible watermark** carrying a fresh 64-bit payload (``make_payload``: provenance row id and
   time) on every image and every video frame, and on audio tracks; keyed by the local watermark key;
2. **metadata** saying "trainedAlgorithmicMedia" (``metadata.py``), handed to the encoder;
3. **encode** (``encode.py``: PNG/JPEG, H.264 + AAC mp4, 16-bit WAV) to a temporary file;
4. **C2PA manifest** signed over the encoded bytes (``c2pa_sign.py``): it must come after every
   encode, because any re-encode drops it;
5. **rename** the finished file onto the target name (never a half-written or unmarked file there),
   then complete its **provenance row** with the SHA-256 of the final bytes.

Who is in the picture, with which technique, is told once per run through an :class:`OutputContext`:
CLIs call :func:`begin_run` (consent check + context) before any compute; library code and tests get a
default context (no consent records, label on).
"""

from __future__ import annotations

import importlib
import io
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from common.atomic import atomic_path, current_umask
from common.errors import UserError
from common.parallel import ordered_map
from consent_and_watermark import c2pa_sign, encode
from consent_and_watermark.consent import Record, check_consent, sha256_file
from consent_and_watermark.keys import KeyMaterial, load_keys, medium_key
from consent_and_watermark.label import draw_label
from consent_and_watermark.metadata import SyntheticInfo, image_fields, mp4_tags, wav_info
from consent_and_watermark.provenance import ProvenanceLog, stored_path

if TYPE_CHECKING:  # matplotlib is imported by whoever draws the figure, not by every writer user
    from matplotlib.figure import Figure

log = logging.getLogger("deepfake.provenance")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4",)
AUDIO_SUFFIXES = (".wav",)


# ---------------------------------------------------------------------------------------------------
# The output context: who and what a run's outputs are about, set once per run.


@dataclass(frozen=True)
class OutputContext:
    """What every output of a run records: technique, consent records, command line, label choice."""

    technique: str | None = None  # swap / reenact / animate / lipsync; None for previews and plots
    consent: tuple[Record, ...] = ()
    command: tuple[str, ...] | None = None  # None: sys.argv at write time
    visible_label: bool = True

    @property
    def consent_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.consent)


_DEFAULT_CONTEXT = OutputContext()
_current = _DEFAULT_CONTEXT  # one per process: every thread of a run writes for the same run


def get_context() -> OutputContext:
    """The current context (the default one for library use when no run set one)."""
    return _current


def set_context(context: OutputContext) -> None:
    """Make ``context`` apply to every following write of this process."""
    global _current
    _current = context


@contextmanager
def output_context(context: OutputContext) -> Iterator[OutputContext]:
    """``with output_context(ctx): ...`` applies ``ctx`` inside the block and restores the old one after."""
    previous = get_context()
    set_context(context)
    try:
        yield context
    finally:
        set_context(previous)


def begin_run(
    technique: str,
    consent_ids: Iterable[str],
    *,
    visible_label: bool = True,
    outputs: Iterable[str] = (),
    argv: list[str] | None = None,
    roles: Sequence[str] = (),
) -> list[Record]:
    """What every generation CLI calls first: check consent and the signing keys (``UserError`` on
    refusal or damage), set the context.

    ``outputs`` lists the kinds the run will write (image / video / audio) so that an out-of-scope
    record is refused before any compute, not at the first write. ``roles`` names the people the run
    touches (`common.cli.consent_roles`): the records must cover that many distinct subjects.
    """
    records = check_consent(consent_ids, technique, outputs=outputs, roles=roles)
    load_keys(signing=True)  # create or check the signing keys now, not after the compute
    if not visible_label:
        log.warning("visible SYNTHETIC label turned off (--no-visible-label); the provenance log records it")
    command = tuple(argv) if argv is not None else tuple(sys.argv)
    set_context(OutputContext(technique, tuple(records), command, visible_label))
    return records


# ---------------------------------------------------------------------------------------------------
# Step 1 helpers: the watermark modules and their keys.


def _watermarker(name: str):
    """``watermark_image`` or ``watermark_audio``, imported on first use (they pull in more numpy code)."""
    return importlib.import_module(f"consent_and_watermark.{name}")


class _ImageMarker:
    """Label + watermark frames; remembers whether the watermark could be embedded.

    Frames that already carry this project's mark (a tool's input was an earlier output) have the old
    mark taken out first (``watermark_image.Remover``): two marks would double the noise and, on large
    frames, leave the new payload undetectable beside the old one. The first frame decides (and gives
    where the old grid sits; ``Remover`` follows it frame by frame), and the old payload is kept in
    ``replaced`` (the provenance row records it: the link back to the source's row).
    Thread-safe: a video's frames are marked by a pool of threads (`common.parallel.ordered_map`), each
    with the grid shift ``with_grid`` found for it, in order, beforehand.
    """

    def __init__(self, payload: int, keys: KeyMaterial, show_label: bool, what: str):
        self.module = _watermarker("watermark_image")
        self.payload, self.key = payload, medium_key(keys, "image")
        self.show_label, self.what = show_label, what
        self.marked: bool | None = None  # unknown until the first frame
        self.replaced: int | None = None  # payload of an earlier mark the frames carried
        self._remover = None  # watermark_image.Remover for that mark, built on the first frame
        self.frames = 0
        self._lock = threading.Lock()

    def with_grid(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
        """(frame, grid shift) for a video's frames, in order: the grid moves with the picture
        (``watermark_image.GridTracker``), so that H.264 carries the mark from frame to frame."""
        tracker = self.module.GridTracker()
        for rgb in frames:
            rgb = _as_rgb(rgb)
            yield rgb, tracker(rgb)

    def __call__(self, rgb: np.ndarray, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
        rgb = _as_rgb(rgb)
        with self._lock:
            self.frames += 1
            if self.marked is None:  # the first frame decides for the whole video
                self.marked = min(rgb.shape[:2]) >= self.module.MIN_SIZE
                if not self.marked:
                    self._warn_too_small(rgb)
                else:
                    self.replaced = self._earlier_payload(rgb)
                    if self.replaced is not None:
                        self._remover = self.module.Remover(rgb, self.replaced, self.key)
        if self._remover is not None:
            rgb = self._remover(rgb, moved=shift)  # an earlier mark moved with the same picture
        if self.show_label:
            rgb = draw_label(rgb)
        return self.module.embed(rgb, self.payload, self.key, shift=shift) if self.marked else rgb

    def sources(self) -> list[int]:
        """The payload of the earlier output the frames came from, if they carried one."""
        return [] if self.replaced is None else [self.replaced]

    def _earlier_payload(self, rgb: np.ndarray) -> int | None:
        """The payload of this key's mark on an untransformed frame (removable), else None."""
        found = self.module.detect(rgb, self.key)
        details = found.details
        if not found.detected or found.payload is None:
            return None
        if details.get("geometry") != "identity" or details.get("flip"):
            return None  # zoomed, rotated or flipped since: the old mark's grid is not ours to subtract
        log.info("%s already carries this project's watermark (payload %016x): replaced", self.what,
                 found.payload)
        return found.payload

    def _warn_too_small(self, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        lasting = ("the visible label is its only mark that survives a re-encode or a metadata strip"
                   if self.show_label else "and with no visible label nothing on it survives a re-encode "
                   "or a metadata strip: keep the visible label or write larger frames")
        log.warning(
            "%s of %dx%d px is smaller than the watermark minimum (%d px a side): written without the "
            "invisible watermark, with metadata and a C2PA manifest only; %s",
            self.what,
            width,
            height,
            self.module.MIN_SIZE,
            lasting,
        )


def _as_float_audio(samples: np.ndarray, what: str) -> np.ndarray:
    """float32 samples in [-1, 1], as written: integer PCM (e.g. int16 from ``scipy.io.wavfile.read``) is
    scaled from its type's range, and floats beyond +-1 are clipped here, with a warning, so that the
    watermark is embedded, and read back, in exactly what the file will hold."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        half = (int(info.max) + 1) / 2 if info.min == 0 else -float(info.min)  # uint8: 128; int16: 32768
        return ((samples.astype(np.float64) - (half if info.min == 0 else 0.0)) / half).astype(np.float32)
    samples = np.asarray(samples, dtype=np.float32)
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{what} holds NaN or infinite samples")
    loud = int(np.count_nonzero(np.abs(samples) > 1.0))
    if loud:
        log.warning("%s: %d samples beyond [-1, 1] clipped (float audio is expected in [-1, 1])", what, loud)
        samples = np.clip(samples, -1.0, 1.0)
    return samples


def _sample_rate(rate: float) -> int:
    """A sample rate as the integer it must be (44100.0 is fine; 44100.5 or 0 is not)."""
    if not (float(rate).is_integer() and rate > 0):
        raise ValueError(f"sample rate must be a positive whole number of Hz, got {rate}")
    return int(rate)


def _mark_audio(
    samples: np.ndarray,
    sample_rate: int,
    payload: int,
    keys: KeyMaterial,
    what: str,
    keep_earlier: bool = False,
) -> tuple[np.ndarray, bool, int | None]:
    """Return ``(samples, carries the new payload, earlier payload kept)``.

    Audio shorter than the module's minimum, or sampled below 8 kHz, is left unmarked (and says so), as
    is audio the mark cannot be read back from once embedded (silence: the mark is scaled to the
    signal, so none is added), so that the log and the manifest never claim a mark that is not there.
    ``samples`` must be mono, ``(N,)`` or ``(N, 1)``. With ``keep_earlier`` (a video's soundtrack),
    audio that already carries this project's mark (a tool muxed in an earlier output's audio) keeps it
    untouched: a second mark on top costs ~5 dB of SNR and can leave both payloads unreadable; the frames
    carry the new payload, and the log links the soundtrack's own row.
    """
    module = _watermarker("watermark_audio")
    key = medium_key(keys, "audio")
    samples = _as_float_audio(samples, what)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:  # flattening (N, 2) would interleave the channels into a clip twice as long
        raise ValueError(f"expected mono audio, (N,) or (N, 1) samples, got shape {samples.shape}")
    if sample_rate < module.MIN_RATE:
        log.warning("%s at %d Hz is below the audio watermark's %d Hz: written without it", what,
                    sample_rate, module.MIN_RATE)
        return samples, False, None
    if len(samples) < module.MIN_SECONDS * sample_rate:
        log.warning(
            "%s of %.2f s is shorter than the audio watermark minimum (%.1f s): written without it",
            what,
            len(samples) / sample_rate,
            module.MIN_SECONDS,
        )
        return samples, False, None
    if keep_earlier:
        found = module.detect(samples, sample_rate, key)
        if found.detected and found.payload is not None:
            log.info("%s already carries this project's watermark (payload %016x): kept", what, found.payload)
            return samples, False, found.payload
    marked = np.asarray(module.embed(samples, sample_rate, payload, key), dtype=np.float32)
    if module.detect(marked, sample_rate, key).payload != payload:  # ~3 ms per second of audio
        log.warning("%s carries no readable audio watermark (silent or nearly so): written without it", what)
        return samples, False, None
    return marked, True, None


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    return rgb


def check_suffix(path: str | Path, kind: str) -> None:
    """Refuse, before any compute, an output name the writer could not write as `kind` (image, video
    or audio; a figure is an image): the same one-line `UserError` the write itself would raise."""
    allowed, what = {"image": (IMAGE_SUFFIXES, "an image"), "video": (VIDEO_SUFFIXES, "a video"),
                     "audio": (AUDIO_SUFFIXES, "audio")}[kind]
    if Path(path).suffix.lower() not in allowed:
        raise UserError(f"cannot write {what} as {Path(path).name!r}: use one of {', '.join(allowed)}")


def _check_scope(context: OutputContext, kind: str) -> None:
    for record in context.consent:
        if kind not in record.outputs:
            raise UserError(
                f"refused: consent record {record.id} ({record.display_name}) does not allow {kind} outputs"
            )


# ---------------------------------------------------------------------------------------------------
# Steps 3-5 around a format-specific producer.


@dataclass
class _Marks:
    """What the producer managed to embed (reported in the provenance log)."""

    watermarked: bool = False
    notes: list[str] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)  # payloads of earlier outputs the input carried


def _publish(
    path: Path,
    kind: str,
    show_label: bool,
    produce: Callable[[Path, int, KeyMaterial], _Marks],
) -> Path:
    """Reserve a log row, let ``produce`` watermark + encode into a temp file, sign it, log it, rename it."""
    context = get_context()
    _check_scope(context, "image" if kind == "figure" else kind)
    keys = load_keys(signing=True)
    provenance = ProvenanceLog()
    command = context.command if context.command is not None else tuple(sys.argv)
    row_id, payload = provenance.reserve(
        path.resolve(), kind, context.technique, context.consent_ids, command, show_label
    )
    try:
        with atomic_path(path) as final_tmp:
            encoded = final_tmp.with_name(final_tmp.stem + ".encoded" + path.suffix)
            try:
                marks = produce(encoded, payload, keys)
                facts = c2pa_sign.ManifestFacts(
                    title=stored_path(path.name),  # JSON text: a non-UTF-8 name as escapes
                    payload=payload if marks.watermarked else None,
                    technique=context.technique,
                    consent=tuple(_consent_entry(r) for r in context.consent),
                    visible_label=show_label,
                )
                c2pa_sign.sign_file(encoded, final_tmp, facts, keys)
            finally:
                encoded.unlink(missing_ok=True)
            digest = sha256_file(final_tmp)
    except BaseException:
        provenance.discard(row_id)  # nothing was written: the reserved row goes too
        raise
    # The file is in place (renamed on leaving the block): now the log may point at it. Should that
    # fail (e.g. the log locked for over 10 s), the file keeps all its marks and its row stays reserved,
    # as after a crash: verify then finds no log row for it, and the error says so.
    try:
        provenance.complete(
            row_id, digest, marks.watermarked, "; ".join(marks.notes) or None, tuple(marks.sources)
        )
    except UserError as err:
        raise UserError(f"{path} was written with all its marks, but its provenance row was not "
                        f"completed: {err}") from err
    return path


def _consent_entry(record: Record) -> dict:
    return {
        "id": record.id,
        "sha256": record.digest(),
        "techniques": list(record.techniques),
        "outputs": list(record.outputs),
        "expires": record.expires.isoformat() if record.expires else None,
        "synthetic": record.synthetic,
    }


def _info(payload: int, watermarked: bool, show_label: bool) -> SyntheticInfo:
    context = get_context()
    return SyntheticInfo(
        payload=payload if watermarked else None,
        technique=context.technique,
        consent_ids=context.consent_ids,
        visible_label=show_label,
    )


# ---------------------------------------------------------------------------------------------------
# The public API.


def save_image(path: str | Path, rgb: np.ndarray, *, label: bool | None = None) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB image (.png or .jpg), marked; return its path.

    ``label=None`` follows the run's context (on unless ``--no-visible-label``).
    """
    show_label = get_context().visible_label if label is None else label
    return _save_still(Path(path), _as_rgb(rgb), show_label, "image")


def _save_still(path: Path, rgb: np.ndarray, show_label: bool, kind: str) -> Path:
    """An image or a figure: label, watermark, metadata, encode, sign, log."""
    check_suffix(path, "image")

    def produce(tmp: Path, payload: int, keys: KeyMaterial) -> _Marks:
        marker = _ImageMarker(payload, keys, show_label, kind)
        marked = marker(rgb)
        marks = _Marks(watermarked=bool(marker.marked))
        if not marks.watermarked:
            marks.notes.append("too small for the watermark")
        marks.sources += marker.sources()
        encode.encode_image(tmp, marked, **image_fields(_info(payload, marks.watermarked, show_label)))
        return marks

    return _publish(path, kind, show_label, produce)


def save_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    label: bool | None = None,
    total: int | None = None,
) -> Path:
    """Write RGB uint8 frames (an array or any iterable; streamed) as a marked H.264 mp4 with optional audio.

    Every frame carries the same payload, so detection can vote across frames, its grid moved with the
    picture (``watermark_image.GridTracker``) so that H.264 carries the mark from frame to frame; the
    audio track gets the audio watermark when it is long enough. A progress bar counts the frames on
    stderr when it is a terminal (`total`: how many to expect, when `frames` has no length: a tool
    streaming a video).
    """
    path = Path(path)
    check_suffix(path, "video")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if audio is not None:
        encode.check_audio_track(audio, sample_rate)
    sample_rate = _sample_rate(sample_rate) if audio is not None else sample_rate
    show_label = get_context().visible_label if label is None else label

    def produce(tmp: Path, payload: int, keys: KeyMaterial) -> _Marks:
        marker = _ImageMarker(payload, keys, show_label, "video frame")
        marks = _Marks()
        track, audio_marked = audio, False
        if audio is not None:
            track, audio_marked, earlier = _mark_audio(
                audio, sample_rate, payload, keys, "audio track", keep_earlier=True
            )
            if earlier is not None:
                marks.sources.append(earlier)
                marks.notes.append(f"audio keeps its earlier watermark, payload {earlier:016x}")
            else:
                marks.notes.append("audio watermarked" if audio_marked else "audio too short to be marked")
        # The mp4 tags are written before the frames, so the first frame decides (by its size) whether
        # the metadata can claim the payload; the frames then stream through the marker, several at a
        # time on a pool of threads, in order, while this thread encodes.
        framed = marker.with_grid(frames)
        first, first_shift = next(framed, (None, None))
        if first is None:
            raise ValueError("cannot write a video with no frames")
        padded = encode.padding_note(first)
        if padded:
            log.warning("%s: %s", path.name, padded)
            marks.notes.append(padded)
        marked_first = marker(first, first_shift)
        info = _info(payload, bool(marker.marked) or audio_marked, show_label)
        expected = total if total is not None else len(frames) if hasattr(frames, "__len__") else None
        try:
            encode.encode_mp4(
                tmp,
                tqdm(_chain(marked_first, ordered_map(lambda item: marker(*item), framed)), total=expected,
                     unit="frame",
                     desc=f"writing {path.name}", disable=None, leave=False),
                fps,
                audio=track,
                sample_rate=sample_rate,
                tags=mp4_tags(info),
                crf=encode.video_crf(first.shape),
            )
        except UserError as err:  # the input failed late (a damaged frame): say how far the run got
            raise UserError(f"{err} (stopped after {marker.frames} frames; nothing was written to "
                            f"{path})") from err
        marks.watermarked = bool(marker.marked) or audio_marked
        small = "" if marker.marked else ", too small for the watermark"
        marks.notes.insert(0, f"{marker.frames} frames{small}")
        # frames and soundtrack of one earlier output (a video fed back in) name it once
        marks.sources = list(dict.fromkeys(marker.sources() + marks.sources))
        return marks

    return _publish(path, "video", show_label, produce)


@contextmanager
def staged_folder(folder: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `folder` to write a set of outputs into, so that the set appears
    whole or not at all. On success it is renamed onto `folder` (which must be absent or empty; with
    `replace`, an existing one is removed first), gets the usual permissions (0777 less the umask:
    `tempfile.mkdtemp` makes it 0700), and the provenance log names the files where they now are. On
    failure (an error, Ctrl-C) the folder is removed and so are its files' log rows: none is left
    pointing at a file that never appeared."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield staging
        if replace and folder.exists():
            shutil.rmtree(folder)
        elif folder.exists():
            folder.rmdir()  # empty (anything else is the caller's error, and rmdir says so)
        os.chmod(staging, 0o777 & ~current_umask())
        os.replace(staging, folder)
        ProvenanceLog().moved(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            ProvenanceLog().forget_folder(staging)
        except UserError as err:  # the log is unusable: the original error matters more
            log.warning("could not remove the log rows of %s: %s", staging, err)
        raise


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def save_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono samples (float in [-1, 1], or integer PCM) as a marked 16-bit WAV file."""
    path = Path(path)
    check_suffix(path, "audio")
    sample_rate = _sample_rate(sample_rate)

    def produce(tmp: Path, payload: int, keys: KeyMaterial) -> _Marks:
        marked, ok, _ = _mark_audio(samples, sample_rate, payload, keys, "audio")
        encode.encode_wav(tmp, marked, sample_rate, info=wav_info(_info(payload, ok, False)))
        return _Marks(watermarked=ok, notes=[] if ok else ["too short for the watermark"])

    return _publish(path, "audio", False, produce)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Render a matplotlib figure (a plot) to a marked PNG: watermark if big enough, no visible label."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as img:
        rgb = np.asarray(img.convert("RGB"))
    return _save_still(Path(path), rgb, False, "figure")
