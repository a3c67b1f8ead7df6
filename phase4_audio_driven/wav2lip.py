"""Lip-sync a face video (or one photo) to any speech recording with a Wav2Lip generator.

    python phase4_audio_driven/wav2lip.py --face video.mp4 --audio speech.wav \\
        --checkpoint wav2lip.pth --output synced.mp4 --consent FACE_ID --consent VOICE_ID

What happens (the published inference.py, with dlib's detector and streaming frames):
  1. consent is checked before anything is computed: a record for the face and one for the voice
     (`--same-person` when the speech is in the person's own voice, and one record covers both);
  2. the audio (any format FFmpeg reads; stereo is averaged, any rate is resampled to 16 kHz) becomes
     an 80-band mel spectrogram, cut into one 0.2 s window per output frame;
  3. the face is found in every frame (every K-th with --detect-every K, the boxes in between
     interpolated) while the video is decoded, once (dlib's detector in a pool of worker processes;
     frames without a face reuse the last box; the frames before the first face, which take its box,
     are decoded twice rather than held), boxes are smoothed over 5 frames (not with --nosmooth),
     and each crop is resized to 96 x 96;
  4. the generator redraws the lower half of each crop for its audio window; that mouth region is
     blended back into the full frame (the upper face stays the original's);
  5. the result is written with the driving audio as a marked mp4 (watermark, metadata, label).

Audio longer than the video: the video frames are looped. Shorter: the video is trimmed to the audio.
A photo (or --static) uses the one frame for the whole audio.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from common import dlib_models
from common.cli import add_common_args, add_consent_args, check_output, command_line, consent_roles, run
from common.detector_processes import DetectorProcesses
from common.dlib_models import Box
from common.errors import UserError
from common.impl import load
from common.media import is_image_path, iter_video, read_audio, read_image, video_info
from common.parallel import worker_count
from common.training.device import pick_device
from consent_and_watermark import writer
from phase4_audio_driven.pipeline import (
    BoxConfig,
    NoFaceError,
    NoFramesError,
    face_boxes,
    is_silent,
    lip_sync,
    stream_video_boxes,
)

log = logging.getLogger("deepfake.phase4")

SAMPLE_RATE = 16000
MIN_AUDIO_S = 0.2  # one 16-column mel window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python phase4_audio_driven/wav2lip.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--face", required=True, type=Path, help="video (mp4, mov, ...) or image of the face")
    parser.add_argument(
        "--audio", required=True, type=Path, help="speech: any file FFmpeg reads (wav, mp3, m4a, mp4)"
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="generator weights file: the published wav2lip.pth / wav2lip_gan.pth, or the wav2lip.pth "
        "that train.py writes into its run folder",
    )
    parser.add_argument("--output", required=True, type=Path, help="output video (.mp4)")
    parser.add_argument(
        "--pads",
        type=int,
        nargs=4,
        default=(0, 10, 0, 0),
        metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
        help="pixels added to each face box; include the chin (default: 0 10 0 0)",
    )
    parser.add_argument(
        "--resize-factor",
        type=int,
        default=1,
        help="divide the frame size by this first (faster: the model only sees 96x96 crops; the output "
        "video is that many times smaller too; default: 1)",
    )
    parser.add_argument("--nosmooth", "--no-smooth", action="store_true",
                        help="do not smooth face boxes over 5 frames (--nosmooth is the published Wav2Lip "
                        "name; --no-smooth as in swap_video.py)")
    parser.add_argument(
        "--detect-every",
        type=int,
        default=1,
        metavar="K",
        help="look for the face on every K-th frame only and interpolate the boxes in between: K times "
        "less detector work, the costliest CPU stage (default: 1, every frame, as published)",
    )
    parser.add_argument("--static", action="store_true",
                        help="use only the first frame of a --face video, for the whole audio")
    parser.add_argument(
        "--fps",
        type=float,
        default=25.0,
        help="frame rate of the output for an image input; videos keep their own (default: 25)",
    )
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="write only the first N output frames, the audio cut to match (a quick look "
                        "before a long clip) (default: as many as the audio needs)")
    parser.add_argument("--batch-size", type=int, default=16, help="faces per generator call (default: 16)")
    add_common_args(parser, seed=False)
    add_consent_args(parser, roles=("the face (--face)", "the voice (--audio)"))
    return parser


def resized(frame: np.ndarray, factor: int) -> np.ndarray:
    """The frame shrunk `factor` times (--resize-factor); one line when nothing would be left of it."""
    if factor == 1:
        return frame
    h, w = frame.shape[:2]
    if min(h, w) // factor < 1:
        raise UserError(f"--resize-factor {factor} leaves nothing of a {w} x {h} frame: use a smaller one")
    return cv2.resize(frame, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def video_frames_once(path: Path, factor: int) -> Iterator[np.ndarray]:
    """Every frame of a video once (resized)."""
    for frame in iter_video(path):
        yield resized(frame, factor)


def repeated(item: tuple[np.ndarray, np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A still's (frame, box) for as long as it is asked for."""
    while True:
        yield item


