"""What the host needs to know about a device before it provisions or deploys to it.

The host runs this file as ``python3 -c <source>`` before anything is installed, so it
writes nothing on the device, imports only the standard library (numpy, cv2, tensorrt
are probed and read as None when missing or broken) and is Python 3.6 code: JetPack 4.6
still ships 3.6, and such a device must get a clear refusal, not a SyntaxError.
Every parser is a pure function of the text a real Jetson shows.
"""

import ctypes
import glob
import grp
import importlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from typing import Any, Dict, Iterable, List, Optional

TEGRA_RELEASE = "/etc/nv_tegra_release"
DEVICE_TREE_DIRS = ("/proc/device-tree", "/sys/firmware/devicetree/base")
CUDA_VERSION_FILES = ("/usr/local/cuda/version.json", "/usr/local/cuda/version.txt")
# The CUDA runtime, newest first: CUDA 13 (JetPack 7), 12 (JetPack 6), 11.4 (JetPack 5, soname 11.0).
CUDART_SONAMES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
# Tried after the library search path: where JetPack, CUDA tarballs and pip's CUDA wheels put it.
CUDART_DIRS = (
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/aarch64-linux/lib",
    "/usr/local/cuda/targets/sbsa-linux/lib",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu/nvidia",
    "/usr/lib/x86_64-linux-gnu",
)
# Packages that say which L4T, JetPack and TensorRT the device has, when Python cannot.
DPKG_PATTERNS = ("nvidia-l4t-core", "nvidia-jetpack", "tensorrt", "libnvinfer[0-9]*", "python3-libnvinfer")
GST_ELEMENTS = ("nvarguscamerasrc", "nvv4l2decoder")
# cudaDevAttrComputeCapabilityMajor / Minor: cudaDeviceProp's layout changed between CUDA 12 and 13.
CUDA_ATTRIBUTE_CC_MAJOR = 75
CUDA_ATTRIBUTE_CC_MINOR = 76
# The nodes CUDA opens on a Jetson: nvhost and nvmap up to L4T 36, nvgpu, nvidia* on Thor.
GPU_NODE_PATTERNS = ("/dev/nvhost-ctrl-gpu", "/dev/nvhost-gpu", "/dev/nvmap", "/dev/nvgpu/*/*", "/dev/nvidia*")
COMMAND_TIMEOUT_S = 20

_TEGRA_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")
_GSTREAMER_RE = re.compile(r"^\s*GStreamer:\s*(\S+)", re.MULTILINE)
_SOC_RE = re.compile(r"^nvidia,(tegra\d+)$")
_BOARD_RE = re.compile(r"p(\d{4})-(\d{4})")
_BOARDIDS_RE = re.compile(r"(?<![0-9])(\d{4})[-:](\d{4})")
# dpkg's desired/status/error flags, as in the first column of ``dpkg -l``.
_DPKG_STATUS_RE = re.compile(r"^[uihrp][ncHUFWti]R?$")
_VERSION_RE = re.compile(r"\d+(?:\.\d+)*")
_MEMINFO_KEYS = {"MemTotal": "total_bytes", "MemAvailable": "available_bytes"}


def parse_tegra_release(text: str) -> Optional[str]:
    """L4T version from /etc/nv_tegra_release: "# R36 (release), REVISION: 4.3, ..." -> "36.4.3"."""
    match = _TEGRA_RE.search(text)
    if match is None:
        return None
    return f"{match.group(1)}.{match.group(2)}"


def parse_device_tree_strings(data: bytes) -> List[str]:
    """A device-tree string list (NUL-separated on disk) as a list."""
    return [entry for entry in data.decode("utf-8", "replace").split("\0") if entry]


def parse_soc(compatible: Iterable[str]) -> Optional[str]:
    """The SoC from /proc/device-tree/compatible, e.g. "nvidia,tegra234" -> "tegra234"."""
    for entry in compatible:
        match = _SOC_RE.match(entry)
        if match is not None:
            return match.group(1)
    return None


def parse_board_ids(compatible: Iterable[str], boardids: str = "") -> List[str]:
    """Module and carrier ids (pXXXX-YYYY) from compatible entries and nvidia,boardids.

    An entry may join carrier and module ("nvidia,p3768-0000+p3767-0005-super"); the
    boardids property spells them "3767:0005:..." on some releases.
    """
    found = []  # type: List[str]
    matches = [_BOARD_RE.findall(entry) for entry in compatible] + [_BOARDIDS_RE.findall(boardids)]
    for board, sku in (pair for pairs in matches for pair in pairs):
        name = f"p{board}-{sku}"
        if name not in found:
            found.append(name)
    return found


