"""The pipeline around the networks: box gaps and smoothing, colour order, masking, pasting, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.detector_processes import DetectorProcesses
from common.errors import UserError
from common.impl import load
from phase4_audio_driven import data, pipeline
from phase4_audio_driven.pipeline import settle_boxes


def test_settle_boxes_reuses_the_last_box_and_the_first_for_frames_before_it():
    a, b = (1, 2, 3, 4), (5, 6, 7, 8)
    settled = list(pipeline.settle_boxes(enumerate([None, a, None, b, None]), window=1))
    assert [i for i, _ in settled] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal([box for _, box in settled], [a, a, a, b, b])
    with pytest.raises(UserError, match="no face"):
        list(pipeline.settle_boxes(enumerate([None, None]), window=1))
    with pytest.raises(UserError, match="no frame could be decoded"):
        list(pipeline.settle_boxes([], window=5))


def test_frames_without_a_face_are_reported_also_when_the_caller_stops_early(caplog):
    a = (1, 2, 3, 4)
    boxes = pipeline.settle_boxes(enumerate([a, None, None, a, a, a, a, a]), window=1)
    with caplog.at_level("WARNING", logger=pipeline.log.name):
        taken = [next(boxes) for _ in range(4)]  # the audio needs only 4 frames of the clip
        assert "no face" not in caplog.text
        boxes.close()
    assert len(taken) == 4 and "no face in 2 of 4 frames" in caplog.text


def test_settle_boxes_smooths_with_a_forward_window_mean():
    ramp = [(i, (i, i, i, i)) for i in range(8)]
    out = np.array([box[0] for _, box in pipeline.settle_boxes(ramp, window=5)])
    np.testing.assert_allclose(out[:4], [2, 3, 4, 5])  # mean of i..i+4
    np.testing.assert_allclose(out[4:], [5, 5, 5, 5])  # the last full window
    short = np.array([box[0] for _, box in pipeline.settle_boxes(ramp[:3], window=5)])
    np.testing.assert_allclose(short, [1, 1, 1])  # a clip shorter than the window: the mean of all


def test_settle_boxes_holds_back_only_a_window_of_frames():
    pulled = []

    def detections():
        for i in range(100):
            pulled.append(i)
            yield i, (i, i, i, i)

    stream = pipeline.settle_boxes(detections(), window=5)
    assert next(stream)[0] == 0 and len(pulled) == 5  # frame 0 waits for frames 1..4, no more


def late_face_frames(n: int, first: int) -> list[np.ndarray]:
    """(100, 100, 3) frames, the index in the first pixel; a face (for `late_face`) from frame `first` on."""
    frames = [np.zeros((100, 100, 3), np.uint8) for _ in range(n)]
    for i, frame in enumerate(frames):
        frame[0, 0] = (i, i >= first, 0)
    return frames


def late_face(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """A fake detector: a face moving 1 px a frame where the frame says there is one."""
    i = int(rgb[0, 0, 0])
    return [(i, 10, i + 20, 50)] if rgb[0, 0, 1] else []


# frames read by the second pass before the first box comes: a smoothing window (5), or one frame, or
# up to frame 6, the next one the detector looks at when it skips two in three
@pytest.mark.parametrize("smooth, every, ahead", [(True, 1, 5), (False, 1, 1), (True, 3, 7)])
def test_a_late_face_is_found_by_a_first_read_that_holds_no_frames(monkeypatch, caplog, smooth, every, ahead):
    monkeypatch.setenv("DEEPFAKE_WORKERS", "1")  # no pool: the frames are pulled one at a time
    frames = late_face_frames(40, first=31)
    cfg = pipeline.BoxConfig(detect_every=every)
    with caplog.at_level("WARNING", logger=pipeline.log.name):
        want = pipeline.face_boxes(frames, cfg, smooth, detect=late_face)  # holds frames 0..30 meanwhile
    warning, reads, calls = caplog.text, [], []

    def open_frames():
        reads.append(0)
        for frame in frames:
            reads[-1] += 1
            yield frame

    def detect(rgb):
        calls.append(int(rgb[0, 0, 0]))
        return late_face(rgb)

    caplog.clear()
    with caplog.at_level("WARNING", logger=pipeline.log.name):
        stream = pipeline.stream_video_boxes(open_frames, cfg, smooth, detect)
        first = next(stream)
        assert reads == [32 if every == 1 else 34, ahead]  # up to the (first detected) face; then `ahead`
        got = [first[1]] + [box for _, box in stream]
    np.testing.assert_array_equal(got, want)  # the same boxes: the frames before the face take its box
    assert sorted(calls) == list(range(0, 40, every))  # each frame looked at once, over the two reads
    assert caplog.text == warning and "no face in 31 of 40 frames" in warning  # 31, 32 (every 3): 33's box
    with pytest.raises(UserError, match="no face found in any frame"):
        next(pipeline.stream_video_boxes(lambda: iter(late_face_frames(8, first=8)), cfg, detect=late_face))
    with pytest.raises(UserError, match="no frame could be decoded"):
        next(pipeline.stream_video_boxes(lambda: iter([]), cfg, detect=late_face))


def test_settle_boxes_given_the_first_box_yields_what_it_gives_after_waiting_for_it():
    a, b = (1, 2, 3, 4), (5, 6, 7, 8)
    detections = list(enumerate([None] * 7 + [a, None, b, None, a]))
    for window in (1, 5):
        want = list(pipeline.settle_boxes(detections, window=window))
        pulled = []
        stream = pipeline.settle_boxes(((pulled.append(i), (i, box))[1] for i, box in detections),
                                       window=window, first_box=a)
        assert next(stream)[0] == 0 and len(pulled) == window  # no waiting for frame 7
        got = [(0, want[0][1])] + list(stream)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_array_equal([box for _, box in got], [box for _, box in want])


def test_boxes_from_detector_processes_equal_those_found_in_process():
    from common.synthetic import make_identity, render_clip

    frames = render_clip(make_identity(4), frames=6, size=160).frames
    with DetectorProcesses(2) as detectors:
        in_workers = pipeline.face_boxes(frames, detect=detectors.detect)
    np.testing.assert_array_equal(in_workers, pipeline.face_boxes(frames))


def test_network_tensors_are_bgr_and_round_trip():
    red = np.zeros((1, 96, 96, 3), np.uint8)
    red[..., 0] = 255
    x = pipeline.to_network(red)
    assert x.shape == (1, 3, 96, 96)
    assert x[0, 2].min() == 1 and x[0, :2].max() == 0  # BGR: red is the last channel
    np.testing.assert_array_equal(pipeline.from_network(x), red)
    g = pipeline.generator_input(red)
    assert g.shape == (1, 6, 96, 96)
    assert g[0, :3, 48:].abs().max() == 0 and g[0, :3, :48].max() == 1 and g[0, 3:].min() == 0


def test_paste_replaces_only_the_lower_half_of_the_box_with_soft_edges():
    frame = np.zeros((50, 60, 3), np.uint8)
    out = pipeline.paste(frame, np.array([10, 5, 30, 45]), np.full((96, 96, 3), 200, np.uint8))
    assert (out[5 + 22 : 45 - 4, 10 + 2 : 30 - 2] == 200).all()  # below the seam, inside the edges
    assert not out[5 : 5 + 18].any()  # above the seam (0..45 %): the original face
    assert 0 < out[5 + 20, 15, 0] < 200  # inside the seam: a blend
    assert 0 < out[5 + 30, 10, 0] < out[5 + 30, 11, 0] < 200  # left side fades in over 10 % of the width
    assert 0 < out[5 + 30, 29, 0] < 200 and 0 < out[44, 20, 0] < 200  # right and bottom sides too
    out[5:45, 10:30] = 0
    assert not out.any()


def noise_clip(seed: int):
    """30 random 96 x 96 frames and 1.2 s of noise at 25 fps: (faces (30, 96, 96, 3), data.Clip)."""
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (30, 96, 96, 3), dtype=np.uint8)
    wav = (0.1 * rng.standard_normal(int(1.2 * 16000))).astype(np.float32)
    return faces, data.make_clip(faces, wav, 25.0, load("phase4_audio_driven", "audio_encoder"))


@pytest.mark.todo("p4.audio")
def test_training_batches_follow_the_index_rules():
    faces, clip = noise_clip(0)
    rng = np.random.default_rng(0)
    sync = data.syncnet_batch([clip], 4, rng, min_shift=5)
    assert sync["faces"].shape == (4, 15, 48, 96) and sync["audio"].shape == (4, 1, 80, 16)
    assert sync["labels"][:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    gen = data.generator_batch([clip], 2, rng)
    assert gen["faces"].shape == (2, 6, 5, 96, 96) and gen["target"].shape == (2, 3, 5, 96, 96)
    assert gen["audio"].shape == (2, 5, 1, 80, 16) and gen["mel"].shape == (2, 1, 80, 16)
    assert gen["faces"][:, :3, :, 48:].abs().max() == 0
    mel = torch.from_numpy(clip.mel)
    for b in range(2):  # find the window: target frames n..n+4 equal faces[n..n+4]
        n = next(i for i in range(26) if torch.equal(pipeline.to_network(faces[i : i + 1])[0],
                                                     gen["target"][b, :, 0]))
        for k in range(5):  # generator window of frame n + k starts at int(80 (n + k - 1) / 25)
            s = int(80 * ((n + k - 1) / 25))
            assert torch.equal(gen["audio"][b, k, 0], mel[:, s : s + 16])
        s = int(80 * (n / 25))
        assert torch.equal(gen["mel"][b, 0], mel[:, s : s + 16])


@pytest.mark.todo("p4.audio")
def test_paired_augmented_expert_batches():
    _, clip = noise_clip(1)
    plain = data.syncnet_batch([clip], 6, np.random.default_rng(2), min_shift=5, paired=True)
    assert plain["labels"][:, 0].tolist() == [1.0, 0.0] * 3
    for b in (0, 2, 4):  # the off-sync item shows the same faces with other audio
        assert torch.equal(plain["faces"][b], plain["faces"][b + 1])
        assert not torch.equal(plain["audio"][b], plain["audio"][b + 1])
    aug = data.syncnet_batch([clip], 6, np.random.default_rng(2), min_shift=5, paired=True, augment=True)
    assert aug["faces"].shape == (6, 15, 48, 96) and aug["audio"].shape == (6, 1, 80, 16)
    assert torch.equal(aug["faces"][0], aug["faces"][1])
    assert not torch.equal(aug["faces"][0], plain["faces"][0])
    assert aug["audio"].abs().max() <= 4.0
    still = np.full((5, 96, 96, 3), 100, np.uint8)
    moved = data.augment_faces(still, np.random.default_rng(3))
    assert moved.shape == still.shape and len(np.unique(moved.reshape(-1, 3), axis=0)) == 1  # one colour


@pytest.mark.todo("p4.audio")
def test_lrs2_layout_is_read(tmp_path):
    from PIL import Image
    from scipy.io import wavfile

    audio_encoder = load("phase4_audio_driven", "audio_encoder")
    clip_dir = tmp_path / "main" / "5535415699068794046" / "00001"
    clip_dir.mkdir(parents=True)
    for i in range(12):  # the published preprocess.py writes face crops n.jpg (any size) + audio.wav
        Image.fromarray(np.full((120, 100, 3), 10 * i, np.uint8)).save(clip_dir / f"{i}.jpg")  # test input
    wavfile.write(clip_dir / "audio.wav", 16000, np.zeros(int(0.48 * 16000), np.int16))
    (tmp_path / "train.txt").write_text("5535415699068794046/00001\nmissing/00002\n")
    clips = data.lrs2_clips(audio_encoder, tmp_path / "main", tmp_path / "train.txt")
    assert len(clips) == 1
    clip = clips[0]
    assert clip.faces.shape == (12, 96, 96, 3) and clip.fps == 25.0
    assert clip.faces[3].mean() == pytest.approx(30, abs=2)  # frames in numeric order (not 0, 1, 10, 11, 2)
    assert clip.mel.shape == (80, 1 + int(0.48 * 16000) // 200)
    with pytest.raises(UserError):
        data.lrs2_clips(audio_encoder, tmp_path / "main", tmp_path / "nope.txt")


def test_pads_that_leave_no_face_box_are_a_one_line_error():
    def one_face(rgb: np.ndarray) -> list:
        return [(40, 30, 100, 90)]

    frame = np.zeros((120, 160, 3), np.uint8)
    assert pipeline.detect_box(frame, pipeline.BoxConfig(pads=(0, 10, 0, 0)), detect=one_face) is not None
    with pytest.raises(UserError, match="--pads 0 -500 0 0"):
        pipeline.detect_box(frame, pipeline.BoxConfig(pads=(0, -500, 0, 0)), detect=one_face)


def test_sync_evaluation_of_a_too_short_clip_says_how_many_frames_it_needs():
    from phase4_audio_driven.eval_sync import evaluate_crops

    crops = np.zeros((4, 96, 96, 3), np.uint8)  # fewer frames than one 5-frame window
    with pytest.raises(UserError, match="at least 35 are needed"):
        evaluate_crops(None, crops, np.zeros(16000, np.float32), 25.0, vshift=15)


def test_silence_is_audio_whose_peak_stays_below_the_silence_peak():
    assert pipeline.is_silent(np.zeros(16000, np.float32))
    assert pipeline.is_silent(np.zeros(0, np.float32))
    assert not pipeline.is_silent(np.full(16000, 10 * pipeline.SILENCE_PEAK, np.float32))
    quiet = np.zeros(16000, np.float64)
    quiet[100] = -pipeline.SILENCE_PEAK  # one sample at the peak, either sign: not silence
    assert not pipeline.is_silent(quiet)
    assert pipeline.is_silent(0.99 * quiet)


@pytest.mark.todo("p4.audio", "p4.sync")
def test_sync_evaluation_scores_only_the_frames_the_audio_covers(capsys):
    import torch

    from common.impl import load
    from phase4_audio_driven.eval_sync import evaluate_crops

    torch.manual_seed(0)
    expert = load("phase4_audio_driven", "lip_sync").SyncNet(0.125).eval()
    crops = np.random.default_rng(0).integers(0, 255, (60, 96, 96, 3), dtype=np.uint8)
    scores = evaluate_crops(expert, crops, np.random.default_rng(1).standard_normal(32000).astype(np.float32),
                            25.0, vshift=15)  # 2 s of audio for a 2.4 s clip
    assert len(scores.mean_dists) == 31
    assert "the audio ends before the video" in capsys.readouterr().out


def test_detect_box_scales_a_downscaled_detection_back_and_puts_each_pad_on_its_side():
    frame = np.zeros((720, 960, 3), np.uint8)  # wider than 480 px: the detector sees a 480 x 360 copy
    cfg = pipeline.BoxConfig(pads=(1, 2, 3, 4), chin_margin=0.0)  # top, bottom, left, right

    def one_face(small: np.ndarray) -> list:
        assert small.shape[:2] == (360, 480)
        return [(100, 50, 200, 170)]  # (left, top, right, bottom) in the copy

    assert pipeline.detect_box(frame, cfg, detect=one_face) == (200 - 3, 100 - 1, 400 + 4, 340 + 2)


def _clip(frames: int = 30, seed: int = 0):
    from phase4_audio_driven.data import WINDOW, TalkingClip

    rng = np.random.default_rng(seed)
    starts = (80 * np.arange(frames)) // 25
    usable = np.arange(frames) <= frames - WINDOW
    return TalkingClip(rng.integers(0, 256, (frames, 96, 96, 3), dtype=np.uint8),
                       rng.standard_normal((80, int(starts[-1]) + 16)).astype(np.float32), 25.0,
                       np.where(usable, starts, -1), starts, usable)  # syncnet windows, per-frame windows


def test_generator_reference_window_comes_from_another_moment():
    """The reference frames (channels 3-5) never overlap the target window (Wav2Lip: a random other
    window, so that the mouth cannot be copied)."""
    from phase4_audio_driven import data, pipeline

    clip = _clip()
    frames = pipeline.to_network(clip.faces)  # (T, 3, 96, 96)

    def start(window: torch.Tensor) -> int:
        return next(i for i in range(len(frames)) if torch.equal(frames[i], window))

    batch = data.generator_batch([clip], 16, np.random.default_rng(0))
    for b in range(16):
        n = start(batch["target"][b, :, 0])
        ref = start(batch["faces"][b, 3:, 0])
        assert abs(ref - n) >= data.WINDOW, (n, ref)


def test_frames_before_the_first_face_count_in_the_tail_window():
    """A clip shorter than the window: every frame gets the mean of all its gap-filled boxes, the
    frames before the first face counting with the first face's box (destination: test_pipeline.py)."""
    a, b = (0.0, 0.0, 10.0, 10.0), (4.0, 4.0, 14.0, 14.0)
    out = list(settle_boxes([(0, None), (1, None), (2, a), (3, b)], window=5))
    assert [item for item, _ in out] == [0, 1, 2, 3]
    expected = (3 * np.array(a) + np.array(b)) / 4
    for _, box in out:
        np.testing.assert_allclose(box, expected)


