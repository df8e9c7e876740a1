"""Input drift: how far the frames the camera sees now are from the release's calibration set.

INT8 scales fit the calibration data; when the scene moves away from it (night, rain, a new
site, a moved camera) the ranges go stale. The same cheap statistics are kept here for both
sides, so the host's reference (``edgekit.bundle`` writes ``drift.json`` from the calibration
*images*) and the service's window (every ``EVERY``-th frame) are one implementation:

- of each frame, on a ``SIZE`` downscaled copy: luma mean and variance, a 16-bin luma
  histogram, a 5x5 chroma (Cr, Cb) histogram whose middle bin holds grey, and a 16x9
  thumbnail (the sample ring's descriptor, see samples.py);
- of the model's outputs, the top score: top-1 probability for classifiers, the best box
  score for box tasks, nothing for raw outputs.

The drift score is the largest of four distances, each bounded by 0 and 1:

- Jensen-Shannon distance (base 2: the square root of the JS divergence) between the
  window's and the reference's mean luma histograms, chroma histograms and top-score
  histograms. JS is symmetric, defined when a bin is empty on one side (unlike KL or PSI,
  which need smoothing and are unbounded), and its square root is a metric in [0, 1];
- Hellinger distance between normal laws fitted to the pooled luma pixels of both sides
  (mean and spread): 0 for the same mean and spread, towards 1 as they part. It is a
  standardised mean shift and a contrast change on the same [0, 1] scale as the others.

The maximum keeps the score bounded and names the sign that fired (the components are in
the metrics). ``THRESHOLD`` 0.3 comes from the sample digits scene, 300 calibration images
against its clip (other digits, MJPG-compressed, another size): the clip scores 0.07 over its
300 frames and at most 0.14 over 100 of them (a null JS distance shrinks as the window grows;
the top-score histogram is the noisiest part); the clip at half the light scores 0.46, at
half the light and 60 % of the contrast 0.82. Below ``MIN_FRAMES`` sampled frames no score
is reported.
"""

from __future__ import annotations

import collections
import json
import math
import os
from typing import Any, Iterable, NamedTuple, Sequence

import cv2
import numpy as np

from .config import BOX_TASKS, DetectConfig, Release

DRIFT_FILE = "drift.json"
FORMAT = 1
# (width, height): what every statistic is computed on; a frame of any size costs the same.
SIZE = (64, 36)
THUMBNAIL = (16, 9)
LUMA_BINS = 16
COLOUR_LEVELS = 5
COLOURS = COLOUR_LEVELS**2
SCORE_BINS = 5
# Every 10th frame, the newest 300 of them: 100 s of a 30 fps camera.
EVERY = 10
WINDOW = 300
MIN_FRAMES = 100
THRESHOLD = 0.3
COMPONENTS = ("luma", "colour", "level", "score")


class FrameStats(NamedTuple):
    luma_mean: float
    luma_var: float
    luma_hist: np.ndarray
    colour_hist: np.ndarray
    # BGR uint8, THUMBNAIL in size: what the sample ring compares frames by.
    thumbnail: np.ndarray


def frame_stats(image: np.ndarray) -> FrameStats:
    """The statistics of one BGR (or single-channel) uint8 frame."""
    small = cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA)
    if small.ndim == 2:
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    luma: np.ndarray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    pixels = float(luma.size)
    luma_hist = np.bincount(np.right_shift(luma, 4).ravel(), minlength=LUMA_BINS) / pixels
    # Chroma in COLOUR_LEVELS bins per axis, an odd count so that grey (128) sits mid-bin:
    # compression noise on a grey scene does not flip pixels between bins.
    chroma = (cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb)[:, :, 1:].astype(np.int64) * COLOUR_LEVELS) >> 8
    colour_hist = np.bincount((chroma[:, :, 0] * COLOUR_LEVELS + chroma[:, :, 1]).ravel(), minlength=COLOURS) / pixels
    thumbnail = cv2.resize(small, THUMBNAIL, interpolation=cv2.INTER_AREA)
    return FrameStats(float(luma.mean()), float(luma.var()), luma_hist, colour_hist, thumbnail)


def top_score(output: np.ndarray, task: str, detect: DetectConfig | None) -> float | None:
    """The frame's top score from its first output (a batch of one); None for raw outputs."""
    from .detect import decode
    from .postprocess import is_distribution, softmax

    if task == "classify":
        row = np.asarray(output, dtype=np.float64).reshape(-1)
        if not is_distribution(row):
            row = softmax(row)
        return float(np.max(row))
    if task in BOX_TASKS and detect is not None:
        scores = decode(output, detect.head, 0.0, detect.extra).scores
        return float(np.max(scores)) if len(scores) else 0.0
    return None