def module_entries(compatible: Iterable[str], board_ids: Iterable[str]) -> List[str]:
    """Compatible entries with joined ones split, so a profile can name one module id.

    "nvidia,p3768-0000+p3767-0005-super" also yields "nvidia,p3768-0000",
    "nvidia,p3767-0005-super" and "nvidia,p3767-0005".
    """
    entries = []  # type: List[str]

    def add(entry: str) -> None:
        if entry not in entries:
            entries.append(entry)

    for entry in compatible:
        add(entry)
        vendor, comma, rest = entry.partition(",")
        if not comma:
            continue
        for part in rest.split("+"):
            add(f"{vendor},{part}")
            match = _BOARD_RE.match(part)
            if match is not None:
                add(f"{vendor},{match.group(0)}")
    for board in board_ids:
        add(f"nvidia,{board}")
    return entries


def parse_dpkg(text: str) -> Dict[str, str]:
    """Installed package versions from ``dpkg -l`` rows or ``dpkg-query -W`` output.

    Accepts "ii  name  version  arch  description" rows (and the tab-separated
    "ii \\tname\\tversion" this module asks for) as well as "name\\tversion" rows;
    packages in any state but installed are left out.
    """
    versions = {}  # type: Dict[str, str]
    for line in text.splitlines():
        if "\t" in line:
            # dpkg-query: split on tabs only, because with a pattern it also lists known but
            # not-installed packages as "un \tname\t", whose version field is empty.
            fields = [field.strip() for field in line.split("\t")]
            if len(fields) == 2:
                fields.insert(0, "ii")
        else:
            fields = line.split()
        if len(fields) < 3 or not _DPKG_STATUS_RE.match(fields[0]):
            continue
        status, name, version = fields[:3]
        if status == "ii" and name and version:
            versions[name.split(":")[0]] = version
    return versions


def version_prefix(text: Optional[str]) -> Optional[str]:
    """The dotted version a package version starts with: "10.3.0.30-1+cuda12.5" -> "10.3.0.30"."""
    if not text:
        return None
    match = _VERSION_RE.match(text.split(":")[-1])
    return None if match is None else match.group(0)


def parse_cuda_version(text: str) -> Optional[str]:
    """CUDA version from /usr/local/cuda/version.json (JetPack 5+) or version.txt (JetPack 4)."""
    try:
        data = json.loads(text)
    except ValueError:
        match = re.search(r"CUDA Version\s+(\d+(?:\.\d+)*)", text)
        return None if match is None else match.group(1)
    cuda = data.get("cuda") if isinstance(data, dict) else None
    version = cuda.get("version") if isinstance(cuda, dict) else None
    return version if isinstance(version, str) else None


def parse_meminfo(text: str) -> Dict[str, Optional[int]]:
    """Total and available memory in bytes from /proc/meminfo (which counts in kB)."""
    memory = {key: None for key in _MEMINFO_KEYS.values()}  # type: Dict[str, Optional[int]]
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if name in _MEMINFO_KEYS and fields and fields[0].isdigit():
            memory[_MEMINFO_KEYS[name]] = int(fields[0]) * 1024
    return memory


def parse_gstreamer(build_info: str) -> bool:
    """Whether cv2.getBuildInformation() reports GStreamer, which Jetson CSI cameras need."""
    match = _GSTREAMER_RE.search(build_info)
    return match is not None and match.group(1).upper() == "YES"


def _read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _read_text(path: str) -> Optional[str]:
    data = _read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def _device_tree(name: str) -> Optional[bytes]:
    for directory in DEVICE_TREE_DIRS:
        data = _read_bytes(os.path.join(directory, name))
        if data is not None:
            return data
    return None