def test_augmentation_zooms_about_the_crop_centre():
    from phase4_audio_driven.data import Augment, augment_faces

    faces = np.zeros((5, 96, 96, 3), np.uint8)
    faces[:, 40:56, 40:56] = 255  # a square around the centre (47.5, 47.5)
    zoom_only = Augment(gain=0.0, shift=0.0, scale=0.05)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        out = augment_faces(faces, rng, zoom_only)[0, ..., 0].astype(float)
        ys, xs = np.mgrid[:96, :96]
        centre = ((out * ys).sum() / out.sum(), (out * xs).sum() / out.sum())
        assert centre == pytest.approx((47.5, 47.5), abs=0.3), seed


def test_audio_augmentation_is_8_over_100_per_db():
    from phase4_audio_driven.data import augment_mel

    mel = torch.zeros(1, 80, 16)
    for seed in range(3):
        gain_db = np.random.default_rng(seed).uniform(-6.0, 6.0)
        out = augment_mel(mel, np.random.default_rng(seed))
        assert torch.allclose(out, torch.full_like(mel, 0.08 * gain_db)), seed


def test_detect_box_lengthens_the_box_by_the_chin_margin_of_its_height_then_adds_the_bottom_pad():
    def wide_face(rgb: np.ndarray) -> list:
        return [(40, 30, 100, 70)]  # 60 px wide, 40 px high

    frame = np.zeros((120, 160, 3), np.uint8)  # under 480 px: detected as it is
    # defaults: bottom 70 + 0.15 x 40 (the height, not the width) = 76, then the bottom pad of 10 px
    assert pipeline.detect_box(frame, detect=wide_face) == (40, 30, 100, 86)


