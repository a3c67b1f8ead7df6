"""Swap a face in a video (or an image) with a trained phase-1 model; the audio track is kept.

    python phase1_face_swap/swap_video.py --checkpoint runs/phase1_face_swap --input clip.mp4 \\
        --output swapped.mp4 --consent ID_OF_A --consent ID_OF_B --blend poisson --color reinhard

Consent comes first: every person involved needs a consent record that allows "swap" (see
`python -m consent_and_watermark consent --help`); without it nothing is computed. The output is
written only through the provenance writer: visible SYNTHETIC label, invisible watermark, metadata
and a signed C2PA manifest. Frames without a face pass through unchanged; the tool reports how many.

`--checkpoint` takes a checkpoint file or a train.py run folder (its newest checkpoint). By default the
input is taken to show the training --target person, and their face is redrawn as the --source
person (the face donor), keeping the target's pose, expression and light; `--draw target` swaps the
other way (for a video of the source person). `--reference` restricts the swap to one person when
several faces appear.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from common import media
from common.cli import add_common_args, add_consent_args, check_output, command_line, consent_roles, run
from common.errors import UserError, first_line
from common.impl import load, use_impl
from common.training import find_checkpoint, load_checkpoint, pick_device
from consent_and_watermark import writer

if TYPE_CHECKING:  # type hints only: the code loads solutions or templates with load()
    from solutions.phase1_face_swap.autoencoder import FaceSwapAutoencoder
    from solutions.phase1_face_swap.face_encoder import IdentityFilter
    from solutions.phase1_face_swap.face_swap import FaceSwapper, SwapStats

PHASE = "phase1_face_swap"
NO_FACE_WARN_S = 4.0  # a video with no face swapped after this many seconds gets one early warning

log = logging.getLogger("deepfake.phase1")


def load_model(model: Path, device: torch.device,
               resolution: int | None = None) -> tuple[FaceSwapAutoencoder, dict]:
    """The autoencoder of a phase-1 checkpoint (file or train.py run folder) and its `extra` settings.

    `resolution`, when given, must match the checkpoint's (a clear error instead of a shape mismatch).
    """
    path = find_checkpoint(model, "phase1_face_swap/train.py")
    state = load_checkpoint(path)
    extra = state.get("extra", {})
    if "model" not in state or "autoencoder" not in extra:
        raise UserError(f"{path} is not a phase-1 face-swap checkpoint (no model or autoencoder settings)")
    autoencoder = load(PHASE, "autoencoder")
    settings = dict(extra["autoencoder"])
    if resolution is not None and settings["resolution"] != resolution:
        raise UserError(f"{path} is a {settings['resolution']} px model, not {resolution} px")
    for key in ("encoder_channels", "decoder_channels"):
        settings[key] = tuple(settings[key])
    model_ = autoencoder.FaceSwapAutoencoder(autoencoder.AutoencoderConfig(**settings))
    try:
        model_.load_state_dict(state["model"])
    except RuntimeError as err:
        raise UserError(f"{path} does not fit its own settings ({first_line(err)})") from err
    return model_.to(device).eval(), extra


def reference_filter(path: Path) -> IdentityFilter:
    """An identity filter from photos (or a video) of the person to swap."""
    encoder = load(PHASE, "face_encoder")
    faceset = load(PHASE, "faceset")
    from common import dlib_models

    descriptors = []
    for file in faceset.media_files(path):
        for frame in faceset.frames_of(file, max_frames=5):
            landmarks = dlib_models.largest_face_landmarks(frame)
            if landmarks is not None:
                descriptors.append(encoder.descriptor(frame, landmarks))
    if not descriptors:
        raise UserError(f"no face found in the reference {path}")
    return encoder.IdentityFilter(np.stack(descriptors))


def make_swapper(model: FaceSwapAutoencoder, extra: dict, args: argparse.Namespace, device: torch.device,
                 identity_filter: IdentityFilter | None = None) -> FaceSwapper:
    """The per-clip swapper with the CLI's settings (`extra`: the checkpoint's, for its coverage)."""
    face_swap = load(PHASE, "face_swap")
    cfg = face_swap.SwapConfig(
        draw_identity=0 if args.draw == "source" else 1,
        coverage=float(extra.get("coverage", 0.6)),
        blend=args.blend,
        color=args.color,
        detect_every=args.detect_every,
        smooth=not args.no_smooth,
    )
    return face_swap.FaceSwapper(model, cfg, identity_filter, device)


def swapped_stream(swapper: FaceSwapper, frames: Iterable[np.ndarray], fps: float) -> Iterator[np.ndarray]:
    """Swapped frames `(H, W, 3)` uint8, one at a time (memory stays flat for long videos).

    Refuses (UserError, nothing written) at the end when no frame held a face. When the first
    ``NO_FACE_WARN_S`` seconds swap nothing, says so at once (once), rather than only after the whole
    video has been decoded and encoded.
    """
    warn_at = max(1, round(NO_FACE_WARN_S * fps))  # frames
    for index, frame in enumerate(frames):
        swapped = swapper(frame, index / fps)[0]
        if index + 1 == warn_at and swapper.stats.swapped == 0:
            log.warning("no face swapped in the first %d frames (%.1f s)%s; going on", warn_at, warn_at / fps,
                        early_reason(swapper.stats))
        yield swapped
    if swapper.stats.swapped == 0:
        raise UserError("no face found in any frame of the input: nothing to swap (output not written)")


def early_reason(stats: SwapStats) -> str:
    """Why nothing was swapped so far, from the swapper's counts (appended to the early warning)."""
    if stats.other_person:
        return f": {stats.other_person} of them show only people other than --reference"
    return ": no face found in them (does --input show the person, large enough and facing the camera?)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python phase1_face_swap/swap_video.py",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", "--model", required=True, type=Path,
                        help="phase-1 checkpoint: a file, or a train.py run folder (its newest checkpoint)")
    parser.add_argument(
        "--input", required=True, type=Path, help="video (mp4, mov, ...) or image to swap into"
    )
    parser.add_argument("--output", required=True, type=Path, help="output .mp4 (or .png/.jpg for an image)")
    parser.add_argument(
        "--blend",
        choices=("alpha", "poisson"),
        default="alpha",
        help="alpha: feathered mask (default); poisson: cv2.seamlessClone (matches gradients, slower)",
    )
    parser.add_argument(
        "--color",
        choices=("reinhard", "hist", "none"),
        default="reinhard",
        help="colour transfer onto the target's skin: reinhard (LAB mean/std, the default), hist "
        "(histogram matching) or none",
    )
    parser.add_argument(
        "--draw",
        choices=("source", "target"),
        default="source",
        help="whose face to draw: the training --source (default; the input shows --target) or --target",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="photos/video of the person to swap; other faces are left alone",
    )
    parser.add_argument(
        "--detect-every",
        type=int,
        default=5,
        metavar="N",
        help="run the face detector every N frames and track landmarks in between (default: 5)",
    )
    parser.add_argument("--no-smooth", action="store_true", help="turn off One-Euro landmark smoothing")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="stop after this many frames of a video (the audio is cut to match)")
    add_common_args(parser, seed=False)
    add_consent_args(parser, roles=("the face the model puts in (--checkpoint)", "the person in --input"))
    args = parser.parse_args(argv)
    use_impl(args.impl)
    is_image = media.is_image_path(args.input)
    # Consent before any compute: refused records stop the run here, with nothing written.
    writer.begin_run(
        "swap",
        args.consent,
        visible_label=not args.no_visible_label,
        outputs=("image",) if is_image else ("video",),
        argv=command_line(__file__, argv),
        roles=consent_roles(args),
    )
    if args.detect_every < 1 or (args.max_frames is not None and args.max_frames < 1):
        raise UserError("--detect-every and --max-frames must be at least 1")
    writer.check_suffix(args.output, "image" if is_image else "video")
    check_output(args.output, inputs=(args.input,))
    device = pick_device(args.device)
    model, extra = load_model(args.checkpoint, device)
    identity_filter = reference_filter(args.reference) if args.reference else None
    swapper = make_swapper(model, extra, args, device, identity_filter)

    if is_image:
        out, found = swapper(media.read_image(args.input), 0.0)
        if not found:
            raise UserError(f"no face found in {args.input}: nothing to swap (output not written)")
        writer.save_image(args.output, out)
    else:
        info = media.video_info(args.input)
        audio, rate = media.read_audio(args.input) if info.has_audio else (None, None)
        frames = media.iter_video(args.input, max_frames=args.max_frames)
        if args.max_frames is not None and audio is not None:
            audio = audio[: int(round(args.max_frames / info.fps * rate))]
        total = info.frames_to_read(args.max_frames) or None  # for the progress bars
        writer.save_video(args.output, swapped_stream(swapper, frames, info.fps), info.fps, audio=audio,
                          sample_rate=rate, total=total)
    stats = swapper.stats
    print(
        f"{args.output}: {stats.swapped} of {stats.frames} frames swapped, {stats.no_face} without a face"
        + (f", {stats.other_person} with other people only" if stats.other_person else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