def _run(argv: List[str]) -> Optional[str]:
    """stdout of a command, or None when it is missing or hangs (a wedged driver can)."""
    try:
        done = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            universal_newlines=True,  # noqa: UP021 -- text=True is 3.7+, a TypeError on 3.6
            timeout=COMMAND_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def cudart_candidates(python_path: Iterable[str] = ()) -> List[str]:
    """What to hand ctypes.CDLL, in order: each soname by the library search path first,
    then in CUDA's install directories (any /usr/local/cuda-X.Y too), then in pip's
    nvidia/cuda_runtime/lib under ``python_path`` (where TensorRT's wheels find it)."""
    directories = list(CUDART_DIRS) + sorted(glob.glob("/usr/local/cuda-*/lib64"), reverse=True)
    directories += [os.path.join(entry, "nvidia", "cuda_runtime", "lib") for entry in python_path if entry]
    candidates = []
    for soname in CUDART_SONAMES:
        candidates.append(soname)
        candidates.extend(os.path.join(directory, soname) for directory in directories)
    return candidates


def cuda_error(lib: Any, code: int) -> str:
    """cudaGetErrorName: cudaGetErrorString, e.g. "cudaErrorNoDevice: no CUDA-capable device is detected"."""
    lib.cudaGetErrorName.restype = ctypes.c_char_p
    lib.cudaGetErrorString.restype = ctypes.c_char_p
    name = lib.cudaGetErrorName(ctypes.c_int(code)) or b"cudaError %d" % code
    text = lib.cudaGetErrorString(ctypes.c_int(code)) or b"unknown error"
    return "{}: {}".format(name.decode("utf-8", "replace"), text.decode("utf-8", "replace"))


def probe_cuda_runtime(candidates: List[str]) -> Dict[str, Any]:
    """What the device's CUDA runtime says: its library, version, GPUs and compute capability.

    Asks what the TensorRT backend will ask, in the same order; it creates no CUDA context.
    """
    found = {"library": None, "tried": len(candidates), "version": None, "devices": None}  # type: Dict[str, Any]
    found.update({"compute_capability": None, "error": None})
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        found["library"] = getattr(lib, "_name", candidate)
        value = ctypes.c_int(0)
        if lib.cudaRuntimeGetVersion(ctypes.byref(value)) == 0:
            found["version"] = f"{value.value // 1000}.{value.value % 1000 // 10}"
        code = lib.cudaGetDeviceCount(ctypes.byref(value))
        if code != 0:
            found["error"] = cuda_error(lib, code)
            return found
        found["devices"] = value.value
        if value.value:
            capability = []
            for attribute in (CUDA_ATTRIBUTE_CC_MAJOR, CUDA_ATTRIBUTE_CC_MINOR):
                code = lib.cudaDeviceGetAttribute(ctypes.byref(value), attribute, 0)
                if code != 0:
                    found["error"] = cuda_error(lib, code)
                    return found
                capability.append(str(value.value))
            found["compute_capability"] = ".".join(capability)
        return found
    return found


def _gpu_nodes() -> List[Dict[str, str]]:
    nodes = []
    for path in sorted({path for pattern in GPU_NODE_PATTERNS for path in glob.glob(pattern)}):
        try:
            status = os.stat(path)
        except OSError:
            continue
        try:
            group = grp.getgrgid(status.st_gid).gr_name
        except KeyError:
            group = str(status.st_gid)
        nodes.append({"path": path, "group": group, "mode": f"{status.st_mode & 0o7777:04o}"})
    return nodes


def _pycuda() -> Optional[Dict[str, Optional[str]]]:
    # `import pycuda` loads nothing compiled; only the driver module and init() prove it works.
    driver = _import("pycuda.driver")
    if driver is None:
        return None
    package = _import("pycuda")
    found = {"version": str(getattr(package, "VERSION_TEXT", "unknown")), "error": None}  # type: Dict[str, Optional[str]]
    try:
        driver.init()
    except Exception as exc:  # noqa: BLE001 - pycuda's own errors share no base with ImportError
        found["error"] = str(exc)
    return found


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001
        # A broken install (missing libnvinfer, numpy ABI mismatch) raises more than
        # ImportError; either way the host should see the package as unusable, not a crash.
        return None


def _version(name: str) -> Optional[str]:
    module = _import(name)
    return None if module is None else str(getattr(module, "__version__", "unknown"))


