"""The paper's reconstruction evaluation (FOMM sec. 4.1, table 1): L1, AKD and AED on held-out videos.

    python phase3_first_order_motion/reconstruct.py --checkpoint runs/fomm \\
        --data synthetic [--videos 8] [--no-aed]
    python phase3_first_order_motion/reconstruct.py --checkpoint vox-cpk.pth.tar --data /data/vox --split test

For every held-out video the first frame is the source and every frame is a driving frame of the *same*
person, so the ground truth is the driving frame itself (absolute keypoints, no relative transfer):

* L1: mean |prediction - driving| over pixels and channels, images in [0, 1];
* AKD (average keypoint distance): mean distance in pixels between dlib's 68 landmarks on the prediction
  and on the driving frame (the paper used a different landmark detector: figures are not comparable);
* AED (average Euclidean distance): mean distance between dlib's 128-D identity descriptors of the
  prediction and the driving frame (the paper used OpenFace embeddings).

Faces smaller than dlib's detector works with are upscaled (`--landmark-size`) before landmarks are
found; the landmarks of a pair use the face box found in the driving frame, and pairs without a face
are skipped for AKD/AED (the count is printed). The "copy the source frame" baseline is printed beside.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.atomic import write_atomic
from common.cli import add_common_args, check_output, run
from common.errors import UserError
from common.impl import load, use_impl
from common.training.checkpoint import find_checkpoint
from common.training.device import pick_device

PHASE = "phase3_first_order_motion"


def upscale(frame: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, bicubic (for dlib on small frames)."""
    if frame.shape[0] == size:
        return frame
    x = torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


class FaceMetrics:
    """AKD and AED between predicted and real frames with dlib, accumulated over many pairs."""

    def __init__(self, landmark_size: int = 256, aed: bool = True) -> None:
        from common import dlib_models

        self.dlib = dlib_models
        self.size, self.aed = landmark_size, aed
        self.akd: list[float] = []
        self.aed_values: list[float] = []
        self.skipped = 0

    def add(self, prediction: np.ndarray, real: np.ndarray) -> None:
        """prediction, real (H, W, 3) uint8. Distances are in pixels of the *original* frame size."""
        scale = self.size / real.shape[0]
        real_big, pred_big = upscale(real, self.size), upscale(prediction, self.size)
        boxes = self.dlib.detect_faces(real_big)
        if not boxes:
            self.skipped += 1
            return
        lm_real = self.dlib.landmarks68(real_big, boxes[0])
        lm_pred = self.dlib.landmarks68(pred_big, boxes[0])
        self.akd.append(float(np.linalg.norm(lm_real - lm_pred, axis=1).mean() / scale))
        if self.aed:
            d_real = self.dlib.face_descriptor(real_big, lm_real)
            d_pred = self.dlib.face_descriptor(pred_big, lm_pred)
            self.aed_values.append(float(np.linalg.norm(d_real - d_pred)))

    def result(self) -> dict[str, float]:
        """Mean AKD (and AED) over the pairs with a face (NaN if none), and how many pairs had none."""
        out = {"akd": float(np.mean(self.akd)) if self.akd else float("nan"),
               "pairs_without_face": self.skipped}
        if self.aed:
            out["aed"] = float(np.mean(self.aed_values)) if self.aed_values else float("nan")
        return out


