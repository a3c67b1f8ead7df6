"""Write synthetic identities to disk: media through the provenance chokepoint, ground truth as plain data.

One folder per identity (`synthetic-000123/`):

* `video.mp4`  H.264 + AAC, watermarked and signed by `consent_and_watermark.writer`, *without* the
  visible label (training data must not teach models to draw it);
* `speech.wav` the audio track on its own (16 kHz);
* `frames/00000.png ...` optional, also through the writer (slow for long clips);
* `ground_truth.npz` landmarks `(T, 68, 2)`, pose `(T, 6)`, expression `(T, 6)`, visemes `(T,)`,
  the phoneme timeline, fps and size;
* `identity.json` the identity's parameters, its seed, `"synthetic": true` and its consent record id.

Each identity gets a consent record marked synthetic (`register_synthetic_identity`), which is also
attached to the provenance of every file written for it; one whose record was revoked is refused. The
ground-truth files are data, not media, so they are written directly with numpy/json, atomically
(temporary file, then rename). Each identity folder is written in a staging folder and renamed into
place whole, so a rerun into the same `--output` replaces the earlier run's folders (and removes those of
people it no longer has) instead of mixing old frames with new ground truth.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import write_atomic
from common.errors import UserError
from common.synthetic.clip import Clip, render_clip
from common.synthetic.face_render import POSE_FIELDS
from common.synthetic.identity import EXPRESSION_FIELDS, Identity, make_identity
from common.synthetic.speech import VISEMES

FORMATS = ("mp4", "frames")
log = logging.getLogger("deepfake.synthetic")


@dataclass(frozen=True)
class ExportConfig:
    """What to render per identity (defaults: 4 s of 256 px video at 25 fps with speech)."""

    frames: int = 100
    size: int = 256
    fps: float = 25.0
    formats: tuple[str, ...] = ("mp4",)
    speech: bool = True
    clip_seed: int = 0


def save_ground_truth(path: Path, clip: Clip, size: int) -> None:
    """`ground_truth.npz`: every per-frame label of `clip` (plain arrays, no pickles)."""
    segments = clip.speech.segments if clip.speech is not None else []
    arrays = {
        "landmarks": clip.landmarks.astype(np.float32),  # (T, 68, 2) pixels
        "pose": clip.pose.astype(np.float32),  # (T, 6)
        "pose_fields": np.array(POSE_FIELDS),
        "expression": clip.expression.astype(np.float32),  # (T, 6)
        "expression_fields": np.array(EXPRESSION_FIELDS),
        "visemes": clip.visemes.astype(np.int64),  # (T,)
        "viseme_names": np.array(VISEMES),
        "phonemes": np.array([s.phoneme for s in segments], dtype="<U3"),
        "phoneme_times": np.array([(s.start, s.end) for s in segments], dtype=np.float64).reshape(-1, 2),
        "fps": np.float64(clip.fps),
        "size": np.int64(size),
        "sample_rate": np.int64(clip.sample_rate or 0),
    }
    write_atomic(path, lambda f: np.savez_compressed(f, **arrays))


def save_json(path: Path, data: dict) -> None:
    """Write `data` as indented JSON, atomically."""
    write_atomic(path, lambda f: f.write(json.dumps(data, indent=2).encode() + b"\n"))


def load_ground_truth(folder: str | Path) -> dict[str, np.ndarray]:
    """Read an identity folder's `ground_truth.npz` back into a dict of arrays."""
    with np.load(Path(folder) / "ground_truth.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def export_identity(out_dir: str | Path, identity: Identity, config: ExportConfig | None = None) -> Path:
    """Render one identity's clip and write its folder; returns the folder."""
    config = config or ExportConfig()
    # Imported here so that the in-memory API (render_clip) does not load the signing machinery.
    from consent_and_watermark import writer
    from consent_and_watermark.consent import Ledger, register_synthetic_identity

    folder = Path(out_dir) / identity.subject_id
    record_id = register_synthetic_identity(identity.subject_id, identity.display_name)
    record = Ledger().get(record_id)
    if record is not None and record.revoked is not None:
        raise UserError(f"the consent record {record_id} of {identity.subject_id} was revoked on "
                        f"{record.revoked:%Y-%m-%d}: choose other people (another --seed)")
    if folder.exists() and not _is_identity_folder(folder):
        raise UserError(f"{folder} exists and is not an identity folder this tool wrote; "
                        "choose another --output")
    clip = render_clip(
        identity, config.frames, config.size, config.fps, seed=config.clip_seed, speech=config.speech
    )
    with writer.staged_folder(folder, replace=True) as staging:  # an earlier run's folder of this person
        _write_identity(staging, identity, record, record_id, clip, config, writer)
    return folder


def _is_identity_folder(folder: Path) -> bool:
    """Whether `folder` is one `export_identity` wrote (its identity.json says synthetic)."""
    try:
        return bool(json.loads((folder / "identity.json").read_text(encoding="utf-8")).get("synthetic"))
    except (OSError, ValueError, AttributeError):
        return False


def _write_identity(folder: Path, identity: Identity, record, record_id: str, clip: Clip,
                    config: ExportConfig, writer) -> None:
    """Every file of one identity folder (media through `writer`, ground truth as data)."""
    context = writer.OutputContext(consent=(record,) if record is not None else ())
    with writer.output_context(context):
        if "mp4" in config.formats:
            writer.save_video(
                folder / "video.mp4",
                clip.frames,
                clip.fps,
                audio=clip.audio,
                sample_rate=clip.sample_rate,
                label=False,
            )
        if clip.audio is not None:
            writer.save_audio(folder / "speech.wav", clip.audio, clip.sample_rate)
        if "frames" in config.formats:
            for i, frame in enumerate(clip.frames):
                writer.save_image(folder / "frames" / f"{i:05d}.png", frame, label=False)

    save_ground_truth(folder / "ground_truth.npz", clip, config.size)
    save_json(
        folder / "identity.json",
        {
            "subject_id": identity.subject_id,
            "display_name": identity.display_name,
            "seed": identity.seed,
            "synthetic": True,
            "consent_record": record_id,
            "frames": config.frames,
            "size": config.size,
            "fps": config.fps,
            "clip_seed": config.clip_seed,
            "parameters": identity.to_dict(),
        },
    )


def export_dataset(
    out_dir: str | Path,
    identities: int,
    seed: int = 0,
    config: ExportConfig | None = None,
    on_done: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Export identities with seeds `seed, seed + 1, ...`; writes `dataset.json` listing them last.

    `on_done(folder)` is called after each identity (progress reporting).
    """
    config = config or ExportConfig()
    out = Path(out_dir)
    earlier = _listed_identities(out)
    folders = []
    for i in range(identities):
        folders.append(export_identity(out, make_identity(seed + i), config))
        if on_done is not None:
            on_done(folders[-1])
    save_json(
        out / "dataset.json",
        {
            "synthetic": True,
            "identities": [f.name for f in folders],
            "frames": config.frames,
            "size": config.size,
            "fps": config.fps,
            "formats": list(config.formats),
        },
    )
    gone = [out / name for name in earlier if name not in {f.name for f in folders}]
    gone = [folder for folder in gone if folder.is_dir() and _is_identity_folder(folder)]
    for folder in gone:
        shutil.rmtree(folder)
    if earlier:
        log.warning("%s held a synthetic dataset of %d people from an earlier run: replaced%s", out,
                    len(earlier), f" ({len(gone)} no longer in it removed)" if gone else "")
    return folders


def _listed_identities(out: Path) -> list[str]:
    """The identity folders an earlier `export_dataset` into `out` listed in its dataset.json."""
    try:
        names = json.loads((out / "dataset.json").read_text(encoding="utf-8")).get("identities", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [name for name in names
            if isinstance(name, str) and "/" not in name and name not in ("", ".", "..")]
