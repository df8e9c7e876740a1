"""NVIDIA files in a tree and what their licences let a product do with them.

A file is recognised by its name, by its ELF SONAME (a renamed library is still that library) and,
for the product's own binaries, by the ELF DT_NEEDED entries that pull in a library the product may
not ship. Clause citations and file lists follow the audit reference (CUDA EULA with its
Attachment A, the TensorRT SLA shipped in NVIDIA's wheels, the cuDNN SLA Supplement).

Rules:

- ``nvidia/not-redistributable``: no licence lets a product ship the file (ONNX parser, builder
  resources, the Python bindings, compilers and developer tools, ...).
- ``nvidia/conditional``: redistributable runtime, but only under the conditions its licence sets.
- ``nvidia/links-not-redistributable``: a non-NVIDIA binary that needs a not-redistributable library
  at load time, so the product cannot run without shipping (or expecting) that library.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit.audit.findings import Finding
from edgekit.audit.tree import Entry

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

NOT_REDISTRIBUTABLE = "nvidia/not-redistributable"
CONDITIONAL = "nvidia/conditional"
LINKS_NOT_REDISTRIBUTABLE = "nvidia/links-not-redistributable"

ELF_MAGIC = b"\x7fELF"

# Clause texts, quoted from the reference's reading of each licence.
_CUDA_CONDITIONS = (
    "CUDA EULA Attachment A, i.e. in object code incorporated into an application with material additional "
    "functionality and accessed only by it (§1.1.1, §1.1.2), not as a stand-alone product (§1.2), "
    "and with the object code files not modified in any way (§2.3)"
)
_CUDA_TOOL = (
    "CUDA EULA §1.1.2: a developer tool not identified as distributable is for your internal use only, "
    "and no compiler or tool is listed in Attachment A"
)
_CUDA_UNLISTED = (
    "CUDA EULA §1.1.1 lets you distribute only the portions identified as distributable, "
    "and Attachment A does not list it"
)
_TRT_CONDITIONS = (
    'TensorRT SLA §12.1 "TensorRT DISTRIBUTION", i.e. solely in binary form, only as a component of your own '
    "software products having additional material functionality, to licensees on terms at least as restrictive, "
    "and not as a stand-alone product (§2.1(vii))"
)
_TRT_UNNAMED = (
    "TensorRT SLA §12.1 names only the libnvinfer and libnvinfer_plugin libraries as distributable "
    "(its Jetson clause allows TensorRT only in its entirety, to create software development kits)"
)
# Not named by the wheel SLA; the newer TensorRT Supplement reportedly lists the runtime libraries,
# but the reference could not read its text, so the condition includes checking the shipped copy.
_TRT_SUPPLEMENT_CONDITIONS = (
    "the licence shipped with this TensorRT naming it (TensorRT SLA §12.1 names only libnvinfer and libnvinfer_plugin; "
    "the TensorRT Supplement reportedly lists the runtime libraries), then the same §12.1 conditions"
)
_CUDNN_CONDITIONS = (
    'the cuDNN SLA Supplement §2 ("the runtime files .so and .dll"), with the cuDNN licence text shipped too, '
    "since a CUDA EULA does not cover cuDNN"
)
_CUDNN_STATIC = 'cuDNN SLA Supplement §2 names only "the runtime files .so and .dll" as distributable'


@dataclass(frozen=True)
class Kind:
    """What an NVIDIA file is and the rule and licence clause that apply to it."""

    what: str
    rule: str
    clause: str

    def reason(self, how: str) -> str:
        if self.rule == CONDITIONAL:
            return f"{self.what}, found {how}: redistributable only under {self.clause}."
        return f"{self.what}, found {how}: not redistributable; {self.clause}."


def _cuda(what: str) -> Kind:
    return Kind(f"CUDA {what}", CONDITIONAL, _CUDA_CONDITIONS)


# Library stems (lower case, without "lib…" version, ".so…" or "_static.a"): CUDA Attachment A
# covers names "that have version number or architecture specific information embedded in the
# file name", so every versioned variant of a stem is the same file kind.
_LIBRARIES: dict[str, Kind] = {
    "libnvinfer": Kind("TensorRT runtime library libnvinfer", CONDITIONAL, _TRT_CONDITIONS),
    "libnvinfer_plugin": Kind("TensorRT plugin library libnvinfer_plugin", CONDITIONAL, _TRT_CONDITIONS),
    "libnvinfer_lean": Kind("TensorRT lean runtime libnvinfer_lean", CONDITIONAL, _TRT_SUPPLEMENT_CONDITIONS),
    "libnvinfer_dispatch": Kind(
        "TensorRT dispatch runtime libnvinfer_dispatch", CONDITIONAL, _TRT_SUPPLEMENT_CONDITIONS
    ),
    "libnvinfer_vc_plugin": Kind(
        "TensorRT version-compatible plugin library libnvinfer_vc_plugin", CONDITIONAL, _TRT_SUPPLEMENT_CONDITIONS
    ),
    "libnvparsers": Kind("TensorRT Caffe/UFF parser libnvparsers", NOT_REDISTRIBUTABLE, _TRT_UNNAMED),
    "libcudla": Kind("CUDA DLA library libcudla", NOT_REDISTRIBUTABLE, _CUDA_UNLISTED),
    "libcudart": _cuda("runtime libcudart"),
    "libcudadevrt": _cuda("device runtime libcudadevrt"),
    "libculibos": _cuda("library libculibos"),
    "libcufft": _cuda("cuFFT library libcufft"),
    "libcufftw": _cuda("cuFFT library libcufftw"),
    "libcublas": _cuda("cuBLAS library libcublas"),
    "libcublaslt": _cuda("cuBLAS library libcublasLt"),
    "libnvblas": _cuda("cuBLAS library libnvblas"),
    "libcusparse": _cuda("cuSPARSE library libcusparse"),
    "libcusolver": _cuda("cuSOLVER library libcusolver"),
    "libcurand": _cuda("cuRAND library libcurand"),
    "libnvjpeg": _cuda("nvJPEG library libnvjpeg"),
    "libnvrtc": _cuda("NVRTC library libnvrtc"),
    "libnvrtc-builtins": _cuda("NVRTC library libnvrtc-builtins"),
    "libnvvm": _cuda("NVVM library libnvvm"),
    "libnvjitlink": _cuda("JitLink library libnvJitLink"),
    "libcupti": _cuda("profiling library libcupti"),
    "libnvtoolsext": _cuda("NVTX library libnvToolsExt"),
    "libnvtx3interop": _cuda("NVTX library libnvtx3interop"),
    "libcuda": _cuda("driver library libcuda"),
    "libnvidia-ptxjitcompiler": _cuda("driver library libnvidia-ptxjitcompiler"),
    "libnvptxcompiler": _cuda("PTX compiler library libnvptxcompiler"),
    "libcufile": _cuda("cuFile library libcufile"),
    "libcufile_rdma": _cuda("cuFile library libcufile_rdma"),
    **{
        f"libnpp{part}": _cuda(f"NPP library libnpp{part}")
        for part in ("c", "ial", "icc", "icom", "idei", "if", "ig", "im", "ist", "isu", "itc", "s")
    },
}

# Families whose members carry more than a version in the name (the builder resource has the full
# TensorRT version, cuDNN splits into sub-libraries): matched by stem prefix.
_LIBRARY_PREFIXES: tuple[tuple[str, Kind], ...] = (
    ("libnvonnxparser", Kind("TensorRT ONNX parser libnvonnxparser", NOT_REDISTRIBUTABLE, _TRT_UNNAMED)),
    (
        "libnvinfer_builder_resource",
        Kind("TensorRT builder resource library libnvinfer_builder_resource", NOT_REDISTRIBUTABLE, _TRT_UNNAMED),
    ),
    ("libcudnn", Kind("cuDNN runtime library", CONDITIONAL, _CUDNN_CONDITIONS)),
)
_CUDNN_STATIC_KIND = Kind("cuDNN static library", NOT_REDISTRIBUTABLE, _CUDNN_STATIC)

_TOOL_KINDS: dict[str, Kind] = {
    "trtexec": Kind("TensorRT tool trtexec", NOT_REDISTRIBUTABLE, _TRT_UNNAMED),
    **{
        tool: Kind(f"CUDA developer tool {tool}", NOT_REDISTRIBUTABLE, _CUDA_TOOL)
        for tool in ("nvcc", "ptxas", "fatbinary", "cuda-gdb", "nsys", "ncu", "compute-sanitizer")
    },
}

_OTHER_FILES: dict[str, Kind] = {
    "libdevice.10.bc": _cuda("libdevice bitcode libdevice.10.bc"),
}

# "<stem>[_static].a" or "<stem>.so[.<version>]"; the stem is lazy so "_static" and the version fall outside it.
_LIBRARY_NAME = re.compile(r"(?P<stem>.+?)(?P<static>_static)?(?:\.so(?:\.\d[\w.]*)?|(?P<archive>\.a))")
# The bindings are built with PREFIX "" and OUTPUT_NAME <module>; pip may add a CPython ABI tag.
_TRT_BINDINGS = re.compile(r"tensorrt(?:_lean|_dispatch)?(?:\.cpython-[\w-]+|\.abi3)?\.so")
_TRT_BINDINGS_KIND = Kind("TensorRT Python bindings", NOT_REDISTRIBUTABLE, _TRT_UNNAMED)


def kind_of_name(name: str) -> Kind | None:
    """The NVIDIA file kind a file name or SONAME stands for, in any case and any version, or None."""
    lower = name.lower()
    if lower in _TOOL_KINDS:
        return _TOOL_KINDS[lower]
    if lower in _OTHER_FILES:
        return _OTHER_FILES[lower]
    if _TRT_BINDINGS.fullmatch(lower):
        return _TRT_BINDINGS_KIND
    match = _LIBRARY_NAME.fullmatch(lower)
    if match is None:
        return None
    stem = match["stem"]
    static = bool(match["static"] or match["archive"])
    if stem in _LIBRARIES:
        return _LIBRARIES[stem]
    for prefix, kind in _LIBRARY_PREFIXES:
        if stem.startswith(prefix):
            return _CUDNN_STATIC_KIND if static and prefix == "libcudnn" else kind
    return None


# apt package names from the reference (JetPack 5/6/7), for matching a Debian dpkg status file.
_PACKAGES: tuple[tuple[re.Pattern[str], Kind], ...] = (
    (re.compile(r"libnvinfer(?:8|10)"), _LIBRARIES["libnvinfer"]),
    (re.compile(r"libnvinfer-plugin(?:8|10)"), _LIBRARIES["libnvinfer_plugin"]),
    (re.compile(r"libnvinfer-lean\d+"), _LIBRARIES["libnvinfer_lean"]),
    (re.compile(r"libnvinfer-dispatch\d+"), _LIBRARIES["libnvinfer_dispatch"]),
    (re.compile(r"libnvinfer-vc-plugin\d+"), _LIBRARIES["libnvinfer_vc_plugin"]),
    (re.compile(r"libnvonnxparsers\d+"), _LIBRARY_PREFIXES[0][1]),
    (re.compile(r"libnvparsers\d+"), _LIBRARIES["libnvparsers"]),
    (re.compile(r"libnvinfer-bin"), _TOOL_KINDS["trtexec"]),
    (re.compile(r"python3-libnvinfer(?:-lean|-dispatch)?"), _TRT_BINDINGS_KIND),
    (re.compile(r"libcudla-\d+-\d+"), _LIBRARIES["libcudla"]),
)


def kind_of_package(package: str) -> Kind | None:
    """The NVIDIA file kind an apt package installs (e.g. ``libnvonnxparsers10``), or None."""
    for pattern, kind in _PACKAGES:
        if pattern.fullmatch(package.lower()):
            return kind
    return None


class _EntryStream(io.RawIOBase):
    """A seekable read-only stream over ``Entry.read``: pyelftools reads only the parts it parses."""

    def __init__(self, entry: Entry) -> None:
        super().__init__()
        self._entry = entry
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._entry.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._entry.read(self._position, len(view))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


@dataclass(frozen=True)
class _Dynamic:
    soname: str | None
    needed: tuple[str, ...]


def _dynamic(entry: Entry) -> _Dynamic | None:
    """SONAME and DT_NEEDED of an ELF entry; None when it is not an ELF file or not a readable one."""
    if entry.read(0, 4) != ELF_MAGIC:
        return None
    # Imported here: only ELF files need pyelftools, and the CLI starts without heavy imports.
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.elffile import ELFFile

    # A small buffer: pyelftools reads a dynamic tag or 64 string bytes at a time, and each
    # Entry.read of a compressed tarball member seeks from the member's start.
    stream = io.BufferedReader(_EntryStream(entry), buffer_size=4096)
    soname: str | None = None
    needed: list[str] = []
    try:
        elf = ELFFile(stream)
        # The PT_DYNAMIC segment is what the loader reads: program headers sit at the start of the
        # file, and it works when section headers are stripped.
        for segment in elf.iter_segments("PT_DYNAMIC"):
            if not isinstance(segment, DynamicSegment):
                continue
            # pyelftools sets .soname and .needed as instance attributes that its types do not declare.
            for tag in segment.iter_tags():
                if tag.entry.d_tag == "DT_SONAME":
                    soname = str(vars(tag)["soname"])
                elif tag.entry.d_tag == "DT_NEEDED":
                    needed.append(str(vars(tag)["needed"]))
    # A truncated or corrupt ELF is audited by name only, rather than stopping the whole audit;
    # pyelftools reports bad structures as ELFError, out-of-range tables as IndexError/ValueError.
    except (ELFError, IndexError, ValueError):
        return None
    return _Dynamic(soname, tuple(needed))


def check(entry: Entry) -> Iterator[Finding]:
    """NVIDIA findings for one file: by name, by ELF SONAME and by the libraries it needs."""
    by_name = kind_of_name(entry.name)
    dynamic = _dynamic(entry)
    by_soname = kind_of_name(dynamic.soname) if dynamic and dynamic.soname else None

    if by_soname is not None and dynamic is not None:
        how = f"by SONAME {dynamic.soname}" + (" and by name" if by_name == by_soname else "")
        yield Finding(entry.path, by_soname.rule, by_soname.reason(how))
    # The SONAME decides what a library is; the name adds a finding only under another rule.
    if by_name is not None and (by_soname is None or by_name.rule != by_soname.rule):
        yield Finding(entry.path, by_name.rule, by_name.reason("by name"))

    # An NVIDIA file's own finding already covers it; the link rule is for the product's binaries.
    if dynamic is None or by_name is not None or by_soname is not None:
        return
    for needed in dynamic.needed:
        kind = kind_of_name(needed)
        if kind is not None and kind.rule == NOT_REDISTRIBUTABLE:
            yield Finding(
                entry.path,
                LINKS_NOT_REDISTRIBUTABLE,
                f"needs {needed} at load time (ELF DT_NEEDED), the {kind.what}, which a product may not "
                f"redistribute: {kind.clause}.",
            )
            # One finding per file and rule: the first such library is enough to block the binary.
            return
