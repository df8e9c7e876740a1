"""The one exception the agent reports to the host instead of a traceback."""

from __future__ import annotations


class AgentError(Exception):
    """A failure the operator can fix, such as a bad config, a missing model or a dead camera.

    ``kind`` lets the host decide what to tell the operator without parsing the message.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"kind": self.kind, "message": self.message}}


class CameraUnavailable(AgentError):
    """A camera or stream that is configured right but not there now; it may come back.

    The service waits for it instead of exiting, so an unplugged camera does not burn
    through systemd's restart budget (StartLimitBurst) while it is away.
    """

    def __init__(self, message: str) -> None:
        super().__init__("source", message)
