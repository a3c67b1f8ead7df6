"""Extract aligned face crops (and their landmarks) from a video, an image, or a folder of them.

    python phase1_face_swap/extract.py --input data/personA.mp4 --output faces/A
    python phase1_face_swap/extract.py --input data/party_photos --output faces/A --reference data/a.jpg

For every frame: face detection (HOG, or MTCNN with --detector mtcnn) -> dlib's 68 landmarks ->
(with --reference) keep only the face nearest that person's 128-D descriptor -> similarity-align to
the mean face -> crop SIZE x SIZE.
The output folder holds `face_NNNNNN.png` crops (written through the provenance writer, without the
visible label so training sees clean faces) and `faces.json` (crop size, coverage, and each crop's
landmarks in crop pixels, which training uses for its masks and loss weights).

The folder is built under a temporary name and renamed at the end: an interrupted or failed run
leaves nothing half-written under --output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from common.cli import add_common_args, run
from common.errors import UserError
from common.impl import load, use_impl
from consent_and_watermark import writer

PHASE = "phase1_face_swap"


def write_faceset(faces, output: Path, size: int, coverage: float) -> int:
    """Write crops and faces.json into `output` atomically (temp folder + rename); returns the count."""
    if output.exists() and any(output.iterdir()):
        raise UserError(f"{output} exists and is not empty; choose a new --output folder")
    with writer.staged_folder(output) as tmp:
        index = []
        for face in tqdm(faces, desc=f"faces into {output}", unit="face", disable=None, leave=False):
            name = f"face_{len(index):06d}.png"
            writer.save_image(tmp / name, face.crop, label=False)
            index.append(
                {
                    "file": name,
                    "source": face.source,
                    "frame": face.frame,
                    "landmarks": face.landmarks.round(3).tolist(),
                }
            )
        if not index:
            min_px = load(PHASE, "faceset").MIN_FACE_PX
            raise UserError(f"no face found in the input: use frontal faces at least {min_px} px wide")
        (tmp / "faces.json").write_text(json.dumps({"size": size, "coverage": coverage, "faces": index}))
    return len(index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python phase1_face_swap/extract.py",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", required=True, type=Path, help="a video, an image, or a folder of them")
    parser.add_argument("--output", required=True, type=Path,
                        help="new (or empty) folder for the crops and faces.json")
    parser.add_argument(
        "--size", type=int, default=256,
        help="crop side in pixels, at least 32 (training resizes; default: 256)",
    )
    parser.add_argument(
        "--coverage",
        type=float,
        default=0.6,
        help="share of the crop the brow-to-mouth template spans, 0.1 to 1 (smaller = more margin; "
        "default: 0.6)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="photos/video of the person to keep (for inputs with several people): only faces that match "
        "theirs are cropped",
    )
    parser.add_argument(
        "--detector",
        choices=("hog", "mtcnn"),
        default="hog",
        help="hog: dlib's HOG (fast, frontal faces); mtcnn: the CNN cascade (more poses, slower); "
        "both run on the CPU (default: hog)",
    )
    parser.add_argument(
        "--frame-step", "--every", type=int, default=1, metavar="N",
        help="sample videos: take only every N-th frame and skip the others (fewer, less alike crops; "
        "the detector runs on each frame taken; default: 1, every frame)",
    )
    parser.add_argument(
        "--max-frames", type=int, default=None,
        help="read at most this many frames per video (counted before --frame-step skips any)",
    )
    add_common_args(parser, device=False, seed=False)
    args = parser.parse_args(argv)
    use_impl(args.impl)
    if args.size < 32 or args.frame_step < 1:
        raise UserError("--size must be at least 32 and --frame-step at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be at least 1, got {args.max_frames}")
    if not 0.1 <= args.coverage <= 1.0:
        raise UserError("--coverage must be between 0.1 and 1")
    faceset = load(PHASE, "faceset")
    identity_filter = None
    if args.reference is not None:
        from phase1_face_swap.swap_video import reference_filter

        identity_filter = reference_filter(args.reference)
    faces = faceset.extract_from_path(
        args.input,
        args.size,
        args.coverage,
        identity_filter,
        args.max_frames,
        every=args.frame_step,
        detector=args.detector,
    )
    count = write_faceset(faces, args.output, args.size, args.coverage)
    print(f"{args.output}: {count} aligned faces")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
