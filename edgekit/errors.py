"""The one exception tree of edgekit; the CLI maps each branch to an exit code.

    EdgekitError                       exit 1
    ├── AuditFailed                    exit 1  edgekit audit found what its policy calls an error
    ├── UsageError                     exit 2  a bad profile, config file or source URI
    │   ├── ConfigError                a malformed or unknown setting (edgekit.settings)
    │   └── ProfileError               a missing or malformed device profile (edgekit.profiles)
    │       └── UnrecognisedDevice     no profile fits the device (edgekit.resolve)
    ├── ModelError                     exit 3  broken or unsupported ONNX, bad calibration data
    ├── ConnectionFailed               exit 4
    │   ├── DeviceUnreachable          no route, refused, timed out
    │   │   └── LinkDropped            the link went mid-command: names the step and what a re-run does
    │   ├── AuthFailed                 the device refused our key
    │   ├── UnknownHostKey             first contact without --accept-new-host-key
    │   ├── HostKeyChanged             known_hosts holds another key for this host
    │   └── HostKeyRevoked             known_hosts marks the key (or its certificate's CA) @revoked
    ├── DeviceError                    exit 5  the device could not do what was asked
    │   ├── RemoteCommandFailed        a command exited non-zero (carries the result)
    │   ├── PreflightFailed            the device cannot run what was asked
    │   └── AgentFailed                the agent on the device refused or failed; by its kind:
    │       ├── AgentBackendError      backend: TensorRT, CUDA or onnxruntime not usable there
    │       ├── AgentModelError        model: the device's runtime cannot parse or run the model
    │       ├── AgentCalibrationError  calibration: the calibration set does not fit the model
    │       ├── AgentPrecisionError    precision: the device cannot build that precision
    │       ├── AgentBuildError        build: TensorRT could not build or load the engine
    │       ├── AgentConfigError       config: release.json or camera.json is not usable
    │       ├── AgentSourceError       source: the camera or video cannot be opened
    │       ├── AgentSamplesError      samples: the gate samples are missing or broken
    │       ├── AgentMetricsError      metrics: the service's metrics port cannot be served
    │       └── AgentLifecycleError    lifecycle: a release cannot be switched, committed or rolled back
    ├── GateFailed                     exit 6  the quantized model disagrees with FP32
    │   └── CalibrationRefused         (edgekit.recalibration) with both releases' figures
    ├── ActivationFailed               exit 7  the service did not become healthy
    └── TwinError                      exit 8  the local Jetson twin cannot run here

Every message is one sentence that names the fix; tracebacks are for bugs only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekit.ssh.seam import RunResult


class EdgekitError(Exception):
    exit_code = 1


class UsageError(EdgekitError):
    exit_code = 2


class ModelError(EdgekitError):
    exit_code = 3


class ConnectionFailed(EdgekitError):
    exit_code = 4


class DeviceUnreachable(ConnectionFailed):
    pass


class LinkDropped(DeviceUnreachable):
    """The link went away mid-command; ``during`` names the step it cut and what a re-run does then."""

    RERUN = "re-run the same command, finished steps are not repeated"

    def __init__(self, target: object, reason: str, step: str | None = None, rerun: str = RERUN) -> None:
        self.target, self.reason = target, reason
        where = f" while {step}" if step else ""
        super().__init__(f"The link to {target} dropped{where} ({reason}); {rerun}.")

    def during(self, step: str, rerun: str) -> LinkDropped:
        return LinkDropped(self.target, self.reason, step, rerun)


class AuthFailed(ConnectionFailed):
    pass


class UnknownHostKey(ConnectionFailed):
    pass


class HostKeyChanged(ConnectionFailed):
    pass


class HostKeyRevoked(ConnectionFailed):
    pass


class DeviceError(EdgekitError):
    exit_code = 5


class RemoteCommandFailed(DeviceError):
    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


class PreflightFailed(DeviceError):
    pass


class AgentFailed(DeviceError):
    """An AgentError the agent reported (its JSON ``{"error": {"kind", "message"}}``)."""

    kind = "unknown"


class AgentBackendError(AgentFailed):
    kind = "backend"


class AgentModelError(AgentFailed):
    kind = "model"


class AgentCalibrationError(AgentFailed):
    kind = "calibration"


class AgentPrecisionError(AgentFailed):
    kind = "precision"


class AgentBuildError(AgentFailed):
    kind = "build"


class AgentConfigError(AgentFailed):
    kind = "config"


class AgentSourceError(AgentFailed):
    kind = "source"


class AgentSamplesError(AgentFailed):
    kind = "samples"


class AgentMetricsError(AgentFailed):
    kind = "metrics"


class AgentLifecycleError(AgentFailed):
    kind = "lifecycle"


def agent_failure(kind: str, message: str) -> AgentFailed:
    """The host exception of an agent error's kind (AgentFailed itself for a kind this host does not know)."""
    for cls in AgentFailed.__subclasses__():
        if cls.kind == kind:
            return cls(message)
    return AgentFailed(message)


class AuditFailed(EdgekitError):
    """Findings, not a failure to run: exit 1, as scanners do, while bad input exits 2."""


class GateFailed(EdgekitError):
    exit_code = 6


class ActivationFailed(EdgekitError):
    exit_code = 7


class TwinError(EdgekitError):
    exit_code = 8
