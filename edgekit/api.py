"""edgekit from Python: each CLI command as one function that returns a dataclass.

Provisioning a device from code::

    from pathlib import Path

    from edgekit.api import Endpoint, ProvisionRequest, SourceSpec, provision

    result = provision(
        Endpoint("jetson@192.0.2.10", identity=Path("~/.ssh/id_ed25519").expanduser()),
        ProvisionRequest(
            model=Path("model.onnx"), calib_dir=Path("calib"), holdout_dir=None, source=SourceSpec("csi://0")
        ),
    )
    print(result.release, result.gate)

Every function connects, does its work and disconnects. Host keys are checked against
``known_hosts``; an unknown one is refused unless ``accept_new_host_key`` is set, and a
changed one always is. Errors are ``edgekit.errors.EdgekitError`` subclasses, each one
sentence that names the fix; ``logs`` yields the journal entry by entry, and its connection
closes when the iteration ends. Code that needs provisioning's stages one by one (calibrate,
releases, fleets) uses ``edgekit.provision``: ``plan_provision``, ``plan_release``,
``upload``, ``install_runtime``, ``build_and_gate`` (``build_and_measure``), ``activate``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit import provision as stages
from edgekit.device.logs import LogEntry, LogsRequest, read_journal
from edgekit.device.releases import KEEP, Pruned, Releases, list_releases
from edgekit.device.releases import prune as prune_releases
from edgekit.device.trial import TrialPolicy
from edgekit.exporters import ModelOverrides
from edgekit.linkdrop import naming_drops
from edgekit.profiles import ProfileError
from edgekit.provision import Plan, ProvisionRequest, ProvisionResult, Reporter, RollbackResult
from edgekit.recalibration import CalibrateRequest, CalibrationRefused, CalibrationResult, FrameSource
from edgekit.secret import Secret
from edgekit.source import SourceSpec
from edgekit.ssh.seam import DEFAULT_KNOWN_HOSTS, Connection

if TYPE_CHECKING:
    from edgekit.device.facts import DeviceFacts
    from edgekit.device.status import DeviceStatus

__all__ = [
    "CalibrateRequest",
    "CalibrationRefused",
    "CalibrationResult",
    "Endpoint",
    "FactsReport",
    "FrameSource",
    "LogEntry",
    "LogsRequest",
    "ModelOverrides",
    "Plan",
    "ProvisionRequest",
    "ProvisionResult",
    "Reporter",
    "RollbackResult",
    "SourceSpec",
    "TrialPolicy",
    "calibrate",
    "facts",
    "logs",
    "plan",
    "provision",
    "prune",
    "releases",
    "rollback",
    "status",
]


@dataclass(frozen=True)
class Endpoint:
    """A device and how to reach it over SSH."""

    # [user@]host[:port], or an alias of ~/.ssh/config.
    target: str
    identity: Path | None = None
    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    accept_new_host_key: bool = False
    use_ssh_config: bool = True
    # Read instead of ~/.ssh/config, as `ssh -F` does.
    ssh_config_file: Path | None = None
    # Password login is tried only with a password; sudo's is fed on stdin, never on a command line.
    password: Secret | None = None
    sudo_password: Secret | None = None
    # Told (host, fingerprint) of a host key that accept_new_host_key made it trust.
    on_new_host_key: Callable[[str, str], None] = field(default=lambda host, fingerprint: None, compare=False)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        # fabric and paramiko are imported only by what reaches a device.
        from edgekit.ssh import open_connection, parse_target

        conn = open_connection(
            parse_target(self.target),
            known_hosts=self.known_hosts.expanduser(),
            accept_new_host_key=self.accept_new_host_key,
            identity=self.identity,
            use_ssh_config=self.use_ssh_config,
            ssh_config_file=self.ssh_config_file,
            password=self.password,
            sudo_password=self.sudo_password,
            on_new_host_key=self.on_new_host_key,
        )
        try:
            yield conn
        finally:
            conn.close()


def _endpoint(device: Endpoint | str) -> Endpoint:
    return device if isinstance(device, Endpoint) else Endpoint(device)


@dataclass(frozen=True)
class FactsReport:
    """What a device is, and the profile edgekit would use for it (or why there is none)."""

    target: str
    device: str
    facts: DeviceFacts
    profile: str | None
    how: str | None
    notes: list[str]
    profile_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "facts": self.facts.to_dict()}


def facts(device: Endpoint | str, profile: str | None = None) -> FactsReport:
    """The device's facts, read without writing anything on it, and its resolved profile."""
    from edgekit.device.facts import read_facts
    from edgekit.profiles import load_profiles
    from edgekit.resolve import DeviceIdentity, resolve_profile

    endpoint = _endpoint(device)
    with endpoint.connect() as conn:
        found = read_facts(conn)
    identity = DeviceIdentity.from_facts(found)
    try:
        resolution, error = resolve_profile(identity, load_profiles(), profile).to_dict(), None
    except ProfileError as exc:
        resolution, error = {"profile": None, "how": None, "notes": []}, str(exc)
    return FactsReport(endpoint.target, identity.describe(), found, **resolution, profile_error=error)