def describe_jetson(
    release_text: Optional[str],
    model: Optional[bytes],
    compatible: bytes,
    boardids: bytes,
    packages: Dict[str, str],
) -> Dict[str, Any]:
    """The Jetson identity from the raw contents of its release file and device tree."""
    release = release_text.splitlines()[0] if release_text else None
    l4t = None if release is None else parse_tegra_release(release)
    l4t_source = "nv_tegra_release" if l4t else None
    if l4t is None and "nvidia-l4t-core" in packages:
        l4t, l4t_source = version_prefix(packages["nvidia-l4t-core"]), "dpkg"
    entries = parse_device_tree_strings(compatible)
    board_ids = parse_board_ids(entries, boardids.decode("utf-8", "replace"))
    return {
        "nv_tegra_release": release,
        "l4t": l4t,
        "l4t_source": l4t_source,
        "jetpack": version_prefix(packages.get("nvidia-jetpack")),
        "model": None if model is None else model.decode("utf-8", "replace").rstrip("\0").strip(),
        "compatible": entries,
        "soc": parse_soc(entries),
        "board_ids": board_ids,
        "module_entries": module_entries(entries, board_ids),
    }


def _packages() -> Dict[str, str]:
    query = ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${binary:Package}\t${Version}\n"]
    return parse_dpkg(_run(query + list(DPKG_PATTERNS)) or "")


def _tensorrt(packages: Dict[str, str]) -> Dict[str, Optional[str]]:
    package = None
    for name in sorted(packages):
        if name in ("tensorrt", "python3-libnvinfer") or re.match(r"^libnvinfer\d+$", name):
            package = version_prefix(packages[name])
            break
    return {"python": _version("tensorrt"), "package": package}


def _cuda() -> Optional[str]:
    for path in CUDA_VERSION_FILES:
        text = _read_text(path)
        if text:
            return parse_cuda_version(text)
    return None


def _cv2() -> Optional[Dict[str, Any]]:
    cv2 = _import("cv2")
    if cv2 is None:
        return None
    return {"version": cv2.__version__, "gstreamer": parse_gstreamer(cv2.getBuildInformation())}


def _gst_elements() -> Optional[Dict[str, bool]]:
    if shutil.which("gst-inspect-1.0") is None:
        return None
    found = {}
    for element in GST_ELEMENTS:
        try:
            done = subprocess.run(
                ["gst-inspect-1.0", "--exists", element],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=COMMAND_TIMEOUT_S,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        found[element] = done.returncode == 0
    return found


def _disk(state_dir: str) -> Dict[str, Any]:
    # The state directory does not exist before the first provision; report its future home.
    path = os.path.abspath(state_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    usage = shutil.disk_usage(path)
    return {"path": path, "free_bytes": usage.free, "total_bytes": usage.total}


def _memory() -> Dict[str, Optional[int]]:
    return parse_meminfo(_read_text("/proc/meminfo") or "")


def _cameras() -> Dict[str, Any]:
    by_id = {}
    for link in sorted(glob.glob("/dev/v4l/by-id/*")):
        by_id[link] = os.path.realpath(link)
    return {"video": sorted(glob.glob("/dev/video*")), "by_id": by_id}


def _glibc() -> Optional[str]:
    # The C library that is installed; platform.libc_ver() on Python < 3.8 reports the
    # newest glibc symbol the interpreter links against instead.
    try:
        name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
    except (ValueError, OSError):
        return None
    return version if name == "glibc" and version else None


def collect_facts(state_dir: str = "/var/lib/edgekit") -> Dict[str, Any]:
    packages = _packages()
    return {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": {
            "machine": platform.machine(),
            "system": platform.system(),
            "glibc": _glibc(),
        },
        "jetson": describe_jetson(
            _read_text(TEGRA_RELEASE),
            _device_tree("model"),
            _device_tree("compatible") or b"",
            _device_tree("nvidia,boardids") or b"",
            packages,
        ),
        "packages": packages,
        "tensorrt": _tensorrt(packages),
        "cuda": _cuda(),
        "cuda_runtime": probe_cuda_runtime(cudart_candidates(sys.path)),
        "gpu_nodes": _gpu_nodes(),
        "cv2": _cv2(),
        "gstreamer_elements": _gst_elements(),
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        # The TensorRT backend's optional pycuda seam (build cuda = "pycuda").
        "pycuda": _pycuda(),
        "systemd": os.path.isdir("/run/systemd/system"),
        "disk": _disk(state_dir),
        "memory": _memory(),
        "cameras": _cameras(),
        "hostname": socket.gethostname(),
    }


if __name__ == "__main__":
    # As ``python3 -c <this source> [state_dir]``: the host's way to ask before installing.
    print(json.dumps(collect_facts(*sys.argv[1:2]), sort_keys=True))
