"""The releases on the device, listed and pruned (``agent.pyz lifecycle list|prune``).

A release folder holds hard links into the blob store, so its bytes are shared with the blob
and with every release or venv that links the same blob: removing a release frees nothing by
itself, the blobs nothing links any more are what a prune frees. Power lost at any point of a
prune leaves no release half deleted under its real name: a release folder is renamed
``<id>.removing`` before it is deleted, other files are unlinked whole (an engine before its
manifest), and the next prune finishes what one left.
"""

from __future__ import annotations

import os
import shutil
import time
from stat import S_ISREG
from typing import Any, List, Tuple

from .backends.tensorrt.cache import calibration_id, sha256_file, timing_cache_name
from .config import CALIBRATION_FILE, RELEASE_FILE
from .errors import AgentError
from .files import fsync_dir, read_json
from .lifecycle import BUILDS_DIR, Device

KEEP = 3
LINKS = ("current", "previous", "committed")
MANIFEST_KEYS = ("model", "onnx_sha256", "calibration_sha256", "precision", "backend", "task")
TIMES = ("trial_started", "committed_at", "rolled_back_at", "failed_at")
REMOVING = ".removing"
# Nothing modified this recently is pruned: a provision running beside the prune may have
# just uploaded a blob it has not linked into its release yet, or be building the engine of
# a release it has not switched in on trial yet; an hour is far longer than either gap.
FRESH_S = 3600.0

Inode = Tuple[int, int]
Files = List[Tuple[str, os.stat_result]]


def releases(state_dir: str) -> dict[str, Any]:
    """Every release with its manifest's figures, gate, links, record and size, newest first."""
    device = Device(state_dir)
    files = {release: _files(os.path.join(device.releases, release)) for release in device.ids()}
    holders: dict[Inode, int] = {}
    for found in files.values():
        for inode in {_inode(stat) for _, stat in found}:
            holders[inode] = holders.get(inode, 0) + 1
    links = {name: device.link(name) for name in LINKS}
    listed = [_describe(device, release, found, holders, links) for release, found in files.items()]
    return {"releases": sorted(listed, key=lambda entry: (entry["created"], entry["release"]), reverse=True)}


def _describe(
    device: Device, release: str, found: Files, holders: dict[Inode, int], links: dict[str, str | None]
) -> dict[str, Any]:
    folder = os.path.join(device.releases, release)
    manifest = read_json(os.path.join(folder, RELEASE_FILE)) or {}
    record = device.record(release)
    build = read_json(_build_answer(device, release)) or {}
    gate, error = build.get("gate"), build.get("error")
    return {
        "release": release,
        "created": os.stat(folder).st_mtime,
        **{key: manifest.get(key) for key in MANIFEST_KEYS},
        # The build answer's figures as the agent measured them; the host names the measure.
        "gate": gate if isinstance(gate, dict) else None,
        "build_error": error.get("message") if isinstance(error, dict) else None,
        "links": [name for name in LINKS if links[name] == release],
        "state": record.get("state"),
        "reason": record.get("reason"),
        "by": record.get("by"),
        **{key: record.get(key) for key in TIMES},
        "bytes": sum(stat.st_size for _, stat in found),
        "shared_bytes": sum(stat.st_size for _, stat in found if holders[_inode(stat)] > 1),
    }


def prune(state_dir: str, keep: int = KEEP, check: bool = False, now: float | None = None) -> dict[str, Any]:
    """Remove the releases ``_kept`` does not keep and what only they used; with ``check``,
    only say what would go. Both answer the same list."""
    if keep < 0:
        raise AgentError("lifecycle", f"--keep {keep} is not a number of releases; give 0 or more.")
    device = Device(state_dir)
    now = time.time() if now is None else now
    ids = device.ids()
    why = _kept(device, ids, keep, now)
    files = {release: _files(os.path.join(device.releases, release)) for release in ids}
    plan = _Plan(now)
    for name in sorted(_listdir(device.releases)):
        if name.endswith(REMOVING):
            plan.add("unfinished removal", os.path.join(device.releases, name), _files(device.releases, name))
    for release in ids:
        if release not in why:
            plan.add("release", os.path.join(device.releases, release), files[release])
    unlinked = [stat for _, _, stats in plan.items for stat in stats]
    for kind, folder in (("record", device.records), ("site config", device.configs)):
        for name in sorted(_listdir(folder)):
            if name.endswith(".json") and name[: -len(".json")] not in why:
                plan.add_file(kind, os.path.join(folder, name))
    builds = os.path.join(device.state_dir, BUILDS_DIR)
    for name in sorted(_listdir(builds)):
        if name.endswith(".json") and name[: -len(".json")] not in why:
            plan.add_file("build answer", os.path.join(builds, name))
    _plan_blobs(device, plan, unlinked)
    _plan_engines(device, plan, {release: files[release] for release in why})
    if not check:
        plan.carry_out(device)
    return {
        "check": check,
        "keep": keep,
        "kept": [{"release": release, "why": why[release]} for release in ids if release in why],
        "removed": [
            {"kind": kind, "path": path, "bytes": sum(s.st_size for s in stats)} for kind, path, stats in plan.items
        ],
        "bytes": plan.freed(),
    }


