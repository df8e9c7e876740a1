"""Serialized TensorRT engines found by content, whatever a file is called.

An engine (plan) is built for one GPU model and one TensorRT version, and NVIDIA's licences give a
product no right to redistribute one; a version-compatible engine also embeds NVIDIA's lean
runtime. Names are only a hint (``.engine``, ``.plan``, ``model_b1_gpu0_int8.engine``), so every
rule here looks at bytes, reading headers first and bounding every scan:

- ``engine/plan``: a raw plan, ``ftrt`` at offset 0 (trtexec's ``printPlanVersion``);
- ``engine/ultralytics``: Ultralytics' ``len + JSON metadata + plan`` layout;
- ``engine/prefixed``: ``ftrt`` and a plausible version within the first :data:`PREFIX_WINDOW`
  bytes behind someone's own prefix (TensorRT#1751), a weaker test;
- ``engine/base64``: a base64-encoded plan inside a file of at most :data:`SCAN_LIMIT` bytes
  (torch-tensorrt pickles, JSON), and inside the members of a zip archive (``.pt``, ``.ts``,
  ``.ep``, ``.pt2``) of at most :data:`ZIP_LIMIT` bytes; a zip member also gets the header rules;
- ``engine/onnx-epcontext`` and ``engine/onnx-epcontext-ref``: an ONNX Runtime EPContext node that
  embeds engine bytes or names an engine file.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgekit.audit.findings import Finding
from edgekit.audit.tree import Entry, entry_of_bytes

PLAN_MAGIC = b"ftrt"
# trtexec needs the magic, the serialization version (u32 at 4) and the version bytes at 24..27.
PLAN_HEADER_SIZE = 28
VERSION_OFFSET = 24
# Every rule but the scans decides from this much of the start of a file.
HEAD_SIZE = 64 * 1024
# How far behind an arbitrary prefix ``engine/prefixed`` looks for the magic.
PREFIX_WINDOW = 4 * 1024
# Ultralytics metadata is a few hundred bytes of JSON; a longer "length" is not that layout.
ULTRALYTICS_META_LIMIT = 1024 * 1024
# Files up to this size are streamed through for base64 plans and EPContext nodes; larger ones
# (libraries, datasets) are not read past their headers.
SCAN_LIMIT = 64 * 1024 * 1024
SCAN_CHUNK = 1024 * 1024
# A zip archive up to this size is read whole and its members up to SCAN_LIMIT (uncompressed) are
# checked; torch-tensorrt archives hold the engine, so they are larger than plain files.
ZIP_LIMIT = 256 * 1024 * 1024
# onnx parses a whole ModelProto in memory.
ONNX_PARSE_LIMIT = 512 * 1024 * 1024
EPCONTEXT = b"EPContext"

_WHY = (
    ", which is tied to one GPU model and TensorRT version and is not something a product may"
    " redistribute (a version-compatible engine also embeds NVIDIA's lean runtime)"
)

# Base64 data skipped: ELF objects, images and compressed streams cannot show base64 text.
_UNSCANNED_MAGICS = (
    b"\x7fELF",
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"\x1f\x8b",
    b"\xfd7zXZ\x00",
    b"BZh",
    b"\x28\xb5\x2f\xfd",
)


@dataclass(frozen=True)
class _Needle:
    """The base64 characters fully fixed by ``ftrt`` when it starts ``alignment`` bytes into a group."""

    text: bytes
    alignment: int
    # Characters from the start of the 4-character group to the first character of ``text``.
    lead: int


def _needles() -> tuple[_Needle, ...]:
    needles = []
    for alignment in range(3):
        encoded = base64.b64encode(b"\0" * alignment + PLAN_MAGIC)
        # Character i carries bits 6i..6i+5; keep those that lie wholly inside the magic's bits.
        first = -(-8 * alignment // 6)
        last = (8 * (alignment + len(PLAN_MAGIC))) // 6
        needles.append(_Needle(encoded[first:last], alignment, first))
    return tuple(needles)


_NEEDLES = _needles()
_SCAN_TEXTS = (*(n.text for n in _NEEDLES), EPCONTEXT)
_SCAN_PATTERN = re.compile(b"|".join(re.escape(text) for text in _SCAN_TEXTS))
# A match starting in a chunk ends at most this far past it.
_SCAN_OVERLAP = max(len(text) for text in _SCAN_TEXTS) - 1


def check(entry: Entry) -> Iterator[Finding]:
    """The engines ``entry`` is or holds: at most one finding per rule."""
    head = entry.read(0, HEAD_SIZE)
    if head.startswith(b"PK\x03\x04"):
        found = _zip_findings(entry)
    else:
        found = _content_findings(entry, head, onnx_allowed=True)
    for rule, reason in found:
        yield Finding(entry.path, rule, reason)


def _content_findings(entry: Entry, head: bytes, *, onnx_allowed: bool) -> Iterator[tuple[str, str]]:
    # The rules go from the strongest evidence to the weakest and stop at the first that holds,
    # so one engine is reported once (an embedded EPContext engine also matches engine/prefixed).
    if entry.size < len(PLAN_MAGIC):
        return
    for header_rule in (_plan, _ultralytics):
        found = header_rule(entry, head)
        if found is not None:
            yield found
            return
    # The streaming scan is the costly part: a file found by its head alone is not scanned.
    scan: _Scan | None = None
    if onnx_allowed and _looks_like_onnx(entry, head):
        scan = _scan(entry, head)
        if EPCONTEXT in head or scan.epcontext:
            onnx_found = list(_onnx_findings(entry))
            if onnx_found:
                yield from onnx_found
                return
    prefixed = _prefixed(head)
    if prefixed is not None:
        yield prefixed
        return
    if scan is None:
        scan = _scan(entry, head)
    if scan.base64_reason is not None:
        yield "engine/base64", scan.base64_reason


def _plan_words(header: bytes) -> str:
    """What a plan header says about itself, e.g. "TensorRT 10.3.0.26 engine (plan)"."""
    version = header[VERSION_OFFSET : VERSION_OFFSET + 4]
    if _u32(header, 4) == 0:
        if _plausible_modern(version):
            return f"TensorRT {'.'.join(str(b) for b in version)} engine (plan)"
        return "TensorRT engine (plan) with an unreadable version"
    # Not trtexec's layout; TensorRT 8.x headers keep major/minor/patch at bytes 24/25/26
    # (autoware_tensorrt_common after NVIDIA, TensorRT#3073), which NVIDIA does not document.
    if _plausible_legacy(version):
        return (
            "TensorRT engine (plan) with an unknown header version"
            f" (bytes 24..26 read {version[0]}.{version[1]}.{version[2]} under the TensorRT 8.x layout)"
        )
    return "TensorRT engine (plan) with an unknown header version"


def _plausible_modern(version: bytes) -> bool:
    major, minor, patch = version[0], version[1], version[2]
    return 8 <= major <= 50 and minor <= 99 and patch <= 99


def _plausible_legacy(version: bytes) -> bool:
    major, minor, patch = version[0], version[1], version[2]
    return 5 <= major <= 8 and minor <= 9 and patch <= 9


def _plausible_plan(header: bytes) -> bool:
    """A magic with a version at +24 that either header layout accepts: for magics found mid-file."""
    if len(header) < PLAN_HEADER_SIZE or not header.startswith(PLAN_MAGIC):
        return False
    version = header[VERSION_OFFSET : VERSION_OFFSET + 4]
    return _plausible_modern(version) if _u32(header, 4) == 0 else _plausible_legacy(version)


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


def _plan(entry: Entry, head: bytes) -> tuple[str, str] | None:
    # The magic at offset 0 is trtexec's own test, so any version, even an unreadable one, counts.
    if len(head) < PLAN_HEADER_SIZE or not head.startswith(PLAN_MAGIC):
        return None
    return "engine/plan", f"a serialized {_plan_words(head)}{_WHY}"


def _ultralytics(entry: Entry, head: bytes) -> tuple[str, str] | None:
    length = _u32(head, 0)
    if not 0 < length < entry.size - 4 or length > ULTRALYTICS_META_LIMIT:
        return None
    start = 4 + length
    # The magic after the metadata is the cheap test; JSON is parsed only when it holds.
    end = start + PLAN_HEADER_SIZE
    plan_header = head[start:end] if end <= len(head) else entry.read(start, PLAN_HEADER_SIZE)
    if not plan_header.startswith(PLAN_MAGIC):
        return None
    raw = head[4:start] if start <= len(head) else entry.read(4, length)
    try:
        metadata = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(metadata, dict):
        return None
    described = ", ".join(f"{key} {json.dumps(metadata[key])}" for key in ("task", "imgsz") if key in metadata)
    about = f" ({described})" if described else ""
    words = _plan_words(plan_header) if len(plan_header) >= PLAN_HEADER_SIZE else "TensorRT engine (plan)"
    return (
        "engine/ultralytics",
        f"an Ultralytics TensorRT export{about}: {length} bytes of JSON metadata before a serialized {words}{_WHY}",
    )


def _prefixed(head: bytes) -> tuple[str, str] | None:
    # A magic mid-file is weak evidence alone, so a version either layout accepts must follow it.
    position = head.find(PLAN_MAGIC, 1, PREFIX_WINDOW)
    while position != -1:
        header = head[position : position + PLAN_HEADER_SIZE]
        if _plausible_plan(header):
            return (
                "engine/prefixed",
                f"probably a serialized {_plan_words(header)} behind a {position}-byte prefix"
                f" (a weaker test: the plan magic and a plausible version, not a header at offset 0){_WHY}",
            )
        position = head.find(PLAN_MAGIC, position + 1, PREFIX_WINDOW)
    return None


@dataclass(frozen=True)
class _Scan:
    # The reason for the first base64 plan whose decoded header holds, if any.
    base64_reason: str | None = None
    epcontext: bool = False


def _scan(entry: Entry, head: bytes) -> _Scan:
    """One bounded pass for base64 plans and the EPContext operator name."""
    if entry.size > SCAN_LIMIT or head.startswith(_UNSCANNED_MAGICS):
        return _Scan()
    reason: str | None = None
    epcontext = False
    offset = 0
    while offset < entry.size and (reason is None or not epcontext):
        # Windows overlap so a needle across a chunk boundary is still seen, once.
        window = entry.read(offset, SCAN_CHUNK + _SCAN_OVERLAP)
        for match in _SCAN_PATTERN.finditer(window):
            if match.start() >= SCAN_CHUNK:
                break
            if match.group() == EPCONTEXT:
                epcontext = True
            elif reason is None:
                reason = _base64_plan(entry, offset + match.start(), match.group())
        offset += SCAN_CHUNK
    return _Scan(reason, epcontext)


def _base64_plan(entry: Entry, position: int, text: bytes) -> str | None:
    """Decode the base64 around a needle and check that it is a plan header with a plausible version."""
    needle = next(n for n in _NEEDLES if n.text == text)
    group_start = position - needle.lead
    if group_start < 0:
        return None
    groups = -(-(needle.alignment + PLAN_HEADER_SIZE) // 3)
    encoded = entry.read(group_start, 4 * groups)
    try:
        decoded = base64.b64decode(encoded.translate(_URLSAFE_TO_STANDARD), validate=True)
    except (binascii.Error, ValueError):
        return None
    header = decoded[needle.alignment : needle.alignment + PLAN_HEADER_SIZE]
    if not _plausible_plan(header):
        return None
    return f"a base64-encoded serialized {_plan_words(header)} at byte {group_start}{_WHY}"


# torch-tensorrt writes standard base64; JSON writers sometimes use the URL-safe alphabet.
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _zip_findings(entry: Entry) -> Iterator[tuple[str, str]]:
    if entry.size > ZIP_LIMIT:
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(entry.read()))
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    seen: set[str] = set()
    with archive:
        for info in archive.infolist():
            if info.is_dir() or info.file_size > SCAN_LIMIT:
                continue
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
                continue
            member = entry_of_bytes(f"{entry.path}/{info.filename}", data)
            # Members are not unpacked further: nested archives and ONNX models inside zips
            # are rare enough that a bounded audit leaves them out.
            for rule, reason in _content_findings(member, data[:HEAD_SIZE], onnx_allowed=False):
                if rule not in seen:
                    seen.add(rule)
                    yield rule, f"zip member {info.filename!r} holds {reason}"


def _looks_like_onnx(entry: Entry, head: bytes) -> bool:
    # A ModelProto starts with ir_version (field 1, varint: tag 0x08) and a small value; the parse
    # that follows decides, so this only keeps onnx away from files that cannot be models.
    return entry.name.endswith(".onnx") or (len(head) >= 2 and head[0] == 0x08 and 3 <= head[1] <= 20)


def _onnx_findings(entry: Entry) -> Iterator[tuple[str, str]]:
    if entry.size > ONNX_PARSE_LIMIT:
        yield (
            "engine/onnx-epcontext",
            f"an ONNX model naming an EPContext node, too large to parse here (over {ONNX_PARSE_LIMIT} bytes),"
            " whose node most likely embeds or references a compiled engine",
        )
        return
    import onnx  # Loaded only for files that name EPContext: it is slow to import.
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(entry.read())
    except (DecodeError, ValueError, RuntimeError):
        return
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "EPContext" or node.domain != "com.microsoft":
            continue
        found = _epcontext(node, {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute})
        if found is not None and found[0] not in seen:
            seen.add(found[0])
            yield found


def _epcontext(node: Any, attributes: dict[str, Any]) -> tuple[str, str] | None:
    context = attributes.get("ep_cache_context")
    if not isinstance(context, bytes) or not context:
        return None
    source = attributes.get("source")
    source_text = source.decode(errors="replace") if isinstance(source, bytes) else "an execution provider"
    # ONNX Runtime's default embed_mode is 1: the attribute holds the compiled bytes themselves.
    if attributes.get("embed_mode", 1) == 0:
        return (
            "engine/onnx-epcontext-ref",
            f"an ONNX Runtime EPContext node {node.name!r} references the compiled engine file"
            f" {context.decode(errors='replace')!r} ({source_text}), which the model needs at run time",
        )
    if context.startswith(PLAN_MAGIC) and len(context) >= PLAN_HEADER_SIZE:
        return (
            "engine/onnx-epcontext",
            f"an ONNX Runtime EPContext node {node.name!r} embeds a serialized {_plan_words(context)}{_WHY}",
        )
    return (
        "engine/onnx-epcontext",
        f"an ONNX Runtime EPContext node {node.name!r} embeds {len(context)} bytes compiled by {source_text},"
        " which like an engine are tied to one device and runtime version",
    )