def test_detect_box_clamps_a_padded_box_to_the_frame_on_every_side():
    def past_the_edges(rgb: np.ndarray) -> list:
        return [(-10, -5, 170, 130)]  # dlib's boxes may reach past the image

    frame = np.zeros((120, 160, 3), np.uint8)
    cfg = pipeline.BoxConfig(pads=(5, 5, 5, 5), chin_margin=0.0)
    assert pipeline.detect_box(frame, cfg, detect=past_the_edges) == (0, 0, 160, 120)


def test_pads_that_leave_a_box_of_zero_width_are_a_one_line_error_too():
    def one_face(rgb: np.ndarray) -> list:
        return [(40, 30, 100, 90)]

    frame = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(UserError, match="--pads 0 0 -30 -30 leave nothing"):  # left = right = 70
        pipeline.detect_box(frame, pipeline.BoxConfig(pads=(0, 0, -30, -30)), detect=one_face)


def test_a_smoothing_window_below_one_means_no_smoothing():
    detections = [(i, (i, i, i, i)) for i in range(4)]
    for window in (0, -3):
        out = list(pipeline.settle_boxes(detections, window=window))
        assert [i for i, _ in out] == [0, 1, 2, 3]
        np.testing.assert_array_equal([box for _, box in out], [box for _, box in detections])


