"""NVIDIA files found by name, by ELF SONAME and by DT_NEEDED, on ELF files gcc builds here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgekit.audit import nvidia
from edgekit.audit.findings import Finding
from edgekit.audit.tree import Entry, entry_of_bytes, walk_directory


def rules(entry: Entry) -> list[tuple[str, str]]:
    return [(f.rule, f.reason) for f in nvidia.check(entry)]


def only(entry: Entry) -> Finding:
    found = list(nvidia.check(entry))
    assert len(found) == 1, found
    return found[0]


class Corpus:
    """Tiny ELF files compiled into a temporary folder: no binaries are committed."""

    def __init__(self, folder: Path) -> None:
        gcc = shutil.which("gcc")
        if gcc is None:
            # Not a skip: these tests are the only check of the ELF path and must run in CI.
            pytest.fail("gcc is not installed; it is needed to build the test ELF files (apt-get install gcc)")
        self.gcc = gcc
        self.folder = folder
        (folder / "stub.c").write_text("int edgekit_stub(void) { return 0; }\n")
        (folder / "main.c").write_text("int edgekit_stub(void);\nint main(void) { return edgekit_stub(); }\n")
        # 5 MiB of initialised data between the headers at the start and the section headers at the end.
        (folder / "big.c").write_text("const char edgekit_pad[5 << 20] = {1};\n")

    def shared(self, name: str, soname: str | None = None, source: str = "stub.c") -> Path:
        out = self.folder / name
        flags = [f"-Wl,-soname,{soname}"] if soname else []
        self.compile(["-shared", "-fPIC", *flags, "-o", str(out), str(self.folder / source)])
        return out

    def compile(self, args: list[str]) -> None:
        subprocess.run([self.gcc, *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("elves"))


def file_entry(path: Path, name: str | None = None) -> Entry:
    return entry_of_bytes(name or path.name, path.read_bytes())


def test_a_renamed_libnvinfer_is_conditional_by_soname(corpus: Corpus) -> None:
    weights = corpus.shared("weights.so", soname="libnvinfer.so.10")
    finding = only(file_entry(weights, "models/weights.so"))
    assert finding.path == "models/weights.so"
    assert finding.rule == nvidia.CONDITIONAL
    assert "by SONAME libnvinfer.so.10" in finding.reason
    assert "redistributable only under TensorRT SLA §12.1" in finding.reason


def test_a_versioned_libnvinfer_is_found_by_name_and_soname(corpus: Corpus) -> None:
    library = corpus.shared("libnvinfer.so.10.3.0", soname="libnvinfer.so.10")
    finding = only(file_entry(library, "usr/lib/aarch64-linux-gnu/libnvinfer.so.10.3.0"))
    assert finding.rule == nvidia.CONDITIONAL
    assert "by SONAME libnvinfer.so.10 and by name" in finding.reason


def test_a_binary_linking_the_onnx_parser_cannot_ship(corpus: Corpus) -> None:
    parser = corpus.shared("libnvonnxparser.so.10", soname="libnvonnxparser.so.10")
    detector = corpus.folder / "detector"
    # --no-as-needed: keep the DT_NEEDED entry whatever the distribution's linker default is.
    corpus.compile(
        [
            "-o",
            str(detector),
            str(corpus.folder / "main.c"),
            "-Wl,--no-as-needed",
            f"-L{parser.parent}",
            "-l:libnvonnxparser.so.10",
        ]
    )
    finding = only(file_entry(detector, "opt/product/bin/detector"))
    assert finding.rule == nvidia.LINKS_NOT_REDISTRIBUTABLE
    assert "needs libnvonnxparser.so.10" in finding.reason
    assert "TensorRT SLA §12.1 names only the libnvinfer and libnvinfer_plugin libraries" in finding.reason
    # The parser itself is not redistributable, by name and SONAME.
    parser_finding = only(file_entry(parser))
    assert parser_finding.rule == nvidia.NOT_REDISTRIBUTABLE
    assert "ONNX parser" in parser_finding.reason


def test_a_binary_linking_only_redistributable_libraries_has_no_link_finding(corpus: Corpus) -> None:
    corpus.shared("libcudart.so.12", soname="libcudart.so.12")
    app = corpus.folder / "app"
    corpus.compile(
        [
            "-o",
            str(app),
            str(corpus.folder / "main.c"),
            "-Wl,--no-as-needed",
            f"-L{corpus.folder}",
            "-l:libcudart.so.12",
        ]
    )
    assert rules(file_entry(app)) == []


def test_a_plain_library_and_a_text_file_are_not_nvidia(corpus: Corpus) -> None:
    assert rules(file_entry(corpus.shared("libfoo.so", soname="libfoo.so.1"))) == []
    assert rules(entry_of_bytes("README.txt", b"libnvinfer.so.10 is mentioned here\n")) == []


def test_a_truncated_elf_counts_by_name_only(corpus: Corpus) -> None:
    head = corpus.shared("libnvinfer_plugin.so.10", soname="libnvinfer_plugin.so.10").read_bytes()[:80]
    assert rules(entry_of_bytes("libfoo.so", head)) == []
    finding = only(entry_of_bytes("libnvinfer_plugin.so.10", head))
    assert finding.rule == nvidia.CONDITIONAL
    assert "found by name" in finding.reason


@pytest.mark.parametrize(
    ("name", "rule", "words"),
    [
        ("usr/src/tensorrt/bin/trtexec", nvidia.NOT_REDISTRIBUTABLE, "TensorRT tool trtexec"),
        ("usr/local/cuda/bin/nvcc", nvidia.NOT_REDISTRIBUTABLE, "CUDA EULA §1.1.2"),
        ("usr/local/cuda/bin/ptxas", nvidia.NOT_REDISTRIBUTABLE, "for your internal use only"),
        ("opt/nsight/NSYS", nvidia.NOT_REDISTRIBUTABLE, "CUDA developer tool nsys"),
        ("libnvonnxparser.so.10.3.0", nvidia.NOT_REDISTRIBUTABLE, "ONNX parser"),
        ("libnvinfer_builder_resource.so.10.3.0", nvidia.NOT_REDISTRIBUTABLE, "builder resource"),
        ("libnvparsers.so.8", nvidia.NOT_REDISTRIBUTABLE, "Caffe/UFF parser"),
        ("dist-packages/tensorrt/tensorrt.so", nvidia.NOT_REDISTRIBUTABLE, "Python bindings"),
        ("tensorrt_lean/tensorrt_lean.cpython-310-aarch64-linux-gnu.so", nvidia.NOT_REDISTRIBUTABLE, "Python bindings"),
        ("usr/local/cuda/lib64/libcudla.so.1.0.0", nvidia.NOT_REDISTRIBUTABLE, "Attachment A does not list it"),
        ("libcudnn_static.a", nvidia.NOT_REDISTRIBUTABLE, "the runtime files .so and .dll"),
        ("LIBNVINFER_PLUGIN.SO.8", nvidia.CONDITIONAL, "TensorRT SLA §12.1"),
        ("libnvinfer_lean.so.10", nvidia.CONDITIONAL, "the licence shipped with this TensorRT naming it"),
        ("libcublasLt.so.12.6.1.4", nvidia.CONDITIONAL, "CUDA EULA Attachment A"),
        ("libcudart_static.a", nvidia.CONDITIONAL, "not modified in any way (§2.3)"),
        ("libnvrtc-builtins.so.12.6", nvidia.CONDITIONAL, "NVRTC"),
        ("libcudnn_ops_infer.so.8", nvidia.CONDITIONAL, "cuDNN SLA Supplement §2"),
        ("libcudnn.so.9", nvidia.CONDITIONAL, "cuDNN licence text shipped too"),
    ],
)
def test_names_in_any_case_and_version_count_by_name(name: str, rule: str, words: str) -> None:
    finding = only(entry_of_bytes(name, b"not an ELF file"))
    assert finding.rule == rule
    assert "found by name" in finding.reason
    assert words in finding.reason


@pytest.mark.parametrize("name", ["libnvinfer_wrapper.so", "mylibcudart.so", "nvcc.txt", "trtexec.log", "tensorrt.py"])
def test_names_that_only_look_alike_are_not_nvidia(name: str) -> None:
    assert rules(entry_of_bytes(name, b"")) == []


def test_a_large_elf_is_read_only_in_its_headers(corpus: Corpus) -> None:
    big = corpus.shared("libbig.so", soname="libcudart.so.12", source="big.c")
    size = big.stat().st_size
    assert size > 5 << 20
    data = big.read_bytes()
    read: list[int] = []

    def counting(offset: int, length: int) -> bytes:
        chunk = data[offset:] if length < 0 else data[offset : offset + length]
        read.append(len(chunk))
        return chunk

    finding = only(Entry("libbig.so", size, counting))
    assert finding.rule == nvidia.CONDITIONAL
    assert "by SONAME libcudart.so.12" in finding.reason
    assert sum(read) < 64 << 10, f"read {sum(read)} bytes of {size}"


def test_a_directory_walk_gives_the_same_findings(corpus: Corpus, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    shutil.copy(corpus.shared("weights.so", soname="libnvinfer.so.10"), tmp_path / "lib" / "weights.so")
    (tmp_path / "trtexec").write_text("#!/bin/sh\n")
    found = [(f.path, f.rule) for entry in walk_directory(tmp_path) for f in nvidia.check(entry)]
    assert found == [("lib/weights.so", nvidia.CONDITIONAL), ("trtexec", nvidia.NOT_REDISTRIBUTABLE)]


@pytest.mark.parametrize(
    ("package", "rule"),
    [
        ("libnvinfer10", nvidia.CONDITIONAL),
        ("libnvinfer-plugin8", nvidia.CONDITIONAL),
        ("libnvonnxparsers10", nvidia.NOT_REDISTRIBUTABLE),
        ("libnvinfer-bin", nvidia.NOT_REDISTRIBUTABLE),
        ("python3-libnvinfer-lean", nvidia.NOT_REDISTRIBUTABLE),
        ("libcudla-12-6", nvidia.NOT_REDISTRIBUTABLE),
    ],
)
def test_apt_packages_map_to_the_same_kinds(package: str, rule: str) -> None:
    kind = nvidia.kind_of_package(package)
    assert kind is not None and kind.rule == rule
    assert nvidia.kind_of_package("libc6") is None