def plan(device: Endpoint | str, request: ProvisionRequest, reporter: Reporter | None = None) -> Plan:
    """What ``provision`` would do: the model checked, the device read, its profile and
    settings, the host-side bundle and every preflight check. Nothing on the device changes."""
    with _planned(device, request, reporter or Reporter()) as (_, planned):
        return planned


def provision(device: Endpoint | str, request: ProvisionRequest, reporter: Reporter | None = None) -> ProvisionResult:
    """Check the model, read the device, refuse what would fail there, then build, gate and
    start the camera service (edgekit.provision's stages, in order)."""
    with naming_drops(reporter or Reporter()) as watched, _planned(device, request, watched) as (conn, planned):
        watched.planned(planned)
        return stages.provision(conn, planned, request, watched)


def rollback(
    device: Endpoint | str,
    to: str | None = None,
    policy: TrialPolicy | None = None,
    reporter: Reporter | None = None,
) -> RollbackResult:
    """Back to the previous release, or to the committed release ``to``, through the same
    trial a new release passes (edgekit.provision.roll_back)."""
    with naming_drops(reporter or Reporter()) as watched, _endpoint(device).connect() as conn:
        return stages.roll_back(conn, to, policy or TrialPolicy(), watched)


def calibrate(
    device: Endpoint | str, request: CalibrateRequest, reporter: Reporter | None = None, check: bool = False
) -> CalibrationResult:
    """Recalibrate the serving release's model on frames of the real scene (a folder, a video or
    the device's sample frames), compare it with the serving release on the same held-out
    frames, and switch it in on trial (edgekit.recalibration). A refusal by the gate raises
    ``CalibrationRefused`` with both releases' figures; with ``check``, only the data is
    prepared and reported and nothing is built."""
    from edgekit.recalibration import calibrate as recalibrate

    with naming_drops(reporter or Reporter()) as watched, _endpoint(device).connect() as conn:
        return recalibrate(conn, request, watched, check)


def releases(device: Endpoint | str) -> Releases:
    """Every release on the device, newest first: its model, gate, trial state and size."""
    with _endpoint(device).connect() as conn:
        return list_releases(conn)


def prune(device: Endpoint | str, keep: int = KEEP, check: bool = False) -> Pruned:
    """Remove all but the ``keep`` newest committed releases (never current, previous, the
    committed one or one on trial), then the blobs, engines and caches only they used; with
    ``check``, only say what would go."""
    with _endpoint(device).connect() as conn:
        return prune_releases(conn, keep, check)


def status(device: Endpoint | str) -> DeviceStatus:
    """The camera service's systemd state and its metrics, read without changing anything."""
    from edgekit.device.status import device_status

    with _endpoint(device).connect() as conn:
        return device_status(conn)


def logs(
    device: Endpoint | str,
    request: LogsRequest,
    *,
    on_drop: Callable[[str], None] = lambda text: None,
    stop: threading.Event | None = None,
) -> Iterator[LogEntry]:
    """The camera service's journal (or, with ``request.build``, that release's build unit's),
    newest ``request.lines`` entries first; with ``request.follow``, then each new entry as it
    comes until ``stop`` is set or the caller stops iterating. The connection opens at the
    first entry asked for and closes when the iteration ends; ``on_drop`` hears of a dropped
    link that following reconnects."""
    with _endpoint(device).connect() as conn:
        if stop is None:
            yield from read_journal(conn, request, on_drop=on_drop)
        else:
            yield from read_journal(conn, request, on_drop=on_drop, stopped=stop.is_set, sleep=stop.wait)


@contextlib.contextmanager
def _planned(
    device: Endpoint | str, request: ProvisionRequest, reporter: Reporter
) -> Iterator[tuple[Connection, Plan]]:
    """The model checked (before any connection, so a broken one costs nothing), then the
    device connected and planned for; the connection closes when the block ends."""
    from edgekit.model import inspect_model

    endpoint = _endpoint(device)
    reporter.step("checking the model")
    model = inspect_model(request.model, request.model_overrides)
    reporter.step(f"connecting to {endpoint.target}")
    with endpoint.connect() as conn:
        reporter.step("reading the device")
        yield conn, stages.plan_provision(conn, request, reporter, model)