@torch.no_grad()
def reconstruct(models: dict, video: np.ndarray, device: torch.device, batch_size: int = 16) -> np.ndarray:
    """Every frame of `video` (T, H, W, 3) uint8 rendered from frame 0 with absolute keypoints."""
    kp_detector, generator = models["kp_detector"].to(device).eval(), models["generator"].to(device).eval()
    x = torch.from_numpy(np.array(video)).permute(0, 3, 1, 2).float().div(255)  # (T, 3, H, W) in [0, 1]
    source = x[:1].to(device)  # (1, 3, H, W)
    kp_source = kp_detector(source)
    features = generator.encode_source(source)
    out = []
    for i in range(0, len(x), batch_size):
        driving = x[i:i + batch_size].to(device)  # (B, 3, H, W)
        b = driving.shape[0]
        kp_s = {k: v.expand(b, *v.shape[1:]) for k, v in kp_source.items()}
        pred = generator(source.expand(b, -1, -1, -1), kp_driving=kp_detector(driving),
                         kp_source=kp_s, source_features=features)["prediction"]  # (B, 3, H, W)
        out.append((pred.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def evaluate(models: dict, videos: list[np.ndarray], device: torch.device, aed: bool = True,
             landmark_size: int = 256, frame_step: int = 1) -> dict[str, dict[str, float]]:
    """L1 / AKD / AED of the model and of the copy-the-source baseline over all videos."""
    results = {}
    for name in ("fomm", "copy_source"):
        faces = FaceMetrics(landmark_size, aed)
        l1 = []
        for video in videos:
            if name == "fomm":
                pred = reconstruct(models, video, device)
            else:
                pred = np.repeat(video[:1], len(video), axis=0)
            l1.append(np.abs(pred.astype(np.float32) - video.astype(np.float32)).mean() / 255)
            for p, r in zip(pred[::frame_step], video[::frame_step], strict=True):
                faces.add(p, r)
        results[name] = {"l1": float(np.mean(l1)), **faces.result()}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python phase3_first_order_motion/reconstruct.py",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="FOMM checkpoint to evaluate: the published vox-cpk.pth.tar, or a file or run "
                        "folder of train.py (its newest checkpoint)")
    parser.add_argument("--data", required=True, help="'synthetic' (held-out people) or a folder of videos")
    parser.add_argument("--split", default="test",
                        help="with a folder --data: its sub-folder of held-out videos (without one, all its "
                        "videos are used; default: test)")
    parser.add_argument("--videos", type=int, default=8,
                        help="held-out videos: how many synthetic people, or at most this many of the "
                        "folder's (default: 8)")
    parser.add_argument("--frames", type=int, default=32,
                        help="with --data synthetic: frames per video, at least 2 (default: 32)")
    parser.add_argument("--frame-step", type=int, default=1, metavar="N",
                        help="AKD/AED on every N-th frame only (dlib is the slow part; L1 uses every frame; "
                        "default: 1)")
    parser.add_argument("--no-aed", dest="aed", action="store_false",
                        help="skip AED (dlib's 128-D descriptor costs ~0.2 s per face on a CPU)")
    parser.add_argument("--landmark-size", type=int, default=256,
                        help="frames are resized to this side in pixels before dlib looks for faces (small "
                        "faces need upscaling; default: 256)")
    parser.add_argument("--json", type=Path, help="also write the figures to this .json file")
    add_common_args(parser)
    args = parser.parse_args(argv)
    use_impl(args.impl)
    if args.videos < 1 or args.frame_step < 1:
        raise UserError("--videos and --frame-step must be at least 1")
    if args.landmark_size < 64:
        raise UserError(f"--landmark-size must be at least 64 px (dlib's detector needs faces of ~80 px), "
                        f"got {args.landmark_size}")
    if args.frames < 2:
        raise UserError(f"--frames must be at least 2 (frame 0 is the source, the others are driven), "
                        f"got {args.frames}")
    if args.json:
        if args.json.suffix.lower() != ".json":
            raise UserError(f"--json {args.json} must end in .json")
        check_output(args.json, inputs=(args.checkpoint,))
    # a checkpoint file, or a train.py run folder: its newest checkpoint
    args.checkpoint = find_checkpoint(args.checkpoint, "phase3_first_order_motion/train.py")
    models, config, _ = load(PHASE, "model").load_fomm(args.checkpoint)
    from phase3_first_order_motion import data

    if args.data == "synthetic":
        videos = data.synthetic_videos(args.videos, args.frames, config.frame_size, seed=args.seed + 10_000)
    else:
        videos = data.load_video_folder(args.data, config.frame_size, split=args.split,
                                        max_videos=args.videos)
    if not videos:
        raise UserError("no held-out videos to evaluate")
    device = pick_device(args.device)
    results = evaluate(models, videos, device, args.aed, args.landmark_size, args.frame_step)
    for name, values in results.items():
        print(f"{name:12s} " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in values.items()))
    if args.json:  # atomic, into a folder made if missing (check_output allowed one)
        write_atomic(args.json, lambda file: file.write(json.dumps(results, indent=1).encode()))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
