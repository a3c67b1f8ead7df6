"""Animate a still image with the motion of a driving video (First Order Motion Model, sec. 3.4).

    python phase3_first_order_motion/animate.py --source image.jpg --driving driving_video.mp4 \\
        --checkpoint fomm_checkpoint.pt --output animated.mp4 --consent ID --consent DRIVER_ID

What happens:
  1. consent is checked for both people, the one animated and the one driving (`--consent` twice, or
     once with `--same-person`), before anything is computed;
  2. the source and every driving frame are resized to the checkpoint's frame size (the tool says so);
     the driving video is streamed (read again for each pass: --find-best-frame, the initial frame, the
     rendering), so memory stays flat however long it is;
  3. the keypoint detector runs once on the source and on batches of driving frames;
  4. relative motion (default): the source moves the way the driving video moves relative to its first
     frame (or, with --find-best-frame, to the driving frame whose face pose is closest to the source's),
     optionally scaled by the ratio of the keypoint hulls (--adapt-scale);
  5. the generator renders each frame; the driving video's audio is kept; the output is written through
     consent_and_watermark (visible label, invisible watermark, C2PA manifest).

Speed: `--batch-size` driving frames go through the networks at once and the source is encoded once. On
a GPU large batches, `--precision bf16 --channels-last` (tensor cores) and `--compile` pay; keypoints,
Jacobians and sampling grids stay in float32; frames travel as uint8. On an NVIDIA H100 (vox-256, 256
driving frames, benchmarks/fomm_throughput.py) the published one-frame loop renders 66-82 frames/s,
batches of 64 in bf16 with --channels-last 1053 (15.6x), and with --compile 1668 (21.2x; batches of 128:
29.2x; max |difference| to fp32 2e-3). On a CPU small batches are faster (a batch of
256x256 feature maps no longer fits the caches): the default is 2 frames per call there. Measured with
one thread of a shared AMD EPYC (vox-256, benchmarks/fomm_throughput.py): the published one-frame loop
takes 0.72-0.75 CPU-s per frame, ours 0.52 in fp32 with --channels-last (1.37x) and 0.28 with
--precision bf16 --channels-last (2.66x, max |difference| to fp32 2e-3; needs a CPU with AVX-512 BF16 or
AMX).
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.cli import add_common_args, add_consent_args, check_output, command_line, consent_roles, run
from common.errors import UserError
from common.impl import load, use_impl
from common.media import is_image_path, iter_video, read_audio, read_image, resize_frames, video_info
from common.training.checkpoint import find_checkpoint
from common.training.device import PRECISIONS, autocast, pick_device

PHASE = "phase3_first_order_motion"


def to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32 in [0, 1] on `device`."""
    return torch.from_numpy(np.array(frames)).to(device).permute(0, 3, 1, 2).float() / 255


def to_frames(images: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) float in [0, 1] -> (T, H, W, 3) uint8."""
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def fit_to_model(frames: np.ndarray, size: int, what: str) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8 (`common.media.resize_frames`: area to shrink,
    bilinear to enlarge), telling the user when the frames change size."""
    say_resize(what, frames.shape[2], frames.shape[1], size)
    return resize_frames(frames, size)


def say_resize(what: str, width: int, height: int, size: int) -> None:
    """Tell the user when frames of `width` x `height` are resized to the model's `size` x `size`."""
    if (height, width) != (size, size):
        print(f"{what}: resizing {width}x{height} to {size}x{size} (the model's frame size); non-square "
              f"inputs are stretched, crop them first with crop.py", file=sys.stderr)


def normalized_landmarks(rgb: np.ndarray) -> np.ndarray | None:
    """dlib's 68 landmarks, centred and divided by sqrt(hull area): a pose/expression signature."""
    from common.dlib_models import largest_face_landmarks

    points = largest_face_landmarks(rgb)
    if points is None:
        return None
    points = points - points.mean(axis=0)
    return points / np.sqrt(load(PHASE, "motion_transfer").hull_area(points))


