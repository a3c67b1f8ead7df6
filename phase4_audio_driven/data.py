"""Training data for the expert and the generator: talking-head clips as 96x96 face crops + mel.

Two sources give the same in-memory `TalkingClip`s:

* synthetic talking heads (`common.synthetic`): people who do not exist, speaking formant-synthesised
  speech, cropped with the same detector pipeline the command line uses;
* the published LRS2 preprocessed layout (`preprocess.py` of Wav2Lip): `<root>/<speaker>/<clip>/` with
  face crops `0.jpg, 1.jpg, ...` and `audio.wav`, listed as `speaker/clip` lines in a filelist.

Windows are drawn with the published index rules (`audio_encoder.training_mel_starts`): the expert's
audio window of a 5-frame window starting at frame n begins at int(80 n / 25); the generator's window
for frame j one frame earlier, at int(80 (j - 1) / 25).
"""

from __future__ import annotations

import argparse
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import torch

from common.atomic import write_atomic
from common.cli import check_output
from common.errors import UserError, first_line
from common.media import read_audio, read_image
from common.synthetic import check_frame_size, make_identity, render_clip
from phase4_audio_driven.pipeline import FACE_SIZE, crop, face_boxes, to_network

log = logging.getLogger("deepfake.phase4")

WINDOW = 5  # frames per window (syncnet_T)
MEL_STEP = 16


@dataclass
class TalkingClip:
    """One clip: face crops (T, 96, 96, 3) uint8 RGB, mel (80, T_mel) float32, fps, and its index rules."""

    faces: np.ndarray
    mel: np.ndarray
    fps: float
    syncnet_start: np.ndarray  # (T,) SyncNet window start per frame, -1 if unusable
    indiv_start: np.ndarray  # (T,) generator window start per frame, -1 if unusable
    usable: np.ndarray  # (T,) bool: a training window may start at this frame


def make_clip(faces: np.ndarray, wav: np.ndarray, fps: float, audio_encoder: ModuleType) -> TalkingClip:
    """A clip of face crops (T, 96, 96, 3) and its 16 kHz audio (N,): the mel spectrogram and, per frame,
    where the expert's and the generator's audio windows start (`audio_encoder` is the module loaded)."""
    mel = audio_encoder.melspectrogram(wav)  # (80, T_mel)
    idx = audio_encoder.training_mel_starts(mel.shape[1], len(faces), fps)
    return TalkingClip(faces, mel, fps, idx["syncnet"], idx["indiv"], idx["usable"])


def synthetic_clips(
    audio_encoder: ModuleType, identities: int, frames: int, seed: int = 0, size: int = 160
) -> list[TalkingClip]:
    """Render `identities` synthetic people (seeds seed, seed+1, ...) talking for `frames` frames each."""
    clips = []
    for i in range(identities):
        clip = render_clip(make_identity(seed + i), frames=frames, size=size, seed=seed + i)
        boxes = face_boxes(clip.frames)
        faces = np.stack([crop(f, b) for f, b in zip(clip.frames, boxes, strict=True)])
        clips.append(make_clip(faces, clip.audio, clip.fps, audio_encoder))
    return clips


def lrs2_clips(
    audio_encoder: ModuleType, root: Path, filelist: Path, limit: int | None = None
) -> list[TalkingClip]:
    """Clips of the published preprocessed layout listed in `filelist` (lines `speaker/clip`, 25 fps)."""
    if not filelist.is_file():
        raise UserError(
            f"no filelist {filelist} (one `speaker/clip` folder per line, as Wav2Lip's filelists/)"
        )
    try:
        lines = filelist.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"{filelist} is not a text filelist ({first_line(err)})") from err
    names = [line.split()[0] for line in lines if line.strip()][:limit]
    clips, short = [], []
    for name in names:
        folder = root / name
        jpgs = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
        if not jpgs or not (folder / "audio.wav").is_file():
            continue
        faces = np.stack([cv2.resize(read_image(p), (FACE_SIZE, FACE_SIZE)) for p in jpgs])
        wav, _ = read_audio(folder / "audio.wav", 16000)
        clip = make_clip(faces, wav, 25.0, audio_encoder)
        if clip.usable.any():
            clips.append(clip)
        else:  # as the published loader does: a clip without one whole training window is skipped
            short.append(name)
    if short:
        log.warning("%d clip(s) too short for one training window skipped: %s", len(short),
                    ", ".join(short[:5]) + (", ..." if len(short) > 5 else ""))
    if not clips:
        raise UserError(f"no usable clip (n.jpg + audio.wav) under {root} from {filelist}")
    return clips