def _kept(device: Device, ids: list[str], keep: int, now: float) -> dict[str, list[str]]:
    """The releases a prune keeps, each with why."""
    why: dict[str, list[str]] = {}
    trial = device.trial() or {}
    named = [(name, device.link(name)) for name in LINKS]
    named += [("on trial", trial.get("release")), ("the trial's fallback", trial.get("fallback"))]
    committed = sorted(
        (release for release in ids if device.record(release).get("state") == "committed"),
        key=lambda release: float(device.record(release).get("committed_at") or 0.0),
        reverse=True,
    )
    named += [(f"one of the {keep} newest committed", release) for release in committed[:keep]]
    # Laid out by a provision that has not begun its trial yet (it builds the engine first).
    named += [
        ("new, not on trial yet", release)
        for release in ids
        if not device.record(release) and os.stat(os.path.join(device.releases, release)).st_mtime > now - FRESH_S
    ]
    for reason, release in named:
        if release in ids:
            why.setdefault(release, []).append(reason)
    return why


class _Plan:
    """What a prune removes, each path with the stat of every file under it."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.items: list[tuple[str, str, list[os.stat_result]]] = []

    def add(self, kind: str, path: str, found: Files) -> None:
        self.items.append((kind, path, [stat for _, stat in found]))

    def add_file(self, kind: str, path: str, guard: bool = False) -> bool:
        """Plan ``path`` for removal, unless ``guard`` and it is fresh; True when planned."""
        try:
            stat = os.lstat(path)
        except OSError:
            return False
        if guard and self.fresh(stat):
            return False
        self.items.append((kind, path, [stat]))
        return True

    def fresh(self, stat: os.stat_result) -> bool:
        # ctime too: linking a blob into a release changes its ctime, not its mtime.
        return max(stat.st_mtime, stat.st_ctime) > self.now - FRESH_S

    def freed(self) -> int:
        """Bytes freed: a file's data counts once, when every link to it goes."""
        links: dict[Inode, int] = {}
        sizes: dict[Inode, tuple[int, int]] = {}
        for _, _, stats in self.items:
            for stat in stats:
                links[_inode(stat)] = links.get(_inode(stat), 0) + 1
                sizes[_inode(stat)] = (stat.st_nlink, stat.st_size)
        return sum(size for inode, (nlink, size) in sizes.items() if links[inode] >= nlink)

    def carry_out(self, device: Device) -> None:
        # Unfinished removals first: a release laid out again since then is renamed to the same name.
        for kind, path, _ in self.items:
            if kind == "unfinished removal":
                shutil.rmtree(path)
        folders = [path for kind, path, _ in self.items if kind == "release"]
        for path in folders:
            os.rename(path, path + REMOVING)
        if folders:
            fsync_dir(device.releases)
        for path in folders:
            shutil.rmtree(path + REMOVING)
        touched = set()
        for kind, path, _ in self.items:
            if kind in ("unfinished removal", "release"):
                continue
            if kind != "blob" or _nlink(path) == 1:
                # A blob a provision linked since the plan was made stays.
                _unlink(path)
                touched.add(os.path.dirname(path))
        for directory in sorted(touched):
            fsync_dir(directory)


def _plan_blobs(device: Device, plan: _Plan, removed: list[os.stat_result]) -> None:
    """Blobs whose only link left is the store's own once the removed releases are gone
    (a venv's wheels link their blobs too, so those stay)."""
    going: dict[Inode, int] = {}
    for stat in removed:
        going[_inode(stat)] = going.get(_inode(stat), 0) + 1
    for path, stat in _blobs(device):
        if stat.st_nlink - going.get(_inode(stat), 0) == 1 and not plan.fresh(stat):
            plan.add("blob", path, [(path, stat)])