def _score_hist(scores: Sequence[float]) -> np.ndarray | None:
    if not scores:
        return None
    bins = np.clip((np.asarray(scores, dtype=np.float64) * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1)
    counts: np.ndarray = np.bincount(bins, minlength=SCORE_BINS) / float(len(scores))
    return counts


class Summary(NamedTuple):
    """Statistics of a set of frames: the reference's, or the window's."""

    frames: int
    luma_mean: float
    # Of all the frames' luma pixels together: within frames plus between frames.
    luma_var: float
    luma_hist: np.ndarray
    colour_hist: np.ndarray
    # None where the task has no top score (raw outputs), or none were seen.
    score_hist: np.ndarray | None
    scores: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "size": list(SIZE),
            "frames": self.frames,
            "luma_mean": self.luma_mean,
            "luma_var": self.luma_var,
            "luma_hist": [float(v) for v in self.luma_hist],
            "colour_hist": [float(v) for v in self.colour_hist],
            "score_hist": None if self.score_hist is None else [float(v) for v in self.score_hist],
            "scores": self.scores,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        if not isinstance(data, dict):
            raise ValueError("a drift reference is a JSON object")
        if data.get("format") != FORMAT or list(data.get("size", [])) != list(SIZE):
            raise ValueError(f"format {data.get('format')!r} at size {data.get('size')!r} is not this agent's")
        luma_hist = np.asarray(data["luma_hist"], dtype=np.float64)
        colour_hist = np.asarray(data["colour_hist"], dtype=np.float64)
        score_hist = None if data["score_hist"] is None else np.asarray(data["score_hist"], dtype=np.float64)
        shapes = (luma_hist.shape, colour_hist.shape, None if score_hist is None else score_hist.shape)
        if shapes[:2] != ((LUMA_BINS,), (COLOURS,)) or shapes[2] not in (None, (SCORE_BINS,)):
            raise ValueError(f"histogram shapes {shapes} are not this agent's")
        return cls(
            int(data["frames"]),
            float(data["luma_mean"]),
            float(data["luma_var"]),
            luma_hist,
            colour_hist,
            score_hist,
            int(data["scores"]),
        )


def summarize(stats: Sequence[FrameStats], scores: Sequence[float]) -> Summary:
    if not stats:
        raise ValueError("no frames to summarize")
    means = np.asarray([s.luma_mean for s in stats])
    variances = np.asarray([s.luma_var for s in stats])
    return Summary(
        frames=len(stats),
        luma_mean=float(means.mean()),
        luma_var=float(variances.mean() + means.var()),
        luma_hist=np.mean([s.luma_hist for s in stats], axis=0),
        colour_hist=np.mean([s.colour_hist for s in stats], axis=0),
        score_hist=_score_hist(scores),
        scores=len(scores),
    )


def reference_summary(images: Iterable[np.ndarray], scores: Sequence[float]) -> Summary:
    """What the host ships as drift.json: the calibration images' statistics and the top scores
    of the model's FP32 outputs on the release's held-out frames (the same scene)."""
    return summarize([frame_stats(image) for image in images], scores)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2: in [0, 1], 0 for the same histogram, 1 for disjoint ones."""
    p = p / max(float(p.sum()), 1e-12)
    q = q / max(float(q.sum()), 1e-12)
    middle = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        used = a > 0
        return float(np.sum(a[used] * np.log2(a[used] / middle[used])))

    return math.sqrt(max(0.0, min(1.0, (kl(p) + kl(q)) / 2.0)))


def level_distance(mean_a: float, var_a: float, mean_b: float, var_b: float) -> float:
    """Hellinger distance between N(mean_a, var_a) and N(mean_b, var_b): in [0, 1]."""
    # A flat grey scene has no spread; one grey level keeps the laws defined.
    var_a, var_b = max(var_a, 1.0), max(var_b, 1.0)
    total = var_a + var_b
    coefficient = math.sqrt(2.0 * math.sqrt(var_a * var_b) / total) * math.exp(-((mean_a - mean_b) ** 2) / (4 * total))
    return math.sqrt(max(0.0, 1.0 - coefficient))


def components(window: Summary, ref: Summary) -> dict[str, float]:
    parts = {
        "luma": js_distance(window.luma_hist, ref.luma_hist),
        "colour": js_distance(window.colour_hist, ref.colour_hist),
        "level": level_distance(window.luma_mean, window.luma_var, ref.luma_mean, ref.luma_var),
    }
    if window.score_hist is not None and ref.score_hist is not None:
        parts["score"] = js_distance(window.score_hist, ref.score_hist)
    return parts


def drift_score(window: Summary, ref: Summary) -> float:
    """The largest component: 0 for the calibration scene itself, at most 1."""
    return max(components(window, ref).values())


def load_reference(release_dir: str) -> Summary | None:
    """The release's drift.json, or None where the release has none (or an unreadable one)."""
    path = os.path.join(release_dir, DRIFT_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            return Summary.from_dict(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Drift(NamedTuple):
    score: float | None
    components: dict[str, float]
    samples: int
    window: int
    threshold: float


class DriftWindow:
    """The newest ``window`` sampled frames (one in ``every``) against the release's reference."""

    def __init__(
        self,
        ref: Summary,
        task: str,
        detect: DetectConfig | None = None,
        every: int = EVERY,
        window: int = WINDOW,
        min_frames: int = MIN_FRAMES,
        threshold: float = THRESHOLD,
    ) -> None:
        self.reference = ref
        self._task = task
        self._detect = detect
        self._every = every
        self._window = window
        self._min_frames = min_frames
        self._threshold = threshold
        self._seen = 0
        self._stats: collections.deque[FrameStats] = collections.deque(maxlen=window)
        self._scores: collections.deque[float] = collections.deque(maxlen=window)

    @classmethod
    def for_release(cls, release: Release) -> DriftWindow | None:
        ref = load_reference(release.release_dir)
        return None if ref is None else cls(ref, release.task, release.detect)

    def offer(self, image: np.ndarray, outputs: list[np.ndarray]) -> Drift | None:
        """Counts the frame; on every ``every``-th, adds it to the window and returns the drift."""
        self._seen += 1
        if (self._seen - 1) % self._every:
            return None
        self._stats.append(frame_stats(image))
        score = top_score(outputs[0], self._task, self._detect) if outputs else None
        if score is not None:
            self._scores.append(score)
        return self.drift()

    def summary(self) -> Summary:
        return summarize(list(self._stats), list(self._scores))

    def drift(self) -> Drift:
        samples = len(self._stats)
        if samples < self._min_frames:
            return Drift(None, {}, samples, self._window, self._threshold)
        parts = components(self.summary(), self.reference)
        return Drift(max(parts.values()), parts, samples, self._window, self._threshold)
