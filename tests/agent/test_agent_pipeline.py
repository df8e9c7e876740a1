"""The pipeline's contract: stages overlap, queues stay bounded, ends and failures reach the loop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from scripted_source import Opener, Recorder, Scripted

from edgekit.agent.errors import AgentError
from edgekit.agent.grabber import Grabber
from edgekit.agent.pipeline import Pipeline, SourceEnded


def started_pipeline(frames, prepare, infer, live=False):
    recorder = Recorder()
    grabber = Grabber(Opener(), "every", 5.0, recorder.log, recorder.count)
    grabber.start(Scripted(frames, live=live))
    pipeline = Pipeline(grabber, prepare, infer)
    pipeline.start()
    return pipeline


def collect(pipeline, timeout=5.0):
    values = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = pipeline.next(0.05)
        except SourceEnded:
            return values
        if item is not None:
            values.append(item)
    raise AssertionError(f"the pipeline did not end; got {len(values)} results")


def test_every_frame_comes_out_in_order_with_its_outputs_then_the_end():
    pipeline = started_pipeline(
        range(20), prepare=lambda image: image.astype(np.float32) * 2, infer=lambda tensor: [tensor + 1]
    )
    results = collect(pipeline)
    pipeline.close()
    assert [r.frame.number for r in results] == list(range(20))
    assert [float(r.outputs[0][0, 0, 0]) for r in results] == [2.0 * v + 1 for v in range(20)]
    assert all(r.pre_s >= 0 and r.infer_s >= 0 and r.frame.grab_s >= 0 for r in results)


def test_the_next_frame_is_preprocessed_while_the_engine_runs():
    second_prepared = threading.Event()
    overlapped = []

    def prepare(image):
        if int(image[0, 0, 0]) == 1:
            second_prepared.set()
        return image

    def infer(tensor):
        if int(tensor[0, 0, 0]) == 0:
            # Frame 1 can only be prepared now if preprocessing runs beside inference.
            overlapped.append(second_prepared.wait(5.0))
        return [tensor]

    pipeline = started_pipeline(range(3), prepare, infer)
    assert len(collect(pipeline)) == 3
    pipeline.close()
    assert overlapped == [True]


def test_a_stalled_engine_holds_back_preprocessing_and_reading():
    release = threading.Event()
    prepared = []
    source = Scripted(range(100), live=False)
    recorder = Recorder()
    grabber = Grabber(Opener(), "every", 30.0, recorder.log, recorder.count)
    grabber.start(source)

    def prepare(image):
        prepared.append(int(image[0, 0, 0]))
        return image

    pipeline = Pipeline(grabber, prepare, lambda tensor: [tensor] if release.wait(10) else [])
    pipeline.start()
    time.sleep(0.5)
    # One frame in the engine, two queued after it, one being prepared: nothing grows.
    assert len(prepared) <= 5
    assert len(source._frames) >= 100 - 12
    release.set()
    assert len(collect(pipeline)) == 100
    pipeline.close()


def test_a_failing_stage_raises_its_error_in_the_loop():
    def infer(tensor):
        raise RuntimeError("engine lost")

    pipeline = started_pipeline(range(3), prepare=lambda image: image, infer=infer)
    with pytest.raises(RuntimeError, match="engine lost"):
        collect(pipeline)
    pipeline.close()


def test_close_returns_promptly_while_frames_are_still_coming():
    pipeline = started_pipeline(range(10_000), prepare=lambda image: image, infer=lambda tensor: [tensor])
    assert pipeline.next(2.0) is not None
    started = time.monotonic()
    pipeline.close()
    assert time.monotonic() - started < 2.0


def test_a_file_that_fails_part_way_is_an_error_not_an_end():
    pipeline = started_pipeline([0, "fail"], prepare=lambda image: image, infer=lambda tensor: [tensor])
    with pytest.raises(AgentError, match="the image is corrupt"):
        collect(pipeline)
    pipeline.close()


def test_close_tells_whether_an_inference_is_still_running():
    running, release = threading.Event(), threading.Event()

    def infer(tensor):
        running.set()
        release.wait(10)
        return [tensor]

    recorder = Recorder()
    grabber = Grabber(Opener(), "every", 5.0, recorder.log, recorder.count)
    grabber.start(Scripted(range(3)))
    pipeline = Pipeline(grabber, lambda image: image, infer, stop_timeout_s=0.2)
    pipeline.start()
    assert running.wait(5)
    started = time.monotonic()
    assert pipeline.close() is False
    assert time.monotonic() - started < 2
    release.set()
    assert pipeline.close() is True


def test_the_backend_is_closed_only_once_inference_has_stopped():
    from edgekit.agent.service import BackendOwner, stop_pipeline

    class Backend:
        closed = False

        def close(self):
            self.closed = True

    class Stuck:
        def close(self):
            return False

    class Stopped:
        def close(self):
            return True

    for pipeline, closed in ((Stuck(), False), (Stopped(), True)):
        backend = Backend()
        owner = BackendOwner(backend)
        # The order the service's exit stack runs them in: the pipeline, then the backend.
        stop_pipeline(pipeline, owner)
        owner.close()
        assert backend.closed is closed
