"""The grabber's contract: drop policies, read deadlines, reconnects with backoff.

The sources here are scripted so the timing is exact; the same paths run against a real
RTSP server in test_agent_sources.py and on the twin in tests/e2e/test_camera_twin.py.
"""

from __future__ import annotations

import time

import pytest
from scripted_source import Opener, Recorder, Scripted

from edgekit.agent.errors import AgentError
from edgekit.agent.grabber import MAX_STUCK, Backoff, Grabber


def drain(grabber, count, timeout=5.0):
    values = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        frame = grabber.get(0.05)
        if frame is not None:
            values.append(int(frame.image[0, 0, 0]))
    return values


def fast_backoff():
    return Backoff(first=0.01, cap=0.05)


def test_every_policy_hands_over_each_frame_in_order_and_ends_with_the_file():
    recorder = Recorder()
    source = Scripted(range(10), live=False)
    grabber = Grabber(Opener(), "every", 1.0, recorder.log, recorder.count)
    grabber.start(source)
    assert drain(grabber, 10) == list(range(10))
    deadline = time.monotonic() + 2
    while not grabber.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert grabber.ended
    assert grabber.get(0.01) is None
    assert source.closed.is_set()
    assert recorder.counts["frames_dropped"] == 0
    grabber.close()


def test_every_policy_holds_the_reader_back_instead_of_growing():
    recorder = Recorder()
    source = Scripted(range(100), live=False)
    grabber = Grabber(Opener(), "every", 1.0, recorder.log, recorder.count)
    grabber.start(source)
    time.sleep(0.3)
    # Only the bounded queue's worth was read ahead of a consumer that took nothing.
    assert len(source._frames) >= 100 - 5
    assert drain(grabber, 100) == list(range(100))
    grabber.close()


def test_latest_policy_keeps_only_the_newest_frame_and_counts_the_rest():
    recorder = Recorder()
    source = Scripted(list(range(50)) + ["block"], live=True)
    grabber = Grabber(Opener(), "latest", 30.0, recorder.log, recorder.count)
    grabber.start(source)
    deadline = time.monotonic() + 2
    while source._frames and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    frame = grabber.get(0.5)
    assert int(frame.image[0, 0, 0]) == 49
    assert recorder.counts["frames_dropped"] == 49
    assert grabber.get(0.05) is None
    source.release.set()
    grabber.close()


def test_a_lost_live_source_is_reopened_with_backoff_and_frames_resume():
    recorder = Recorder()
    first, second = Scripted([1, 2]), Scripted([3, 4] + ["block"])
    opener = Opener(AgentError("source", "camera gone"), AgentError("source", "camera gone"), second)
    grabber = Grabber(opener, "every", 1.0, recorder.log, recorder.count, fast_backoff())
    grabber.start(first)
    assert drain(grabber, 4) == [1, 2, 3, 4]
    assert first.closed.is_set()
    assert opener.opened == 3
    assert recorder.counts["source_reconnects"] == 1
    assert any("lost the source scripted" in line for line in recorder.lines)
    assert sum("cannot open the source (camera gone)" in line for line in recorder.lines) == 2
    second.release.set()
    grabber.close()


def test_a_read_that_hangs_is_abandoned_at_the_deadline_and_a_new_capture_opened():
    recorder = Recorder()
    hung, fresh = Scripted([1, "block"]), Scripted([2, 3, "block"])
    grabber = Grabber(Opener(fresh), "every", 0.3, recorder.log, recorder.count, fast_backoff())
    started = time.monotonic()
    grabber.start(hung)
    assert drain(grabber, 3) == [1, 2, 3]
    assert 0.3 <= time.monotonic() - started < 3.0
    assert recorder.counts["source_reconnects"] == 1
    assert any("did not answer a read within 0.3 s" in line for line in recorder.lines)
    # The abandoned capture is closed as soon as its read finally returns.
    assert not hung.closed.is_set()
    hung.release.set()
    assert hung.closed.wait(2.0)
    fresh.release.set()
    grabber.close()


def test_close_stops_a_reader_waiting_for_a_consumer():
    recorder = Recorder()
    source = Scripted(range(100), live=False)
    grabber = Grabber(Opener(), "every", 1.0, recorder.log, recorder.count)
    grabber.start(source)
    time.sleep(0.1)
    grabber.close()
    assert source.closed.wait(2.0)


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(first=0.5, cap=4.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_an_unknown_drop_policy_is_refused():
    with pytest.raises(ValueError, match="drop must be one of"):
        Grabber(Opener(), "oldest", 1.0, print, print)


def test_a_slow_file_is_never_abandoned_or_replayed():
    recorder = Recorder()
    source = Scripted([0, ("late", 1), 2], live=False)
    grabber = Grabber(Opener(), "every", 0.2, recorder.log, recorder.count)
    grabber.start(source)
    time.sleep(0.6)
    source.release.set()
    assert drain(grabber, 3) == [0, 1, 2]
    assert recorder.counts["source_reconnects"] == 0
    grabber.close()


def test_a_file_that_fails_part_way_ends_with_its_reason():
    recorder = Recorder()
    grabber = Grabber(Opener(), "every", 1.0, recorder.log, recorder.count)
    grabber.start(Scripted([0, 1, "fail", 3], live=False))
    assert drain(grabber, 2) == [0, 1]
    deadline = time.monotonic() + 2
    while not grabber.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert grabber.ended and grabber.failure == "the source failed (the image is corrupt)"
    grabber.close()


def test_an_abandoned_captures_late_frame_is_not_handed_over():
    recorder = Recorder()
    hung, fresh = Scripted([("late", 99)]), Scripted([1, "block"])
    grabber = Grabber(Opener(fresh), "latest", 0.2, recorder.log, recorder.count, fast_backoff())
    grabber.start(hung)
    assert drain(grabber, 1) == [1]
    hung.release.set()
    assert hung.closed.wait(2.0)
    assert grabber.get(0.2) is None
    fresh.release.set()
    grabber.close()


def test_captures_stuck_in_the_driver_are_capped():
    recorder = Recorder()
    stuck = [Scripted(["block"]) for _ in range(6)]
    opener = Opener(*stuck[1:])
    grabber = Grabber(opener, "latest", 0.1, recorder.log, recorder.count, fast_backoff())
    grabber.start(stuck[0])
    time.sleep(1.5)
    # The first capture and MAX_STUCK more are abandoned; then nothing new is tried.
    assert opener.opened == MAX_STUCK
    assert any("captures are stuck in the driver" in line for line in recorder.lines)
    stuck[0].release.set()
    deadline = time.monotonic() + 2
    while opener.opened == MAX_STUCK and time.monotonic() < deadline:
        time.sleep(0.01)
    # One returned, so one more is tried.
    assert opener.opened == MAX_STUCK + 1
    for source in stuck:
        source.release.set()
    grabber.close()