def _plan_engines(device: Device, plan: _Plan, keeping: dict[str, Files]) -> None:
    """Engines no kept release can load, then the timing and calibration caches only they used.

    An engine's manifest records what it was built from: the served model's and the calibration
    data's sha256, and the precision. A kept release with the same served model (and data, when
    calibrated) and precision keeps it, whichever release built it first.
    """
    engines = _engines(device)
    manifests = [(name, read_json(os.path.join(engines, name))) for name in sorted(_listdir(engines))]
    built = [(name, manifest) for name, manifest in manifests if name.endswith(".json") and manifest is not None]
    digests = {_inode(stat): os.path.basename(path) for path, stat in _blobs(device)} if built else {}
    served = [_served(device, release, found, digests) for release, found in keeping.items()] if built else []
    timing, calibration = set(), set()
    for name, manifest in built:
        stem = os.path.join(engines, name[: -len(".json")])
        uses = (manifest.get("onnx_sha256"), manifest.get("precision"), manifest.get("calibration_sha256"))
        if any(_serves(release, uses) for release in served) or plan.fresh(os.lstat(stem + ".json")):
            version = str(manifest.get("tensorrt"))
            timing.add(timing_cache_name(version, str(manifest.get("compute_capability"))))
            if uses[0] and uses[2]:
                calibration.add(calibration_id(str(uses[0]), str(uses[2]), version) + ".cache")
            continue
        # The engine first: a manifest left alone by a power loss describes no engine, which
        # the cache rebuilds and the next prune removes.
        plan.add_file("engine", stem + ".engine")
        plan.add_file("engine manifest", stem + ".json")
    for kind, folder, used in (("timing cache", "timing", timing), ("calibration cache", "calibration", calibration)):
        for name in sorted(_listdir(os.path.join(engines, folder))):
            if name not in used:
                plan.add_file(kind, os.path.join(engines, folder, name), guard=True)


def _served(
    device: Device, release: str, found: Files, digests: dict[Inode, str]
) -> tuple[str, str | None, str | None]:
    """The sha256 of ``release``'s served model, its precision and its calibration data's sha256."""
    folder = os.path.join(device.releases, release)
    manifest = read_json(os.path.join(folder, RELEASE_FILE)) or {}
    by_path = {path: stat for path, stat in found}

    def digest(name: str) -> str | None:
        path = os.path.join(folder, name)
        if path not in by_path:
            return None
        # The blob the file links is named by its digest; a file that links none is hashed.
        return digests.get(_inode(by_path[path])) or sha256_file(path)

    return digest(str(manifest.get("model"))) or "", manifest.get("precision"), digest(CALIBRATION_FILE)


def _serves(release: tuple[str, str | None, str | None], uses: tuple[Any, Any, Any]) -> bool:
    model, precision, data = release
    return uses[0] == model and uses[1] == precision and (uses[2] is None or uses[2] == data)


def _engines(device: Device) -> str:
    return os.path.join(device.state_dir, "engines")


def _build_answer(device: Device, release: str) -> str:
    return os.path.join(device.state_dir, BUILDS_DIR, release + ".json")


def _blobs(device: Device) -> Files:
    return _files(os.path.join(device.state_dir, "blobs", "sha256"))


def _files(*parts: str) -> Files:
    """Regular files under a folder, with their lstat; symlinks are not followed."""
    found: Files = []
    for root, _, names in os.walk(os.path.join(*parts)):
        for name in names:
            path = os.path.join(root, name)
            stat = os.lstat(path)
            if S_ISREG(stat.st_mode):
                found.append((path, stat))
    return found


def _listdir(path: str) -> list[str]:
    """The names in ``path``; none when it is a symlink. engines/ and the folders in it are the
    service user's, and root must not be led by a link into listing (and pruning) another folder."""
    if os.path.islink(path):
        return []
    try:
        return os.listdir(path)
    except OSError:
        return []


def _inode(stat: os.stat_result) -> Inode:
    return (stat.st_dev, stat.st_ino)


def _nlink(path: str) -> int:
    try:
        return os.lstat(path).st_nlink
    except OSError:
        return 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
