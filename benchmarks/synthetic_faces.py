"""How real do the synthetic faces look to real face tools? Two figures, measured with dlib.

1. detection rate: the share of frames in which dlib's HOG frontal detector (no upsampling) finds
   a face whose box contains the ground-truth nose tip (landmark 30); target >= 95 %;
2. NME: dlib's 68-point predictor, run in the detector's box, against our ground truth; the mean
   point-to-point error divided by the outer-eye-corner distance (landmarks 36-45, the 300-W
   "inter-ocular" normalisation), averaged over detected frames; target <= 0.08.

It renders `--identities` people x `--frames` frames of talking-head motion (pose, expressions,
blinks, speech-driven mouth) and prints both figures, whether each meets its target, the error per
face region, how well dlib's 128-D descriptor tells the people apart, and the time per frame.
A measurement: it always exits 0.

    python benchmarks/synthetic_faces.py --identities 20 --frames 100 --size 256
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from common import dlib_models
from common.cli import run
from common.synthetic import make_identity, render_clip

DETECTION_TARGET = 0.95
NME_TARGET = 0.08
REGIONS = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=20, help="number of synthetic people (default 20)")
    parser.add_argument("--frames", type=int, default=100, help="frames per person (default 100)")
    parser.add_argument("--size", type=int, default=256, help="frame size in pixels (default 256)")
    parser.add_argument(
        "--seed", type=int, default=1000, help="first identity seed (default 1000: unseen in tests)"
    )
    parser.add_argument("--upsample", type=int, default=0, help="HOG upsampling steps (default 0)")
    parser.add_argument(
        "--no-identity",
        action="store_true",
        help="skip the extra figure: dlib 128-D descriptor distances, same person vs different people",
    )
    return parser


def identity_separation(first: list, last: list) -> tuple[float, float, float]:
    """Descriptor distances between each person's first and last frame: mean same-person distance,
    mean different-person distance, and rank-1 identification (is the closest first frame to each
    last frame the same person's?)."""
    dist = np.linalg.norm(np.array(last)[:, None] - np.array(first)[None], axis=2)  # (N, N)
    n = len(first)
    same = float(np.mean(np.diag(dist)))
    diff = float(dist[~np.eye(n, dtype=bool)].mean())
    rank1 = float(np.mean(dist.argmin(axis=1) == np.arange(n)))
    return same, diff, rank1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cv2.setNumThreads(1)  # a fair, single-core figure on a shared machine
    found, total = 0, 0
    errors: list[float] = []
    region_errors = {name: [] for name in REGIONS}
    render_s = dlib_s = 0.0
    first_desc, last_desc = [], []
    for k in range(args.identities):
        start = time.perf_counter()
        clip = render_clip(make_identity(args.seed + k), args.frames, args.size, seed=0)
        render_s += time.perf_counter() - start
        person_found = 0
        for frame, truth in zip(clip.frames, clip.landmarks, strict=True):
            total += 1
            start = time.perf_counter()
            boxes = [
                b
                for b in dlib_models.detect_faces(frame, args.upsample)
                if b[0] <= truth[30, 0] <= b[2] and b[1] <= truth[30, 1] <= b[3]
            ]
            if boxes:
                predicted = dlib_models.landmarks68(frame, boxes[0])
            dlib_s += time.perf_counter() - start
            if not boxes:
                continue
            found += 1
            person_found += 1
            point_error = np.linalg.norm(predicted - truth, axis=1) / np.linalg.norm(truth[36] - truth[45])
            errors.append(float(point_error.mean()))
            for name, idx in REGIONS.items():
                region_errors[name].append(float(point_error[list(idx)].mean()))
        if not args.no_identity:
            for store, i in ((first_desc, 0), (last_desc, args.frames - 1)):
                store.append(dlib_models.face_descriptor(clip.frames[i], clip.landmarks[i]))
        nme = np.mean(errors[-person_found:]) if person_found else float("nan")
        print(f"identity {args.seed + k}: detected {person_found}/{args.frames}, NME {nme:.4f}")

    rate = found / max(total, 1)
    nme = float(np.mean(errors)) if errors else float("nan")
    print()
    print(f"frames: {total} ({args.identities} identities x {args.frames}), size {args.size} px")
    print(
        f"HOG detection rate: {100 * rate:.1f} % (target >= {100 * DETECTION_TARGET:.0f} %): "
        f"{'MEETS' if rate >= DETECTION_TARGET else 'BELOW'} target"
    )
    median = np.median(errors) if errors else float("nan")
    p95 = np.percentile(errors, 95) if errors else float("nan")
    print(
        f"68-point NME (inter-ocular): {nme:.4f} (median {median:.4f}, 95th pct {p95:.4f}; "
        f"target <= {NME_TARGET}): {'MEETS' if nme <= NME_TARGET else 'MISSES'} target"
    )
    print("NME per region: " + ", ".join(f"{n} {np.mean(v):.4f}" for n, v in region_errors.items() if v))
    if len(first_desc) > 1:
        same, diff, rank1 = identity_separation(first_desc, last_desc)
        print(
            f"identity (dlib 128-D, first vs last frame): same person {same:.3f}, "
            f"different people {diff:.3f}; rank-1 identification {100 * rank1:.0f} %"
        )
    print(
        f"time per frame: render (with speech synthesis) {1000 * render_s / max(total, 1):.1f} ms, "
        f"dlib detect + predict {1000 * dlib_s / max(total, 1):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
