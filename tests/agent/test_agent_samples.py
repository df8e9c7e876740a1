"""The recalibration ring: sampled at its rate, bounded, readable JPEGs, never fatal."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from edgekit.agent.config import SamplesConfig
from edgekit.agent.errors import AgentError
from edgekit.agent.samples import SampleRing


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now


def frame(value):
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[:, :, 1] = value
    return image


def test_one_frame_per_period_is_kept_and_the_oldest_go_first(tmp_path):
    clock, lines = Clock(), []
    ring = SampleRing(SamplesConfig(dir=str(tmp_path / "samples"), every_s=10.0, keep=3), lines.append, clock)
    kept = []
    for step in range(12):
        path = ring.offer(frame(step * 20))
        if path:
            kept.append(path)
        clock.now += 5.0
    # Every other offer is due (5 s steps, 10 s period): 6 written, the newest 3 remain.
    assert len(kept) == 6
    assert sorted(os.listdir(tmp_path / "samples")) == [os.path.basename(p) for p in kept[-3:]]
    newest = cv2.imread(kept[-1])
    assert newest.shape == (48, 64, 3)
    assert abs(int(newest[24, 32, 1]) - 200) <= 2
    assert lines == []


def test_a_restarted_service_keeps_counting_the_frames_already_on_disk(tmp_path):
    config = SamplesConfig(dir=str(tmp_path), every_s=0.0, keep=2)
    clock = Clock()
    SampleRing(config, print, clock).offer(frame(1))
    clock.now += 1
    SampleRing(config, print, clock).offer(frame(2))
    clock.now += 1
    SampleRing(config, print, clock).offer(frame(3))
    assert len(os.listdir(tmp_path)) == 2


def test_a_write_failure_is_logged_once_and_the_ring_carries_on(tmp_path):
    clock, lines = Clock(), []
    target = tmp_path / "samples"
    ring = SampleRing(SamplesConfig(dir=str(target), every_s=0.0, keep=5), lines.append, clock)
    target.rmdir()
    target.write_text("not a folder")
    for _ in range(3):
        assert ring.offer(frame(9)) is None
        clock.now += 1
    assert len(lines) == 1 and "cannot keep a sample frame" in lines[0]
    target.unlink()
    target.mkdir()
    assert ring.offer(frame(9)) is not None


def test_samples_of_the_same_millisecond_are_kept_apart(tmp_path):
    ring = SampleRing(SamplesConfig(dir=str(tmp_path), every_s=0.0, keep=3), print, Clock())
    paths = [ring.offer(frame(value)) for value in (1, 2, 3, 4)]
    assert len(set(paths)) == 4
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(p) for p in paths[1:]]


def test_a_sample_folder_the_service_may_not_create_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AgentError) as caught:
        SampleRing(SamplesConfig(dir=str(blocker / "samples")), print)
    assert caught.value.kind == "config" and "set samples.dir" in caught.value.message
