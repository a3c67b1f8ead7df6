"""dlib's face detector in worker processes answers exactly as it does in this process."""

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
