"""common.parallel.ordered_map: order, errors, early stop, bounded look-ahead; dlib detection in threads."""

from __future__ import annotations

import os
import threading
import time

import pytest

from common import dlib_models
from common.parallel import ENV_WORKERS, MAX_WORKERS, ordered_map, worker_count


def test_results_come_in_input_order_although_workers_finish_out_of_order():
    def slow_for_small(x: int) -> int:
        time.sleep(0.002 * (10 - x))  # the first items take longest
        return x * x

    assert list(ordered_map(slow_for_small, range(10), workers=4)) == [x * x for x in range(10)]


def test_one_worker_is_a_plain_map_in_the_callers_thread():
    caller = threading.get_ident()
    assert set(ordered_map(lambda _: threading.get_ident(), range(5), workers=1)) == {caller}


def test_an_error_in_the_function_is_raised_at_its_position():
    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x

    got = []
    with pytest.raises(ValueError, match="three"):
        for value in ordered_map(fail_on_three, range(10), workers=3):
            got.append(value)
    assert got == [0, 1, 2]


def test_an_error_in_the_input_is_raised_after_the_items_before_it():
    def items():
        yield from range(4)
        raise RuntimeError("decoder broke")

    got = []
    with pytest.raises(RuntimeError, match="decoder broke"):
        for value in ordered_map(lambda x: x + 1, items(), workers=2):
            got.append(value)
    assert got == [1, 2, 3, 4]


def test_stopping_early_stops_pulling_from_the_input():
    pulled = []

    def items():
        for i in range(1000):
            pulled.append(i)
            yield i

    stream = ordered_map(lambda x: x, items(), workers=2, ahead=4)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert len(pulled) <= 3 + 4 + 2  # what was taken, what was in flight, the feeder's last pull


def test_worker_count_follows_the_environment(monkeypatch):
    monkeypatch.setenv("DEEPFAKE_WORKERS", "3")
    assert worker_count() == 3
    monkeypatch.setenv("DEEPFAKE_WORKERS", "1")
    assert list(ordered_map(str, [1, 2])) == ["1", "2"]
    monkeypatch.delenv("DEEPFAKE_WORKERS")
    assert 1 <= worker_count() <= 16


def test_dlib_detection_on_threads_equals_detection_in_one_thread():
    from common.synthetic import make_identity, render_clip

    frames = render_clip(make_identity(2), frames=6, size=192).frames
    serial = [dlib_models.detect_faces(f) for f in frames]
    threaded = list(ordered_map(dlib_models.detect_faces, frames, workers=3))
    assert threaded == serial and all(serial)


def test_a_bad_worker_count_is_a_user_error(monkeypatch):
    from common.errors import UserError

    monkeypatch.setenv("DEEPFAKE_WORKERS", "many")
    with pytest.raises(UserError, match="DEEPFAKE_WORKERS"):
        worker_count()


def test_a_pool_runs_opencv_one_thread_per_call(monkeypatch):
    import cv2

    from common.errors import UserError

    def threads(_: int) -> int:
        return cv2.getNumThreads()

    before = cv2.getNumThreads()
    try:
        monkeypatch.delenv("DEEPFAKE_OPENCV_THREADS", raising=False)
        assert list(ordered_map(threads, [0, 1], workers=2)) == [1, 1]  # our frames, its threads
        monkeypatch.setenv("DEEPFAKE_OPENCV_THREADS", "2")
        assert list(ordered_map(threads, [0, 1], workers=2)) == [2, 2]
        monkeypatch.setenv("DEEPFAKE_OPENCV_THREADS", "many")
        with pytest.raises(UserError, match="DEEPFAKE_OPENCV_THREADS"):
            list(ordered_map(threads, [0, 1], workers=2))
    finally:
        cv2.setNumThreads(before)


def test_zero_workers_means_one():
    assert list(ordered_map(str, [1, 2, 3], workers=0)) == ["1", "2", "3"]


def test_worker_count_is_at_least_one_and_at_most_16(monkeypatch):
    monkeypatch.setenv(ENV_WORKERS, "0")
    assert worker_count() == 1
    monkeypatch.delenv(ENV_WORKERS)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert worker_count() == MAX_WORKERS == 16
