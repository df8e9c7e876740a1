"""Calibration frames a technician can trust: read what is readable, drop near-copies, keep a spread.

``curate_folder`` reads a folder of frames and returns the ones worth calibrating on with a
:class:`CurationReport` that says what happened to every other file: unreadable ones are skipped
and named (never an exception), near-duplicates are removed and named with the frame they copy,
and a folder larger than wanted is cut down to a diverse subset. Frames are decoded here once for
their small signatures and again by the caller for tensors (edgekit.calibration), so memory
stays at one full-size frame however large the folder is.

For ordered frames (a video, the device's samples) ``sample_video`` and ``split_by_time_block``
give the hold-out split the gate needs without near-identical neighbours on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgekit.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# The floor for calibrating on the real scene (edgekit calibrate): the lifecycle reference's
# "hard-fail below ~100" (recalibration-lifecycle.md §1.1). Provisioning with a sample set
# passes its own, lower floor (edgekit.calibration.MIN_CALIBRATION_IMAGES).
FLOOR = 100
# TensorRT's INT8 sample, ModelOpt and MathWorks all plan with about 500 (§1.1); fewer warns.
RECOMMENDED = 500
# More usable frames than this are cut down to a diverse subset of this many.
SUBSET_COUNT = 500

# Near-duplicates. A 64-bit dHash (9x8 grey, one bit per horizontal gradient) survives
# re-encoding, resizing and sensor noise, and 10 bits is imagededup's default threshold for
# 64-bit hashes (§2.1). Hashes ignore brightness by design, so two frames are only compared
# when their mean luma is within LUMA_BAND grey levels: a night frame is never merged into
# the day frame of the same view, and that difference is what INT8 ranges need (§2.1).
HASH_BITS_APART = 10
LUMA_BAND = 8.0
# A hash match is then confirmed on a 16x16 colour thumbnail less the frame's mean luma (colour
# and layout, not brightness, which the band decides). 64 grey bits cannot tell apart frames with
# little detail: the 8x8 sample digits collide at distance 0, yet no two are closer than 11.7
# levels on average here, and a bluish and a purplish frame of equal grey look alike to them.
# A re-encoded or slightly noisy copy is 1-3 levels away, as 16x16 averages the noise out. Both
# must agree: in fog, different views are within 6 levels and only the hash tells them apart.
THUMB_SIDE = 16
THUMB_LEVELS_APART = 6.0
# ... for frames of ordinary contrast. Differences shrink with contrast: the night digits (the
# sample scene at 30 % contrast) are no closer than 3.5 levels, so 6 merged a sixth of them. The
# threshold scales with the lower of the two thumbnails' spreads (standard deviation) below
# SPREAD_REFERENCE, down to a third of it: 2.2 levels for the night digits, while a JPEG
# re-encoding of one (quality 50-90) stays within 0.5.
SPREAD_REFERENCE = 64.0
SPREAD_FLOOR = 1.0 / 3.0
# Frames further than this from the expected aspect ratio (relative), or with fewer than half
# or more than twice its pixels per side, are reported: objects look another size to the model.
ASPECT_TOLERANCE = 0.1
SIDE_RATIO = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class SkippedFile:
    name: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """``name`` was removed as a near-copy of the kept frame ``of``."""

    name: str
    of: str


@dataclass(frozen=True)
class OddSize:
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class CurationReport:
    """What curation did with every file of ``source``; ``to_dict`` is the --json form."""

    source: str
    images: int
    ignored: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    duplicates: tuple[Duplicate, ...]
    # Frames left after skipping and de-duplication, and the ones kept of them (the subset).
    usable: int
    kept: tuple[str, ...]
    # The camera's (width, height), or the folder's most common size when none was given.
    expected_size: tuple[int, int]
    odd_sizes: tuple[OddSize, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a log."""
        parts = [f"{self.images} images read"]
        if self.skipped:
            names = ", ".join(s.name for s in self.skipped[:3]) + (", ..." if len(self.skipped) > 3 else "")
            parts.append(f"{len(self.skipped)} unreadable skipped ({names})")
        parts.append(f"{len(self.duplicates)} near-duplicates removed")
        if len(self.kept) < self.usable:
            parts.append(f"{len(self.kept)} of {self.usable} kept as a diverse subset")
        else:
            parts.append(f"{len(self.kept)} kept")
        return f"calibration data in {self.source}: " + ", ".join(parts) + "".join(f"; {w}" for w in self.warnings)


