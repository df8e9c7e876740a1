"""The CLI starts without the heavy libraries: only the commands that use them import them.

scripts/bench-cli measures how long start-up takes; this guards the import boundary that
keeps it short, which timings on a shared machine could not do reliably.
"""

from __future__ import annotations

import json
import subprocess
import sys

from edgekit.profiles import load_profiles

HEAVY = ("onnx", "onnxruntime", "paramiko", "fabric", "cv2", "numpy")
# Prints, as the process ends, which of HEAVY it imported, after whatever the code did.
REPORT_HEAVY = (
    "import atexit, json, sys; "
    f"atexit.register(lambda: print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)); "
)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", REPORT_HEAVY + code, *args], capture_output=True, text=True, timeout=120
    )


def heavy_loaded(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stderr.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_library() -> None:
    loaded = heavy_loaded(run_python("import edgekit.cli"))
    # `python -X importtime -c "import edgekit.cli"` shows which module pulls one in.
    assert loaded == [], f"import edgekit.cli loads {loaded}"


def test_profiles_list_json_works_without_them() -> None:
    done = run_python("from edgekit.cli import main; main()", "profiles", "list", "--json")
    assert heavy_loaded(done) == []
    listed = json.loads(done.stdout)
    assert [profile["name"] for profile in listed] == [profile.name for profile in load_profiles()]
    assert all({"module", "software", "build", "camera"} <= profile.keys() for profile in listed)
