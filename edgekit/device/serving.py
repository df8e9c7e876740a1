"""What the device serves now, read in one round trip (the agent's ``lifecycle serving``).

A re-provision asks this before it uploads anything, to tell whether the release it would
make is already serving, committed, exactly as it would lay it out (edgekit.provision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekit.device.agent import json_answer
from edgekit.device.answers import BuildAnswer, ResultRecord
from edgekit.device.layout import CURRENT_LINK, STATE_DIR, VENV_LINK
from edgekit.device.service import own_result
from edgekit.device.trial import Lifecycle
from edgekit.device.wire import parse
from edgekit.errors import DeviceError
from edgekit.ssh.seam import Connection


@dataclass(frozen=True)
class Serving:
    lifecycle: Lifecycle
    # The current release's build answer: its gate figures and engine; None when it has none
    # or its build failed.
    build: BuildAnswer | None
    # The sha256 of the current release's release.json, and of each file asked about (None: absent).
    release_json: str | None
    files: dict[str, str | None]
    # Where the runtime venv link points.
    venv: str | None
    # The camera service's ActiveState, MainPID and UnitFileState.
    service: dict[str, str]
    # The newest line of the results file, whichever process wrote it.
    result: str | None

    def newest_result(self) -> ResultRecord | None:
        """The newest result, if the service's running process wrote it."""
        return own_result(self.result or "", self.service.get("MainPID"))


def read_serving(conn: Connection, files: Sequence[str]) -> Serving | None:
    """What the device serves, with the sha256 of each of ``files``; None when it serves no
    release or cannot say (no runtime yet, an agent older than the question, a torn answer),
    which a provision takes as "provision it"."""
    # The current release's own agent answers: the one a provision that changes nothing ships.
    done = conn.run(
        [f"{VENV_LINK}/bin/python", f"{CURRENT_LINK}/agent.pyz", "lifecycle", "serving", "--state-dir", STATE_DIR]
        + list(files),
        sudo=True,
        check=False,
    )
    answer = json_answer(done) if done.ok else None
    if answer is None or answer.get("current") is None:
        return None
    build = answer.get("build")
    # A failed build's answer is its error: no gate figures.
    data = {**answer, "lifecycle": answer, "build": build if isinstance(build, dict) and "gate" in build else None}
    try:
        return parse(Serving, data, "the device's serving answer")
    except DeviceError:
        return None