@dataclass(frozen=True)
class Curated:
    paths: tuple[Path, ...]
    report: CurationReport


@dataclass(frozen=True)
class _Signature:
    name: str
    luma: float
    dhash: int
    thumb: np.ndarray
    # The thumbnail's standard deviation in grey levels: its contrast.
    spread: float
    descriptor: np.ndarray
    size: tuple[int, int]


def list_images(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ModelError(f"The image folder {directory} does not exist; pass a folder of images.")
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def curate_folder(
    directory: Path,
    *,
    count: int = SUBSET_COUNT,
    minimum: int = FLOOR,
    recommended: int = RECOMMENDED,
    expected_size: tuple[int, int] | None = None,
    name: str | None = None,
) -> Curated:
    """The frames of ``directory`` worth calibrating on, at most ``count``, in file-name order.

    Refuses (ModelError, one sentence) when fewer than ``minimum`` are usable after skipping and
    de-duplication; warns in the report below ``recommended``. ``expected_size`` is the camera's
    (width, height); without it, the folder's most common size is expected. ``name`` is how the
    report and the refusals call the folder (a temporary one holds a video's or a device's frames).
    """
    import cv2
    import numpy as np

    source = name or str(directory)
    paths = list_images(directory)
    images = set(paths)
    ignored = tuple(
        sorted(p.name for p in directory.iterdir() if p.is_file() and p not in images and not p.name.startswith("."))
    )
    skipped: list[SkippedFile] = []
    signatures: list[_Signature] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            skipped.append(SkippedFile(path.name, f"cannot be read ({exc.strerror or exc})"))
            continue
        if not data:
            skipped.append(SkippedFile(path.name, "empty file"))
            continue
        if not _jpeg_complete(data):
            # libjpeg decodes a cut-off JPEG with a grey bottom and only a warning.
            skipped.append(SkippedFile(path.name, "truncated JPEG"))
            continue
        frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            skipped.append(SkippedFile(path.name, "not a readable image"))
        else:
            signatures.append(_signature(path.name, frame))
    if not signatures:
        raise ModelError(
            f"{_capitalised(source)} holds no usable images ({len(skipped)} unreadable, {len(ignored)} other files); "
            f"put the camera's frames there as {', '.join(s[1:].upper() for s in IMAGE_SUFFIXES)} files."
        )
    unique, duplicates = _deduplicate(signatures)
    if len(unique) < minimum:
        raise ModelError(floor_sentence(source, len(unique), minimum, len(skipped), len(duplicates)))
    chosen = unique if len(unique) <= count else [unique[i] for i in k_center([s.descriptor for s in unique], count)]
    expected = expected_size or _most_common([s.size for s in signatures])
    odd = tuple(OddSize(s.name, *s.size) for s in signatures if _far_from(s.size, expected))
    warnings = []
    if len(unique) < recommended:
        warnings.append(f"{len(unique)} usable frames, {recommended} recommended: add frames from the real scene")
    if odd:
        warnings.append(f"{len(odd)} frames far from the expected {expected[0]}x{expected[1]}")
    report = CurationReport(
        source=source,
        images=len(paths),
        ignored=ignored,
        skipped=tuple(skipped),
        duplicates=tuple(duplicates),
        usable=len(unique),
        kept=tuple(s.name for s in chosen),
        expected_size=expected,
        odd_sizes=odd,
        warnings=tuple(warnings),
    )
    return Curated(tuple(directory / s.name for s in chosen), report)


def floor_sentence(source: str, usable: int, minimum: int, skipped: int = 0, duplicates: int = 0) -> str:
    removed = (
        f" after skipping {skipped} unreadable files and {duplicates} near-duplicates" if skipped or duplicates else ""
    )
    return (
        f"{_capitalised(source)} holds {usable} usable calibration images{removed}; at least {minimum} are needed, "
        f"so add {minimum - usable} more from the camera's real scene (a few hundred is better)."
    )


def _capitalised(source: str) -> str:
    # A sentence starts with a capital: "the device's sample ring" is also a source.
    return source[:1].upper() + source[1:]


def _signature(name: str, frame: np.ndarray) -> _Signature:
    import cv2
    import numpy as np

    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    luma = float(gray.mean())
    thumb = cv2.resize(frame, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    thumb -= np.float32(luma)
    return _Signature(
        name=name,
        luma=luma,
        dhash=int("".join("1" if b else "0" for b in bits), 2),
        thumb=thumb,
        spread=float(thumb.std()),
        descriptor=describe(frame),
        size=(int(frame.shape[1]), int(frame.shape[0])),
    )


def describe(frame: np.ndarray) -> np.ndarray:
    """The k-center descriptor: an 8x8 colour thumbnail and an 8-bin histogram per channel.

    The thumbnail places things (where is it bright, where is the object), the histogram
    counts colours wherever they are. Each half is scaled so that its largest possible
    distance is 1, so neither outweighs the other.
    """
    import cv2
    import numpy as np

    thumb = cv2.resize(frame, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    hist = np.concatenate([np.bincount(frame[..., c].ravel() >> 5, minlength=8) for c in range(frame.shape[2])]).astype(
        np.float32
    )
    hist /= frame.shape[0] * frame.shape[1]
    descriptor: np.ndarray = np.concatenate(
        [thumb / (255.0 * np.sqrt(thumb.size)), hist / np.sqrt(2.0 * frame.shape[2])]
    )
    return descriptor


def _deduplicate(signatures: list[_Signature]) -> tuple[list[_Signature], list[Duplicate]]:
    """Keep the first of each group of near-copies, in the given order."""
    import numpy as np

    bands: dict[int, list[_Signature]] = {}
    unique: list[_Signature] = []
    duplicates: list[Duplicate] = []
    for sig in signatures:
        band = int(sig.luma // LUMA_BAND)
        # Bands are LUMA_BAND wide, so frames within LUMA_BAND of each other are in this or a next one.
        candidates = (k for b in (band - 1, band, band + 1) for k in bands.get(b, ()))
        copy_of = next(
            (
                k
                for k in candidates
                if abs(k.luma - sig.luma) <= LUMA_BAND
                and (k.dhash ^ sig.dhash).bit_count() <= HASH_BITS_APART
                and float(np.abs(k.thumb - sig.thumb).mean()) <= _thumb_levels_apart(k, sig)
            ),
            None,
        )
        if copy_of is None:
            unique.append(sig)
            bands.setdefault(band, []).append(sig)
        else:
            duplicates.append(Duplicate(sig.name, copy_of.name))
    return unique, duplicates


def _thumb_levels_apart(one: _Signature, other: _Signature) -> float:
    contrast = min(one.spread, other.spread) / SPREAD_REFERENCE
    return THUMB_LEVELS_APART * min(1.0, max(SPREAD_FLOOR, contrast))


def k_center(descriptors: Sequence[np.ndarray], count: int) -> list[int]:
    """Indices of ``count`` spread-out descriptors, ascending: greedy k-center (farthest point).

    Sener & Savarese (arXiv 1708.00489): each step adds the descriptor farthest from all chosen
    ones, which keeps the covering radius within twice the optimum. It starts from the one nearest
    the mean (the most typical frame) and breaks ties by the lowest index, so it is deterministic.
    """
    import numpy as np

    points = np.stack(descriptors).astype(np.float64)
    if count >= len(points):
        return list(range(len(points)))
    first = int(np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1)))
    chosen = [first]
    nearest = ((points - points[first]) ** 2).sum(axis=1)
    while len(chosen) < count:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(axis=1))
    return sorted(chosen)


def _most_common(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    # Ties go to the size met first, in file-name order.
    return max(dict.fromkeys(sizes), key=sizes.count)


def _far_from(size: tuple[int, int], expected: tuple[int, int]) -> bool:
    (w, h), (ew, eh) = size, expected
    aspect = (w / h) / (ew / eh)
    sides = (w / ew, h / eh)
    return abs(aspect - 1.0) > ASPECT_TOLERANCE or any(not 1 / SIDE_RATIO <= r <= SIDE_RATIO for r in sides)


def _jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG's data reaches its end-of-image marker; True for anything not a JPEG.

    Walks the segments and skips entropy-coded data to the next marker (0xFF followed by neither
    0x00 stuffing nor a restart marker), so bytes appended after the image (a phone's trailer)
    do not matter, and a file cut off anywhere before the marker is caught.
    """
    if not data.startswith(b"\xff\xd8"):
        return True
    pos, end = 2, len(data)
    while True:
        pos = data.find(b"\xff", pos)
        while 0 <= pos < end - 1 and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos < 0 or pos + 1 >= end:
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2  # stuffed 0xFF or a restart marker inside entropy-coded data
            continue
        if pos + 4 > end:
            return False
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def sample_video(video: Path, directory: Path, count: int) -> list[Path]:
    """``count`` frames spread evenly over ``video``, written as PNG to ``directory`` in time order.

    Named by frame index (``frame-000123.png``) so a report names the moment. Read front to
    back rather than seeking, because seeking is approximate for many codecs.
    """
    import cv2
    import numpy as np

    total = _frame_count(video)
    if total == 0:
        raise ModelError(
            f"{video} has no frames OpenCV can read; check that it plays, or export it again as MJPG or H.264."
        )
    wanted = set(np.linspace(0, total - 1, num=max(1, min(count, total))).round().astype(int).tolist())
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    capture = cv2.VideoCapture(str(video))
    try:
        for index in range(max(wanted) + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    path = directory / f"frame-{index:06d}.png"
                    cv2.imwrite(str(path), frame)
                    written.append(path)
    finally:
        capture.release()
    return written


def _frame_count(video: Path) -> int:
    # The container's count can be missing or wrong, so the frames are counted by grabbing them.
    import cv2

    capture = cv2.VideoCapture(str(video))
    total = 0
    try:
        if capture.isOpened():
            while capture.grab():
                total += 1
    finally:
        capture.release()
    return total


def split_by_time_block(
    items: Sequence[T], holdout_fraction: float = 0.2, blocks: int = 10, guard: int = 1
) -> tuple[list[T], list[T]]:
    """(calibration, hold-out) of time-ordered ``items``, held out in whole contiguous blocks.

    Neighbouring frames are near-copies, so a random or every-fifth split puts the same moment on
    both sides and the gate measures memory. Here ``items`` are cut into ``blocks`` runs, about
    ``holdout_fraction`` of them spread evenly over the whole time (start, middle and end of a
    clip see different light) are held out, and the ``guard`` items either side of each held-out
    run are used by neither side.
    """
    import numpy as np

    runs = [r.tolist() for r in np.array_split(np.arange(len(items)), min(blocks, len(items))) if len(r)]
    held = max(1, round(len(runs) * holdout_fraction))
    held_runs = {int((i + 0.5) * len(runs) / held) for i in range(held)}
    holdout_index = {i for r in held_runs for i in runs[r]}
    near = {i + d for i in holdout_index for d in range(-guard, guard + 1)}
    calibration = [item for i, item in enumerate(items) if i not in near]
    holdout = [item for i, item in enumerate(items) if i in holdout_index]
    if not calibration or not holdout:
        raise ModelError(
            f"{len(items)} frames are too few to hold some out by time block; sample more frames from the source."
        )
    return calibration, holdout
