"""Measure how well a video's lips match its audio: LSE-D and LSE-C with a trained SyncNet expert.

    python phase4_audio_driven/eval_sync.py --video synced.mp4 --expert lipsync_expert.pth
    python phase4_audio_driven/eval_sync.py --video clip.mp4 --audio other.wav --expert ... --plot offsets.png

For every 5-frame window the expert embeds the mouth and the 0.2 s of audio; the audio embeddings are
then shifted by -15..+15 frames (--vshift) against the video (the published SyncNet evaluation). The mean
distance per shift is the offset curve: a synced clip has a clear dip at 0.
  offset  minus the audio shift with the smallest mean distance, as syncnet_python prints it (frames;
          positive: the mouth lags the audio; audio 6 frames late dips at shift +6: offset -6)
  LSE-D   that smallest mean distance (lower is better)
  LSE-C   median over shifts minus the minimum (higher = a more confident match)
The numbers depend on the expert: compare videos with the same expert only. The published figures
(LRS2: LSE-D 6.386, LSE-C 7.789) come from the original SyncNet with unnormalised embeddings and are
not on this scale.
"""

from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn
from tqdm import tqdm

from common.cli import add_common_args, check_output, run
from common.errors import UserError
from common.impl import load
from common.media import iter_video, read_audio, video_info
from common.training.device import pick_device
from consent_and_watermark import writer
from phase4_audio_driven.pipeline import (
    NoFramesError,
    crop,
    face_boxes,
    is_silent,
    stream_video_boxes,
    to_network,
)

if TYPE_CHECKING:  # the result's type, for annotations only: the code runs the module `load` picks
    from solutions.phase4_audio_driven.lip_sync import SyncScores

log = logging.getLogger("deepfake.phase4")


def evaluate_frames(
    expert: nn.Module, frames: np.ndarray, wav: np.ndarray, fps: float, vshift: int = 15,
    impl: str | None = None, boxes: np.ndarray | None = None
) -> SyncScores:
    """SyncScores of RGB frames (T, H, W, 3) against 16 kHz audio; faces found with the CLI's pipeline
    unless `boxes` (T, 4) are given (e.g. those of the input video a lip-synced output was made from)."""
    boxes = face_boxes(frames) if boxes is None else boxes
    crops = np.stack([crop(f, b) for f, b in zip(frames, boxes, strict=True)])
    return evaluate_crops(expert, crops, wav, fps, vshift, impl)


def video_crops(path: Path, max_frames: int | None = None) -> np.ndarray:
    """The 96x96 face crops (T, 96, 96, 3) uint8 RGB of a video file (its first `max_frames` frames, or
    all), as `evaluate_frames` cuts them, decoded a frame at a time: only the crops are kept (27 KB a
    frame, against 1.2 MB for a 480p frame)."""
    found = stream_video_boxes(lambda: iter_video(path, max_frames=max_frames))
    total = video_info(path).frames_to_read(max_frames) or None
    frames = tqdm(found, total=total, unit="frame", desc="finding faces", disable=None, leave=False)
    return np.stack([crop(frame, box) for frame, box in frames])


def evaluate_crops(
    expert: nn.Module, crops: np.ndarray, wav: np.ndarray, fps: float, vshift: int = 15,
    impl: str | None = None
) -> SyncScores:
    """SyncScores of 96x96 RGB face crops (T, 96, 96, 3) against 16 kHz audio (N,), searched over
    +-`vshift` frames with the lip_sync and audio_encoder of `impl` (None: `common.impl`'s choice)."""
    if len(crops) - 4 < 2 * vshift + 1:  # one 5-frame window per frame but the last 4
        raise UserError(f"the clip has {len(crops)} frames; at least {2 * vshift + 5} are needed for a "
                        f"+-{vshift}-frame search (use a longer clip or a smaller --vshift)")
    lip_sync = load("phase4_audio_driven", "lip_sync", impl)
    audio_encoder = load("phase4_audio_driven", "audio_encoder", impl)
    mel = audio_encoder.melspectrogram(wav)
    device = next(expert.parameters()).device
    # the crops stay uint8 until a batch of windows is built (4 x smaller than the network's floats)
    audio_emb, face_emb = lip_sync.clip_embeddings(expert, crops, mel, fps,
                                                   to_input=partial(to_network, device=device))
    if 0 < len(audio_emb) < len(crops) - 4:
        print(f"the audio ends before the video: scoring the first {len(audio_emb) + 4} of {len(crops)} "
              "frames (the rest have no sound to match)")
    if len(audio_emb) < 2 * vshift + 1:
        raise UserError(
            f"the clip gives {len(audio_emb)} windows; at least {2 * vshift + 1} are needed for "
            f"a +-{vshift}-frame search (use a longer clip or a smaller --vshift)"
        )
    return lip_sync.offset_search(audio_emb, face_emb, vshift)


def offset_figure(curves: dict[str, np.ndarray], vshift: int):
    """Mean embedding distance against the audio shift, one line per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    shifts = np.arange(-vshift, vshift + 1)
    for name, curve in curves.items():
        ax.plot(shifts, curve, marker=".", label=name)
    ax.axvline(0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("audio shift k (frames); the offset printed is -k at the dip")
    ax.set_ylabel("mean embedding distance")
    ax.set_title("SyncNet offset curves (dip = where lips and audio match)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python phase4_audio_driven/eval_sync.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--video", required=True, type=Path, help="video with a visible face")
    parser.add_argument(
        "--audio", type=Path, default=None, help="audio to compare with (default: the video's)"
    )
    parser.add_argument("--expert", required=True, type=Path,
                        help="SyncNet weights file: the published lipsync_expert.pth, or the "
                        "lipsync_expert.pth that train_syncnet.py writes into its run folder")
    parser.add_argument(
        "--vshift", type=int, default=15, help="largest shift searched, in frames (default: 15)"
    )
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="score only the first N frames, at least 2 x vshift + 5 (a quick look at a long "
                        "video) (default: all)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="also write the offset curve to this image file (.png or .jpg)")
    add_common_args(parser, seed=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.vshift < 1:
        raise UserError("--vshift must be at least 1")
    if args.max_frames is not None and args.max_frames < 2 * args.vshift + 5:
        raise UserError(f"--max-frames must be at least {2 * args.vshift + 5} for a +-{args.vshift}-frame "
                        f"search, got {args.max_frames}")
    if args.plot is not None:
        writer.check_suffix(args.plot, "image")
        check_output(args.plot, inputs=(args.video, args.audio, args.expert))
    model = load("phase4_audio_driven", "model", args.impl)
    expert = model.load_syncnet(args.expert).to(pick_device(args.device))
    info = video_info(args.video)
    if args.audio is None and not info.has_audio:
        raise UserError(f"{args.video} has no audio track: pass --audio")
    wav, _ = read_audio(args.audio or args.video, 16000)
    if is_silent(wav):
        log.warning("audio %s is silent: the sync scores below mean nothing", args.audio or args.video)
    try:
        crops = video_crops(args.video, args.max_frames)  # the frames stream past: never held whole
    except NoFramesError as err:
        raise UserError(f"--video {args.video}: {err}") from err
    scores = evaluate_crops(expert, crops, wav, info.fps, args.vshift, args.impl)
    print(f"offset {scores.offset:+d} frames   LSE-D {scores.lse_d:.4f}   LSE-C {scores.lse_c:.4f}")
    if args.plot is not None:
        path = writer.save_figure(offset_figure({args.video.name: scores.mean_dists}, args.vshift), args.plot)
        print(f"offset curve: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