def looped_video(
    path: Path, factor: int, cfg: BoxConfig, smooth: bool, detect: Callable[[np.ndarray], list[Box]]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame, box (4,)) pairs for as long as they are asked for, decoding the video once while its boxes
    are found (`stream_video_boxes`: the frames up to the first face are decoded once more, not held);
    when the audio is longer, the frames start again with the boxes found."""
    boxes = []
    for frame, box in stream_video_boxes(lambda: video_frames_once(path, factor), cfg, smooth, detect):
        boxes.append(box)
        yield frame, box
    while True:
        yield from zip(video_frames_once(path, factor), boxes, strict=False)  # the first pass's boxes


def load_speech(path: Path) -> np.ndarray:
    """Mono 16 kHz float32 samples, with the bad cases turned into one clear line or a stated recovery."""
    wav, _ = read_audio(path, SAMPLE_RATE)
    if len(wav) < MIN_AUDIO_S * SAMPLE_RATE:
        raise UserError(
            f"audio {path} lasts {len(wav) / SAMPLE_RATE:.3f} s; at least {MIN_AUDIO_S} s is needed"
        )
    if not np.all(np.isfinite(wav)):
        raise UserError(f"audio {path} holds NaN or infinite samples")
    if is_silent(wav):
        log.warning("audio %s is silent: the mouth will stay closed", path)
    return wav


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    max_frames = 1 if args.max_frames is None else args.max_frames  # 0 is a value, not "not given"
    if min(args.resize_factor, args.batch_size, args.detect_every, max_frames) < 1:
        raise UserError("--resize-factor, --batch-size, --detect-every and --max-frames must be at least 1")
    if not 1 <= args.fps <= 120:
        raise UserError(f"--fps must be between 1 and 120, got {args.fps}")
    if args.output.suffix.lower() != ".mp4":
        raise UserError(f"--output must end in .mp4, got {args.output.name}")
    for flag, path in (("--face", args.face), ("--audio", args.audio), ("--checkpoint", args.checkpoint)):
        if not path.is_file():
            raise UserError(f"{flag}: no such file: {path}")
    check_output(args.output, inputs=(args.face, args.audio, args.checkpoint))
    writer.begin_run("lipsync", args.consent, visible_label=not args.no_visible_label, outputs=("video",),
                     argv=command_line(__file__, argv), roles=consent_roles(args))
    with contextlib.ExitStack() as stack:
        detect = dlib_models.detect_faces
        if not (is_image_path(args.face) or args.static) and worker_count() > 1:
            # started now, the detector processes get ready while the model loads
            detect = stack.enter_context(DetectorProcesses(worker_count())).detect
        try:
            return lip_sync_file(args, detect)
        except NoFaceError as err:
            raise NoFaceError(f"{err}{no_face_hint(args)}") from err
        except NoFramesError as err:
            raise UserError(f"--face {args.face}: {err}") from err


def lip_sync_file(args: argparse.Namespace, detect: Callable[[np.ndarray], list[Box]]) -> int:
    """Everything after the consent check: load, find the faces, generate, write (see the module doc)."""
    audio_encoder = load("phase4_audio_driven", "audio_encoder", args.impl)
    model = load("phase4_audio_driven", "model", args.impl)
    device = pick_device(args.device)
    # on a GPU the CPU only feeds it: its cores belong to our pools and the encoder, not to PyTorch
    # threads that spin between batches (pipeline.lip_sync)
    if device.type == "cuda":
        torch.set_num_threads(1)
    generator = model.load_generator(args.checkpoint).to(device)

    wav = load_speech(args.audio)
    box_cfg = BoxConfig(pads=tuple(args.pads), detect_every=args.detect_every)
    n_src = 0  # a still: repeated, nothing to say
    if is_image_path(args.face) or args.static:
        if is_image_path(args.face):
            still = read_image(args.face)
        else:
            still = next(video_frames_once(args.face, 1), None)
        if still is None:  # the header promised frames, none decode (a cut-off download)
            raise UserError(f"--face {args.face}: no frame could be decoded")
        still = resized(still, args.resize_factor)
        fps = args.fps if is_image_path(args.face) else video_info(args.face).fps
        source = repeated((still, face_boxes([still], box_cfg, smooth=False)[0]))
    else:
        info = video_info(args.face)
        fps, n_src = info.fps, info.frames
        source = looped_video(args.face, args.resize_factor, box_cfg, not args.nosmooth, detect)

    chunks = audio_encoder.mel_chunks(audio_encoder.melspectrogram(wav), fps)  # (N, 80, 16)
    if args.max_frames is not None and args.max_frames < len(chunks):
        print(f"--max-frames {args.max_frames}: writing the first {args.max_frames} of {len(chunks)} frames "
              f"and {args.max_frames / fps:.2f} of {len(wav) / SAMPLE_RATE:.2f} s of audio")
        chunks, wav = chunks[: args.max_frames], wav[: round(args.max_frames / fps * SAMPLE_RATE)]
    n_out, seconds = len(chunks), len(wav) / SAMPLE_RATE
    if 0 < n_src < n_out:
        print(f"the audio ({seconds:.2f} s) needs {n_out} frames, the video has {n_src}: looping its frames")
    elif n_out < n_src:
        print(
            f"the audio ({seconds:.2f} s) covers {n_out} of the video's {n_src} frames "
            f"(each window looks 0.2 s ahead): trimming the video to {n_out} frames"
        )
    synced = lip_sync(generator, source, chunks, args.batch_size, device)
    path = writer.save_video(args.output, synced, fps, audio=wav, sample_rate=SAMPLE_RATE, total=n_out)
    source.close()  # the box stream's closing line (frames without a face) comes now, not at exit
    print(f"wrote {path} ({n_out} frames at {fps:g} fps, {seconds:.2f} s of audio)")
    return 0


def no_face_hint(args: argparse.Namespace) -> str:
    """What the flags may have to do with finding no face (appended to the error line)."""
    hints = []
    if args.resize_factor > 1:
        hints.append(f"--resize-factor {args.resize_factor} shrinks every frame that many times")
    if args.static and not is_image_path(args.face):
        hints.append("--static uses the video's first frame only")
    return f" ({'; '.join(hints)})" if hints else ""


if __name__ == "__main__":
    raise SystemExit(run(main))
