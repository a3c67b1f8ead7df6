"""dlib's face detector in worker processes answers exactly as it does in this process."""

import io
import queue
from types import SimpleNamespace

import numpy as np
import pytest

from common import dlib_models
from common.detector_processes import DetectorProcesses
from common.errors import UserError
from common.synthetic import make_identity, render_clip


def test_worker_processes_find_the_same_boxes_as_this_process():
    frames = render_clip(make_identity(2), frames=3, size=192).frames
    blank = np.zeros((120, 160, 3), np.uint8)
    with DetectorProcesses(2) as detectors:
        for image in [*frames, blank]:
            assert detectors.detect(image) == dlib_models.detect_faces(image)
    assert all(worker.poll() is not None for worker in detectors._workers)


def test_a_stopped_worker_is_an_error_not_an_empty_answer():
    with DetectorProcesses(1) as detectors:
        detectors._workers[0].kill()
        detectors._workers[0].wait()
        stopped = r"face-detector process stopped.*killed by signal 9.*DEEPFAKE_WORKERS"
        with pytest.raises(UserError, match=stopped):
            detectors.detect(np.zeros((80, 80, 3), np.uint8))  # one line for the user: not a bug here


def test_the_detector_processes_pass_upsample_on():
    small = render_clip(make_identity(5), frames=1, size=80, speech=False).frames[0]  # a 36 px face
    assert dlib_models.detect_faces(small, 0) == []
    assert dlib_models.detect_faces(small, 1)  # found only when upsampled
    with DetectorProcesses(1) as workers:
        assert workers.detect(small, upsample=1) == dlib_models.detect_faces(small, 1)


def test_zero_workers_still_start_one():
    with DetectorProcesses(0) as detectors:
        assert len(detectors._workers) == 1
        assert detectors.detect(np.zeros((40, 40, 3), np.uint8)) == []


def stand_in(answers: bytes) -> tuple[DetectorProcesses, SimpleNamespace]:
    """DetectorProcesses with one stand-in worker (no process) that gives `answers`, and that worker."""
    worker = SimpleNamespace(stdin=io.BytesIO(), stdout=io.BytesIO(answers), poll=lambda: None)
    detectors = DetectorProcesses.__new__(DetectorProcesses)
    detectors._workers, detectors._idle = [worker], queue.SimpleQueue()
    detectors._idle.put(worker)
    return detectors, worker


def test_an_image_that_is_not_rgb_is_refused_before_a_worker_sees_it():
    detectors, worker = stand_in(b"\n\n")
    for image in (np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8)):
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            detectors.detect(image)
    assert worker.stdin.getvalue() == b""  # nothing sent: the worker's stream stays in step


def test_a_detector_error_in_the_worker_is_one_answer_line_and_the_worker_goes_on(monkeypatch):
    from common import detector_processes

    def broken(rgb, upsample):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(dlib_models, "detect_faces", broken)
    request = detector_processes._HEADER.pack(2, 3, 0) + bytes(2 * 3 * 3)
    answers = io.BytesIO()
    detector_processes.serve(io.BytesIO(request * 2), answers)
    assert answers.getvalue() == b"!first line second line\n" * 2


def test_an_error_answer_is_raised_in_the_caller():
    detectors, _ = stand_in(b"!out of memory\n")
    with pytest.raises(RuntimeError, match="^face-detector process: out of memory$"):
        detectors.detect(np.zeros((4, 4, 3), np.uint8))