def test_a_clip_without_any_face_is_only_the_error_not_a_warning_about_reused_boxes(caplog):
    with caplog.at_level("WARNING", logger=pipeline.log.name), pytest.raises(UserError, match="no face"):
        list(pipeline.settle_boxes(enumerate([None, None, None]), window=1))
    assert "reuse the last box" not in caplog.text


def test_crop_takes_exactly_the_box_rows_top_to_bottom_and_columns_left_to_right():
    frame = np.zeros((100, 120, 3), np.uint8)
    frame[20:60, 10:90] = 200  # the box (left 10, top 20, right 90, bottom 60): 80 wide, 40 high
    face = pipeline.crop(frame, np.array([10, 20, 90, 60]))
    assert face.shape == (96, 96, 3) and (face == 200).all()  # no row or column from outside the box


def test_network_output_is_clamped_to_0_255_and_rounded_to_the_nearest_level():
    x = torch.zeros(1, 3, 96, 96)
    x[0, 2, 0, 0] = -0.5  # BGR: channel 2 is red
    x[0, 2, 0, 1] = 1.5
    x[0, 2, 0, 2] = 100.7 / 255
    x[0, 2, 0, 3] = 100.3 / 255
    assert pipeline.from_network(x)[0, 0, :4, 0].tolist() == [0, 255, 101, 100]