def lower_halves(faces: np.ndarray) -> torch.Tensor:
    """(5, 96, 96, 3) RGB crops -> (15, 48, 96) BGR lower halves, frames on channels frame-major."""
    return to_network(faces)[:, :, FACE_SIZE // 2 :].reshape(-1, FACE_SIZE // 2, FACE_SIZE)


def mel_window(clip: TalkingClip, start: int) -> torch.Tensor:
    """The 16 mel steps (0.2 s) of `clip` from step `start`: (1, 80, 16) float32."""
    return torch.from_numpy(np.ascontiguousarray(clip.mel[:, start : start + MEL_STEP])).unsqueeze(0)


def _start(clip: TalkingClip, rng: np.random.Generator) -> int:
    choices = np.flatnonzero(clip.usable)
    if len(choices) == 0:
        raise UserError("a clip is too short for a 5-frame training window")
    return int(rng.choice(choices))


@dataclass(frozen=True)
class Augment:
    """Random changes applied to a whole training window (all 5 frames alike), so that the expert learns
    mouth motion rather than one person's colours, framing or voice level."""

    gain: float = 0.15  # per-channel colour gain range (+-), plus the same range for brightness
    shift: float = 0.04  # crop shift, fraction of the crop size (+-)
    scale: float = 0.05  # crop zoom (+-)
    audio_db: float = 6.0  # audio gain in dB (+-): shifts the normalised mel by 8 dB / 100 per dB


AUGMENT = Augment()


def augment_faces(faces: np.ndarray, rng: np.random.Generator, aug: Augment = AUGMENT) -> np.ndarray:
    """(5, 96, 96, 3) uint8 RGB -> the same window, shifted, zoomed and recoloured alike."""
    zoom = 1.0 + rng.uniform(-aug.scale, aug.scale)
    dx, dy = rng.uniform(-aug.shift, aug.shift, 2) * FACE_SIZE
    c = FACE_SIZE / 2
    matrix = np.array([[zoom, 0.0, (1 - zoom) * c + dx], [0.0, zoom, (1 - zoom) * c + dy]])
    colour = (1.0 + rng.uniform(-aug.gain, aug.gain, 3)) * (1.0 + rng.uniform(-aug.gain, aug.gain))  # (3,)
    size = (FACE_SIZE, FACE_SIZE)
    out = [cv2.warpAffine(f, matrix, size, borderMode=cv2.BORDER_REPLICATE) for f in faces]  # bilinear
    return np.clip(np.stack(out).astype(np.float32) * colour, 0, 255).astype(np.uint8)


def augment_mel(mel: torch.Tensor, rng: np.random.Generator, aug: Augment = AUGMENT) -> torch.Tensor:
    """A mel window (1, 80, 16) as if the audio were louder or quieter (dB shift, same [-4, 4] clip)."""
    return (mel + 8.0 / 100.0 * rng.uniform(-aug.audio_db, aug.audio_db)).clamp(-4.0, 4.0)


def _negatives(clip: TalkingClip, n: int, min_shift: int) -> list[int]:
    """Audio windows of `clip` at least `min_shift` (and 1) frames away from window `n`."""
    return [m for m in np.flatnonzero(clip.syncnet_start >= 0) if abs(int(m) - n) >= max(1, min_shift)]


def _window_with_negative(
    clips: list[TalkingClip], rng: np.random.Generator, min_shift: int
) -> tuple[TalkingClip, int]:
    """A random (clip, training window) that has a negative `min_shift` frames away; one line if none has."""
    choices = [(c, int(n)) for c in clips for n in np.flatnonzero(c.usable)
               if _negatives(c, int(n), min_shift)]
    if not choices:
        raise UserError(f"no clip has audio windows {max(1, min_shift)} or more frames apart for the shifted "
                        "examples: use longer clips or a smaller --min-shift")
    return choices[int(rng.integers(len(choices)))]


def syncnet_batch(
    clips: list[TalkingClip],
    batch: int,
    rng: np.random.Generator,
    min_shift: int = 0,
    paired: bool = False,
    augment: bool = False,
) -> dict:
    """Expert batch: faces (B, 15, 48, 96), audio (B, 1, 80, 16), labels (B, 1); half in sync, half with the
    audio of another window of the same clip (at least `min_shift` frames away).

    `paired`: each off-sync item reuses the previous item's face window, so every window is seen with
    its own audio and with shifted audio (the label cannot be guessed from the face). `augment`: random
    colour, framing and audio level per window (training only; evaluation uses neither)."""
    faces, audio, labels = [], [], []
    clip, n, window = clips[0], 0, clips[0].faces[:WINDOW]
    for b in range(batch):
        in_sync = b % 2 == 0
        if in_sync or not paired:
            clip = clips[int(rng.integers(len(clips)))]
            n = _start(clip, rng)
            window = augment_faces(clip.faces[n : n + WINDOW], rng) if augment else clip.faces[n : n + WINDOW]
        a = n
        if not in_sync:
            others = _negatives(clip, n, min_shift)
            if not others:  # a clip too short for a shift of min_shift: a window of one that has it
                clip, n = _window_with_negative(clips, rng, min_shift)
                window = clip.faces[n : n + WINDOW]
                window = augment_faces(window, rng) if augment else window
                others = _negatives(clip, n, min_shift)
            a = int(rng.choice(others))
        mel = mel_window(clip, int(clip.syncnet_start[a]))
        faces.append(lower_halves(window))
        audio.append(augment_mel(mel, rng) if augment else mel)
        labels.append(1.0 if in_sync else 0.0)
    return {"faces": torch.stack(faces), "audio": torch.stack(audio), "labels": torch.tensor(labels)[:, None]}


def syncnet_group_batch(
    clips: list[TalkingClip], batch: int, rng: np.random.Generator, group: int, augment: bool = False
) -> dict:
    """Expert batch of batch / group clips with `group` distinct windows each, every window with its own
    audio: faces (B, 15, 48, 96), audio (B, 1, 80, 16), clip (B,) and start (B,) frame indices. The
    trainer pairs each face window with the audio of every other window of its clip as negatives, so
    the encoders run once per window for group - 1 negatives each. `augment` as in `syncnet_batch`,
    drawn per window."""
    if group < 2 or batch % group:
        raise UserError(f"--group must be at least 2 and divide --batch-size ({batch}), got {group}")
    faces, audio, clip_ids, starts = [], [], [], []
    for c in range(batch // group):
        clip = clips[int(rng.integers(len(clips)))]
        choices = np.flatnonzero(clip.usable)
        if len(choices) < group:
            raise UserError(f"a clip has {len(choices)} training windows, fewer than --group {group}")
        for n in rng.choice(choices, size=group, replace=False):
            window, mel = clip.faces[n : n + WINDOW], mel_window(clip, int(clip.syncnet_start[n]))
            faces.append(lower_halves(augment_faces(window, rng) if augment else window))
            audio.append(augment_mel(mel, rng) if augment else mel)
            clip_ids.append(c)
            starts.append(int(n))
    return {
        "faces": torch.stack(faces),
        "audio": torch.stack(audio),
        "clip": torch.tensor(clip_ids),
        "start": torch.tensor(starts),
    }


def generator_batch(clips: list[TalkingClip], batch: int, rng: np.random.Generator) -> dict:
    """Generator batch: faces (B, 6, 5, 96, 96) = [masked target | reference window], audio (B, 5, 1, 80, 16)
    (one window per frame, training rule), mel (B, 1, 80, 16) for the expert, target (B, 3, 5, 96, 96)."""
    faces, audio, mel, target = [], [], [], []
    for _ in range(batch):
        clip = clips[int(rng.integers(len(clips)))]
        n = _start(clip, rng)
        usable = np.flatnonzero(clip.usable)
        far = usable[np.abs(usable - n) >= WINDOW]
        ref = int(rng.choice(far if len(far) else usable))  # a window of the same face, other mouth shapes
        gt = to_network(clip.faces[n : n + WINDOW]).permute(1, 0, 2, 3)  # (3, 5, 96, 96)
        masked = gt.clone()
        masked[:, :, FACE_SIZE // 2 :] = 0
        reference = to_network(clip.faces[ref : ref + WINDOW]).permute(1, 0, 2, 3)
        faces.append(torch.cat([masked, reference], dim=0))
        audio.append(torch.stack([mel_window(clip, int(clip.indiv_start[j])) for j in range(n, n + WINDOW)]))
        mel.append(mel_window(clip, int(clip.syncnet_start[n])))
        target.append(gt)
    return {
        "faces": torch.stack(faces),
        "audio": torch.stack(audio),
        "mel": torch.stack(mel),
        "target": torch.stack(target),
    }


def add_data_args(parser: argparse.ArgumentParser, identities: int = 6, frames: int = 100) -> None:
    """--data synthetic|LRS2_ROOT, --filelist, --identities, --frames, --frame-size."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' (people who do not exist, rendered in memory) or the root of the "
        "published LRS2 preprocessed layout (<root>/<speaker>/<clip>/n.jpg + audio.wav) (default: synthetic)",
    )
    group.add_argument(
        "--filelist",
        type=Path,
        default=None,
        help="LRS2: file of `speaker/clip` lines (Wav2Lip's filelists/train.txt)",
    )
    group.add_argument(
        "--identities",
        type=int,
        default=identities,
        help=f"synthetic: number of people (default {identities})",
    )
    group.add_argument(
        "--frames", type=int, default=frames, help=f"synthetic: frames per person (default {frames})"
    )
    group.add_argument(
        "--frame-size", type=int, default=160, help="synthetic: rendered frame size, 64-2048 px (default 160)"
    )
    group.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="synthetic: .npz file of the rendered crops; read if present, written otherwise",
    )


def load_clips(args: argparse.Namespace, audio_encoder: ModuleType, seed: int) -> list[TalkingClip]:
    """The clips the data flags describe."""
    if args.data == "synthetic":
        if args.identities < 1 or args.frames < 3 * WINDOW:
            raise UserError(f"need at least 1 identity and {3 * WINDOW} frames per identity")
        check_frame_size(args.frame_size, "--frame-size")
        if args.cache is not None and args.cache.is_file():
            return read_cache(args.cache)
        if args.cache is not None:
            check_output(args.cache)  # before the rendering, not after
        clips = synthetic_clips(audio_encoder, args.identities, args.frames, seed=seed, size=args.frame_size)
        if args.cache is not None:
            write_cache(args.cache, clips)
        return clips
    root = Path(args.data)
    if not root.is_dir():
        raise UserError(f"--data must be 'synthetic' or a folder, got {args.data}")
    return lrs2_clips(audio_encoder, root, args.filelist or root / "train.txt")


def write_cache(path: Path, clips: list[TalkingClip]) -> None:
    """Keep rendered crops and spectrograms as arrays (training data, not a published output)."""
    arrays = {}
    for i, c in enumerate(clips):
        arrays.update(
            {
                f"{i}_faces": c.faces,
                f"{i}_mel": c.mel,
                f"{i}_sync": c.syncnet_start,
                f"{i}_indiv": c.indiv_start,
                f"{i}_usable": c.usable,
                f"{i}_fps": np.float64(c.fps),
            }
        )
    write_atomic(path, lambda file: np.savez(file, **arrays))


def read_cache(path: Path) -> list[TalkingClip]:
    """The clips `write_cache` kept (`UserError` for any other file: delete it to render again)."""
    try:
        with np.load(path) as z:
            n = len({k.split("_")[0] for k in z.files})
            return [
                TalkingClip(
                    z[f"{i}_faces"],
                    z[f"{i}_mel"],
                    float(z[f"{i}_fps"]),
                    z[f"{i}_sync"],
                    z[f"{i}_indiv"],
                    z[f"{i}_usable"],
                )
                for i in range(n)
            ]
    # a plain .npy array has no .files and is no context manager: AttributeError / TypeError
    except (EOFError, ValueError, KeyError, AttributeError, TypeError, zipfile.BadZipFile) as err:
        raise UserError(f"--cache {path} is not a clip cache written by these tools ({first_line(err)}); "
                        "delete it to render the clips again") from err