def find_best_frame(source: np.ndarray, driving: Iterable[np.ndarray]) -> int:
    """Index of the driving frame whose normalised face landmarks are closest to the source's (0 if none);
    `driving`: an array or any iterable of frames (a stream: only the best index is kept)."""
    reference = normalized_landmarks(source)
    if reference is None:
        print("--find-best-frame: no face in the source; measuring motion from driving frame 0",
              file=sys.stderr)
        return 0
    best, best_dist = 0, np.inf
    for i, frame in enumerate(driving):
        points = normalized_landmarks(frame)
        if points is not None:
            dist = float(((points - reference) ** 2).sum())
            if dist < best_dist:
                best, best_dist = i, dist
    return best


class Animator:
    """The trained modules and everything computed once per source image, ready to render batches."""

    def __init__(self, models: dict, device: torch.device, precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False) -> None:
        self.kp_detector = models["kp_detector"].eval().to(device)
        self.generator = models["generator"].eval().to(device)
        self.normalize_kp = load(PHASE, "motion_transfer").normalize_kp
        self.device, self.precision, self.channels_last = device, precision, channels_last
        if channels_last:
            self.kp_detector.to(memory_format=torch.channels_last)
            self.generator.to(memory_format=torch.channels_last)
        if device.type == "cuda":  # every batch has the same shape: let cuDNN time its kernels once
            torch.backends.cudnn.benchmark = True
        self.batch: int | None = None  # with compile: the one batch size the graphs were built for
        self.compiled = compile
        if compile:  # graphs specialised to fixed shapes; render() pads a short last batch
            self.kp_detector = torch.compile(self.kp_detector, dynamic=False)
            self.generator = torch.compile(self.generator, dynamic=False)

    def _images(self, frames: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float on the device, in the chosen memory format."""
        return self._images_from_float(to_tensor(frames, self.device))

    def _images_from_float(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] (any device) -> on the device, in the chosen memory format."""
        x = images.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _keypoints(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.precision):
            kp = self.kp_detector(images)
        return {k: v.float() for k, v in kp.items()}  # keypoint geometry stays float32

    @torch.no_grad()
    def set_source(self, source: np.ndarray) -> None:
        """source (H, W, 3) uint8: its keypoints and encoder features are computed once."""
        self.source = self._images(source[None])
        self.kp_source = self._keypoints(self.source)
        with autocast(self.device, self.precision):
            self.source_features = self.generator.encode_source(self.source)

    @torch.no_grad()
    def render(self, driving: np.ndarray, kp_initial: dict[str, torch.Tensor] | None,
               relative: bool = True, adapt_scale: bool = False) -> np.ndarray:
        """driving (B, H, W, 3) uint8 -> animated frames (B, H, W, 3) uint8 (one network call per module)."""
        n = len(driving)
        if self.compiled:  # a new batch size would mean a new compilation: repeat the last frame instead
            self.batch = self.batch or n
            if n < self.batch:
                driving = np.concatenate([driving, np.repeat(driving[-1:], self.batch - n, axis=0)])
        return to_frames(self.predict(self._images(driving), kp_initial, relative, adapt_scale))[:n]

    @torch.no_grad()
    def predict(self, images: torch.Tensor, kp_initial: dict[str, torch.Tensor] | None,
                relative: bool = True, adapt_scale: bool = False) -> torch.Tensor:
        """driving (B, 3, H, W) in [0, 1] on the device -> predictions (B, 3, H, W) in [0, 1]."""
        kp_driving = self._keypoints(images)
        if relative:
            kp_driving = self.normalize_kp(kp_source=self.kp_source, kp_driving=kp_driving,
                                           kp_driving_initial=kp_initial, adapt_movement_scale=adapt_scale,
                                           use_relative_movement=True, use_relative_jacobian=True)
        b = images.shape[0]
        kp_source = {k: v.expand(b, *v.shape[1:]) for k, v in self.kp_source.items()}
        with autocast(self.device, self.precision):
            out = self.generator(self.source.expand(b, -1, -1, -1), kp_driving=kp_driving,
                                 kp_source=kp_source, source_features=self.source_features)
        return out["prediction"]

    @torch.no_grad()
    def initial_keypoints(self, frame: np.ndarray) -> dict[str, torch.Tensor]:
        """Keypoints of the driving frame (H, W, 3) uint8 that relative motion is measured from:
        {'value': (1, K, 2), and 'jacobian': (1, K, 2, 2) when the model estimates them}."""
        return self._keypoints(self._images(frame[None]))


def default_batch_size(device: torch.device) -> int:
    """Driving frames per network call when --batch-size is not given: 2 on a CPU, 8 on accelerators."""
    return 2 if device.type == "cpu" else 8


def batches(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """(B, H, W, 3) batches of `size` frames (the last may be shorter) from an array (slices) or any
    iterable of (H, W, 3) frames (stacked as they come, one batch held at a time)."""
    if isinstance(frames, np.ndarray):
        yield from (frames[i:i + size] for i in range(0, len(frames), size))
        return
    frames = iter(frames)
    while batch := list(islice(frames, size)):
        yield np.stack(batch)


def animate(animator: Animator, source: np.ndarray, driving: Iterable[np.ndarray], relative: bool = True,
            adapt_scale: bool = False, batch_size: int = 8, start: int = 0,
            initial: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield the animated frames, one per driving frame, in order, `batch_size` frames per network call.

    `driving`: a (T, H, W, 3) array, or any iterable of (H, W, 3) frames (a stream: pass `initial`, driving
    frame `start` read beforehand, since a stream cannot be indexed). Relative motion is measured from
    driving frame `start` (0, or the best frame). The published demo renders the frames before the best
    one backwards from it; since each frame depends only on its own keypoints and those of frame `start`,
    rendering them in their natural order gives the same frames.
    """
    animator.set_source(source)
    kp_initial = animator.initial_keypoints(driving[start] if initial is None else initial)
    for batch in batches(driving, batch_size):
        yield from animator.render(batch, kp_initial, relative, adapt_scale)


def driving_frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` of a video (as `iter_video` reads it), decoding no further than that frame."""
    last = deque(iter_video(path, max_frames=index + 1), maxlen=1)
    if not last:
        raise UserError(f"--driving {path} has no frames")
    return last[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python phase3_first_order_motion/animate.py",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path, help="still image of the person to animate")
    parser.add_argument("--driving", required=True, type=Path, help="video whose motion is transferred")
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="FOMM checkpoint: the published vox-cpk.pth.tar, or a file or run folder of "
                             "train.py (its newest checkpoint)")
    parser.add_argument("--output", required=True, type=Path, help="where to write the animated .mp4")
    motion = parser.add_mutually_exclusive_group()
    motion.add_argument("--relative", dest="relative", action="store_true", default=True,
                        help="transfer the driving motion relative to its first frame, or to the one "
                             "--find-best-frame picks (default; eq. 14-15)")
    motion.add_argument("--absolute", dest="relative", action="store_false",
                        help="use the driving keypoints as they are (the source takes the driver's pose "
                             "and face shape)")
    parser.add_argument("--adapt-scale", action="store_true",
                        help="scale the motion by sqrt(hull area of the source keypoints / hull area of the "
                             "initial driving keypoints) (relative motion only)")
    parser.add_argument("--find-best-frame", action="store_true",
                        help="measure motion from the driving frame whose face pose (dlib landmarks) is "
                             "closest to the source's, not from frame 0 (relative motion only)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="animate only the first N driving frames, at least 2 (the audio is cut to "
                             "match) (default: all)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="driving frames per network call (default: 2 on a CPU, where small batches "
                             "stay in the caches; 8 on a GPU, where larger ones can pay)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="bf16/fp16: autocast for the convolutions (GPU; bf16 also on a CPU); auto = "
                             "bf16 on a CUDA GPU with bfloat16 arithmetic (Ampere or newer), fp16 on an "
                             "older one, fp32 elsewhere (default: fp32)")
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC memory layout (faster convolutions on GPUs with tensor cores, and on "
                             "CPUs with oneDNN)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the networks (GPU: fuses the many small operations; the first "
                             "batches wait for the compiler, about a minute; vox-256 with bf16, "
                             "--channels-last and batches of 64 on an H100: 1668 instead of 1053 frames/s)")
    add_common_args(parser)
    add_consent_args(parser, roles=("the person animated (--source)", "the person driving (--driving)"))
    return parser


def check_inputs(args: argparse.Namespace) -> None:
    """Cheap checks of the paths and flags, before the consent check and any compute."""
    # a checkpoint file, or a train.py run folder: its newest checkpoint
    args.checkpoint = find_checkpoint(args.checkpoint, "phase3_first_order_motion/train.py")
    inputs = (("--source", args.source), ("--driving", args.driving), ("--checkpoint", args.checkpoint))
    for flag, path in inputs:
        if not path.is_file():
            raise UserError(f"{flag} {path} does not exist")
    if not is_image_path(args.source):
        raise UserError(f"--source {args.source} is not an image (png, jpg, ...)")
    if args.output.suffix.lower() != ".mp4":
        raise UserError(f"--output {args.output} must end in .mp4")
    check_output(args.output, inputs=(args.source, args.driving, args.checkpoint))
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.max_frames is not None and args.max_frames < 2:
        raise UserError(f"--max-frames must be at least 2 (motion needs two driving frames), got "
                        f"{args.max_frames}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from consent_and_watermark.writer import begin_run, save_video

    use_impl(args.impl)
    check_inputs(args)
    begin_run("animate", args.consent, visible_label=not args.no_visible_label, outputs=("video",),
              argv=command_line(__file__, argv), roles=consent_roles(args))
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    models, config, _ = load(PHASE, "model").load_fomm(args.checkpoint)
    size = config.frame_size

    photo = read_image(args.source)
    from common.dlib_models import detect_faces

    if not detect_faces(photo):
        print(f"warning: no face found in {args.source}; animating it anyway", file=sys.stderr)
    # The driving video is never held whole: each pass below streams it from the file.
    info = video_info(args.driving)
    first = list(iter_video(args.driving, max_frames=2))
    if len(first) < 2:
        raise UserError(f"--driving {args.driving} has only {len(first)} frame; at least 2 are needed")
    height, width = first[0].shape[:2]
    del first
    total = info.frames_to_read(args.max_frames) or None  # for the progress bars
    audio, rate = read_audio(args.driving) if info.has_audio else (None, None)
    if audio is not None and args.max_frames is not None:
        audio = audio[: int(round(args.max_frames / info.fps * rate))]

    def driving_frames() -> Iterator[np.ndarray]:
        return iter_video(args.driving, max_frames=args.max_frames)

    start = 0
    if args.find_best_frame:  # on frames of at least 256 px: in a small model's 64 px dlib finds no face
        seen = max(size, 256)
        frames = tqdm(driving_frames(), total=total, unit="frame", desc="--find-best-frame", disable=None,
                      leave=False)
        start = find_best_frame(resize_frames(photo[None], seen)[0],
                                (resize_frames(frame[None], seen)[0] for frame in frames))
        print(f"best driving frame: {start}", file=sys.stderr)
    source = fit_to_model(photo[None], size, "source")[0]
    say_resize("driving video", width, height, size)  # once; the frames are resized as they stream by
    initial = resize_frames(driving_frame(args.driving, start)[None], size)[0]
    count = 0

    def driving() -> Iterator[np.ndarray]:  # the frames at the model's size, counted for the last line
        nonlocal count
        for frame in driving_frames():
            count += 1
            yield resize_frames(frame[None], size)[0]

    animator = Animator(models, device, args.precision, args.channels_last, args.compile)
    frames = animate(animator, source, driving(), relative=args.relative, adapt_scale=args.adapt_scale,
                     batch_size=args.batch_size or default_batch_size(device), start=start, initial=initial)
    path = save_video(args.output, frames, info.fps, audio=audio, sample_rate=rate, total=total)
    sound = ", with the driving audio" if audio is not None else ""
    print(f"wrote {path} ({count} frames at {info.fps:g} fps{sound})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