def test_paste_blends_in_from_45_percent_of_the_box_height_over_the_seam():
    frame = np.zeros((50, 60, 3), np.uint8)
    out = pipeline.paste(frame, np.array([10, 5, 30, 45]), np.full((96, 96, 3), 200, np.uint8))
    # rows of a 40 px box at (r + 0.5) / 40; weight (row - 0.45) / 0.1 inside the seam: 0.125, 0.375, 0.625
    assert out[5 + 17 : 5 + 21, 20, 0].tolist() == [0, 25, 75, 125]


def test_paste_fades_the_bottom_over_edge_times_the_box_height_whatever_the_seam():
    frame = np.zeros((50, 60, 3), np.uint8)
    out = pipeline.paste(frame, np.array([10, 5, 30, 45]), np.full((96, 96, 3), 200, np.uint8),
                         seam=0.1, edge=0.3)
    # row 35 of the box: (1 - 35.5 / 40) / 0.3 = 0.375 of the face; the middle column is past the side fades
    assert out[5 + 35, 20, 0] == 75


def test_lip_sync_runs_the_generator_in_evaluation_mode_and_pastes_its_faces():
    class Echo(torch.nn.Module):
        """Returns the unmasked crop it is given, and notes whether it ran in training mode."""

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))
            self.modes = []

        def forward(self, mel, faces):
            self.modes.append(self.training)
            return faces[:, 3:] * self.scale

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(3)]
    box = np.array([20, 10, 60, 50])
    generator = Echo().train()
    chunks = np.zeros((3, 80, 16), np.float32)
    out = list(pipeline.lip_sync(generator, iter([(f, box) for f in frames]), chunks, batch_size=2))
    assert generator.modes == [False, False]  # two batches, neither in training mode
    for frame, got in zip(frames, out, strict=True):
        np.testing.assert_array_equal(got, pipeline.paste(frame, box, pipeline.crop(frame, box)))


def test_detect_box_takes_the_first_face_the_detector_lists_which_is_the_largest():
    def two_faces(rgb: np.ndarray) -> list:
        return [(40, 30, 100, 90), (0, 0, 20, 20)]  # largest first, as dlib_models.detect_faces sorts them

    frame = np.zeros((120, 160, 3), np.uint8)
    cfg = pipeline.BoxConfig(pads=(0, 0, 0, 0), chin_margin=0.0)
    assert pipeline.detect_box(frame, cfg, detect=two_faces) == (40, 30, 100, 90)
