"""What the agent's ``build`` command answers, parsed once where it crosses the wire.

The agent writes its answer as JSON (edgekit/agent/build.py, gate.py); the host reads it
into these dataclasses at the edge, so that the rest of the host indexes typed fields
instead of dictionary keys, and a malformed answer is one sentence, not a KeyError.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgekit.errors import DeviceError


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    # JSON has no int/float split the agent keeps to: a whole-number float may come as an int.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DeviceError(
            f"The device's build answer has {key} = {value!r}, not a {getattr(kind, '__name__', 'number')}; "
            "the agent on the device may be of another edgekit, re-run edgekit provision."
        )
    return float(value) if isinstance(value, int) and kind == (int, float) else value


@dataclass(frozen=True)
class GateReport:
    """The held-out samples run through what the service will run, against FP32."""

    samples: int
    top1_agreement: float
    output_cosine: float
    max_abs_diff: float
    # Only when the hold-out set had labels.
    accuracy: float | None
    reference_accuracy: float | None
    infer_ms_mean: float
    # Set by the host's gate: the threshold and the measure it was held to.
    threshold: float | None = None
    measure: str | None = None

    @classmethod
    def parse(cls, data: Any) -> GateReport:
        if not isinstance(data, dict):
            raise DeviceError("The device's build answer has no gate figures; re-run edgekit provision.")
        number = (int, float)
        return cls(
            samples=_field(data, "samples", int),
            top1_agreement=_field(data, "top1_agreement", number),
            output_cosine=_field(data, "output_cosine", number),
            max_abs_diff=_field(data, "max_abs_diff", number),
            accuracy=_field(data, "accuracy", number, optional=True),
            reference_accuracy=_field(data, "reference_accuracy", number, optional=True),
            infer_ms_mean=_field(data, "infer_ms_mean", number),
        )

    def measured(self, task: str) -> tuple[str, float]:
        """What the threshold applies to: the top-1 class for a classifier; the whole output's
        cosine similarity for detection and raw heads, where no single class decides."""
        if task == "classify":
            return "top-1 agreement", self.top1_agreement
        return "output cosine similarity", self.output_cosine

    def held_to(self, task: str, threshold: float) -> GateReport:
        return dataclasses.replace(self, threshold=threshold, measure=self.measured(task)[0])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BuildAnswer:
    """The build unit's answer: the model ready on the device, and its gate figures."""

    release: str
    backend: str
    precision: str
    ready_s: float
    gate: GateReport
    # systemd's id of the build unit's run, to find its lines in the journal later.
    invocation: str | None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> BuildAnswer:
        return cls(
            release=_field(data, "release", str),
            backend=_field(data, "backend", str),
            precision=_field(data, "precision", str),
            ready_s=_field(data, "ready_s", (int, float)),
            gate=GateReport.parse(data.get("gate")),
            invocation=_field(data, "invocation", str, optional=True),
        )
