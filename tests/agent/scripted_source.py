"""Sources whose every frame, loss and hang is scripted, for exact grabber and pipeline tests."""

from __future__ import annotations

import collections
import threading

import numpy as np

from edgekit.agent.errors import AgentError


class Scripted:
    """A source that plays ``frames`` values; running out loses the source, "block" hangs the
    read, "fail" raises, ("late", v) returns v once ``release`` is set."""

    def __init__(self, frames, live=True, fps=None):
        self._frames = collections.deque(frames)
        self.live = live
        self.fps = fps
        self.description = "scripted"
        self.closed = threading.Event()
        self.release = threading.Event()

    def read(self):
        if not self._frames:
            return None
        item = self._frames.popleft()
        if item == "block":
            self.release.wait()
            return None
        if item == "fail":
            raise AgentError("source", "the image is corrupt")
        if isinstance(item, tuple):
            # ("late", value): the read returns value, but only after ``release``.
            self.release.wait()
            item = item[1]
        return np.full((2, 2, 3), item, dtype=np.uint8)

    def close(self):
        self.closed.set()


class Opener:
    """Hands out the given sources in turn; an AgentError in the list fails that open."""

    def __init__(self, *sources):
        self.sources = collections.deque(sources)
        self.opened = 0

    def __call__(self):
        self.opened += 1
        item = self.sources.popleft()
        if isinstance(item, Exception):
            raise item
        return item


class Recorder:
    def __init__(self):
        self.lines = []
        self.counts = collections.Counter()

    def log(self, line):
        self.lines.append(line)

    def count(self, name):
        self.counts[name] += 1
