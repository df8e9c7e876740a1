"""``edgekit provision``: one device, from ONNX + calibration images to a running service."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from edgekit.agent.backends.tensorrt.progress import parse_progress
from edgekit.agent.config import CUDA_SEAMS, PRECISIONS, TASKS
from edgekit.agent.preprocess import COLORS, LAYOUTS
from edgekit.cli.connect import (
    JsonOption,
    ProfileOption,
    TargetArgument,
    device_command,
)
from edgekit.cli.output import console, err_console, print_json
from edgekit.cli.trial_options import TrialDeadlineOption, TrialResultsOption
from edgekit.device.trial import TrialPolicy
from edgekit.outputs import outputs
from edgekit.preflight import require
from edgekit.sensitivity import MODES as MIXED_PRECISION_MODES
from edgekit.sensitivity import describe
from edgekit.settings import load_user_config
from edgekit.source import SourceSpec

if TYPE_CHECKING:
    from edgekit.api import Endpoint
    from edgekit.provision import Plan, ProvisionRequest, ProvisionResult, Reporter


@device_command
def provision_command(
    target: TargetArgument,
    model: Annotated[Path, typer.Option(help="The ONNX model to deploy.")],
    calib: Annotated[Path, typer.Option(help="Folder of calibration images from the scene.")],
    source: Annotated[
        str, typer.Option(help="Camera: csi://N, v4l2:///dev/videoN, rtsp://..., file:///... or a local video.")
    ],
    holdout: Annotated[
        Path | None, typer.Option(help="Held-out images (labels.csv optional) for the accuracy gate.")
    ] = None,
    profile: ProfileOption = None,
    precision: Annotated[
        str | None, typer.Option(help=f"One of {', '.join(PRECISIONS)} (default: the profile's, int8).")
    ] = None,
    workspace_mib: Annotated[
        int | None, typer.Option(help="TensorRT builder workspace (default: the profile's).")
    ] = None,
    dla_core: Annotated[int | None, typer.Option(help="Build for this DLA core, GPU fallback for the rest.")] = None,
    cuda: Annotated[
        str | None,
        typer.Option(help=f"How TensorRT reaches CUDA: {' or '.join(CUDA_SEAMS)} (default: cudart, no install)."),
    ] = None,
    gate_threshold: Annotated[
        float | None,
        typer.Option(
            help="Minimum agreement with FP32 on held-out images: top-1 agreement for classifiers (default 0.99), "
            "matched-box F1 for detectors, pose and segmentation (0.90), output cosine similarity for raw heads (0.99)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="edgekit config file (default: ~/.config/edgekit/config.toml).")
    ] = None,
    http_sink: Annotated[str | None, typer.Option(help="Also POST each result (JSON) to this URL.")] = None,
    mqtt_sink: Annotated[
        str | None, typer.Option(help="Also publish each result to mqtt://host[:port]/topic (QoS 0).")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve the metrics on this loopback port (default 9464).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Detect the device and run preflight only; change nothing.")
    ] = False,
    as_json: JsonOption = False,
    task: Annotated[
        str | None, typer.Option(help=f"The model's task, when it states none: {', '.join(TASKS)}.")
    ] = None,
    input_size: Annotated[
        str | None, typer.Option(help="WxH to serve a model with a dynamic image size at (e.g. 640x640).")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Text file of class names, one per line, in class order.")] = None,
    layout: Annotated[str | None, typer.Option(help="The input's layout when it cannot be told: NCHW or NHWC.")] = None,
    color: Annotated[str | None, typer.Option(help=f"Channel order the model takes: {', '.join(COLORS)}.")] = None,
    mixed_precision: Annotated[
        str,
        typer.Option(
            help="auto: when INT8 misses the gate on the host, keep the layers it hurts most at a higher precision "
            "(FP16 on TensorRT), up to a quarter of them; off (default): INT8 throughout."
        ),
    ] = "off",
    trial_results: TrialResultsOption = TrialPolicy.results,
    trial_deadline: TrialDeadlineOption = TrialPolicy.deadline_s,
    sample_every: Annotated[
        float | None,
        typer.Option(
            min=0.05,
            help="Seconds between the frames the service keeps for `edgekit calibrate --from-device` (default 10).",
        ),
    ] = None,
    *,
    device: Endpoint,
) -> None:
    """Build INT8 on the host, ship it, gate it on the device and start the camera service."""
    choices = (
        (precision, PRECISIONS, "--precision"),
        (cuda, CUDA_SEAMS, "--cuda"),
        (task, TASKS, "--task"),
        (layout, LAYOUTS, "--layout"),
        (color, COLORS, "--color"),
        (mixed_precision, MIXED_PRECISION_MODES, "--mixed-precision"),
    )
    for value, allowed, hint in choices:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=hint)
    # Model checks and the bundle build import onnx, onnxruntime and numpy: only this command pays for them.
    from edgekit import api

    request = api.ProvisionRequest(
        model=model,
        calib_dir=calib,
        holdout_dir=holdout,
        source=SourceSpec(source),
        gate_threshold=gate_threshold,
        profile=profile,
        config=load_user_config(config),
        flags={"build": {"precision": precision, "workspace_mib": workspace_mib, "dla_core": dla_core, "cuda": cuda}},
        outputs=outputs(http_sink, mqtt_sink, metrics_port),
        model_overrides=api.ModelOverrides(task, _input_size(input_size), labels, layout, color),
        mixed_precision=mixed_precision,
        trial=TrialPolicy(results=trial_results, deadline_s=trial_deadline),
        sample_every_s=sample_every,
    )
    if check:
        with err_console.status("checking the model") as status:
            plan = api.plan(device, request, api.Reporter(step=lambda text: status.update(text)))
        _report_check(plan, as_json)
        require(plan.checks, listed=True)
        return
    result = _provision_with_progress(device, request)
    if as_json:
        print_json(result.to_dict())
    else:
        _summary(result)


def _input_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise typer.BadParameter(f"{text!r} is not WxH in pixels, such as 640x640", param_hint="--input-size")
    return int(width), int(height)


class _UploadOnly(ProgressColumn):
    """A byte column shown only on upload rows, not on the build's phase rows."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self._column = column

    def render(self, task: Task) -> Text:
        return self._column.render(task) if task.fields.get("upload") else Text("")  # type: ignore[return-value]


class _Display:
    """A spinner while the model is checked and the device read, then, once the profile is
    chosen, a progress display: one row for the step, one per upload and per build phase."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._spinner = stack.enter_context(err_console.status("checking the model"))
        self._progress: Progress | None = None
        self._step: TaskID | None = None
        self._uploads: list[TaskID] = []
        # What the latest upload row last showed; None until its first report.
        self._upload_done: int | None = None
        self._phases: dict[str, TaskID] = {}

    def step(self, text: str) -> None:
        if self._progress is None or self._step is None:
            self._spinner.update(text)
            if not err_console.is_terminal:
                # A log shows no spinner: the steps before the plan must still be there.
                err_console.print(f"[dim]·[/] {text}")
            return
        self._progress.update(self._step, description=text)
        err_console.print(f"[dim]·[/] {text}")

    def planned(self, plan: Plan) -> None:
        self._spinner.stop()
        self._progress = self._stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                _UploadOnly(DownloadColumn()),
                _UploadOnly(TransferSpeedColumn()),
                _UploadOnly(TimeRemainingColumn()),
                console=err_console,
                transient=True,
            )
        )
        self._step = self._progress.add_task("preflight", total=None)
        for note in plan.bundle.model.notes:
            err_console.print(f"[dim]·[/] model: {note}")
        for note in plan.resolution.notes:
            err_console.print(f"[yellow]note:[/] {note}")
        self.step(f"device {plan.device.describe()}: profile {plan.resolution.profile.name} ({plan.resolution.how})")

    def upload(self, name: str, size: int) -> None:
        assert self._progress is not None
        self._uploads.append(self._progress.add_task(f"  {name}", total=size, upload=True))
        self._upload_done = None

    def advance(self, done: int, total: int) -> None:
        assert self._progress is not None
        row = self._uploads[-1]
        if self._upload_done is None or done <= self._upload_done:
            # A try starts (the first, or one after a dropped link) at what the device holds: the
            # bar starts there and the rate and ETA count only the bytes sent from now on.
            self._progress.reset(row, total=total, completed=done)
        else:
            self._progress.update(row, completed=done)
        self._upload_done = done

    def device_line(self, line: str) -> None:
        found = parse_progress(line)
        if found is None or self._progress is None:
            # TensorRT's own lines hold brackets ("[TRT] [W]") that must not be read as markup.
            err_console.print(Text(f"  device: {line}", style="dim"), highlight=False)
            return
        if found.phase not in self._phases:
            self._phases[found.phase] = self._progress.add_task(f"  {found.phase}", total=found.total)
        self._progress.update(self._phases[found.phase], completed=found.done, total=found.total)


def _provision_with_progress(device: Endpoint, request: ProvisionRequest) -> ProvisionResult:
    from edgekit import api

    with progress_reporter() as reporter:
        return api.provision(device, request, reporter)


@contextlib.contextmanager
def progress_reporter() -> Iterator[Reporter]:
    """A Reporter that shows a spinner, then the steps, uploads and the device's build phases."""
    from edgekit import api

    with contextlib.ExitStack() as stack:
        display = _Display(stack)
        yield api.Reporter(
            step=display.step,
            planned=display.planned,
            upload=display.upload,
            progress=display.advance,
            device_line=display.device_line,
        )


def _report_check(plan: Plan, as_json: bool) -> None:
    if as_json:
        print_json(plan.to_dict())
        return
    console.print(f"[bold]{plan.target}[/]: {plan.device.describe()}")
    console.print(f"profile {plan.resolution.profile.name} ({plan.resolution.how})")
    for note in plan.bundle.model.notes:
        console.print(f"model: {note}")
    for note in plan.resolution.notes:
        console.print(f"[yellow]note:[/] {note}")
    table = Table("check", "", "found", "fix")
    for item in plan.checks:
        table.add_row(item.name, "[green]ok[/]" if item.ok else "[red]FAIL[/]", item.detail, item.problem)
    console.print(table)
    if plan.ok:
        console.print("[green]preflight passed[/]; nothing was changed on the device.")


def _headline(result: ProvisionResult) -> str:
    if result.unchanged:
        return (
            f"[bold green]release {result.release} is already current and committed[/] on {result.target}; "
            "nothing to do"
        )
    return f"[bold green]provisioned[/] {result.target} ({'changed' if result.changed else 'unchanged'})"


def _summary(result: ProvisionResult) -> None:
    gate = result.gate
    accuracy = (
        ""
        if gate.accuracy is None or gate.reference_accuracy is None
        else f", accuracy {gate.accuracy:.1%} (FP32 {gate.reference_accuracy:.1%})"
    )
    measure, figure = gate.measured(result.task)
    err_console.print(_headline(result))
    err_console.print(f"  device     {result.device_model or 'unknown'} (L4T {result.l4t or '?'})")
    err_console.print(f"  profile    {result.profile}")
    err_console.print(f"  release    {result.release}, {result.precision} on {result.backend}, Python {result.python}")
    err_console.print(
        f"  gate       {measure} {figure:.1%} on {gate.samples} samples (threshold {gate.threshold or 0:.0%}){accuracy}"
    )
    mixed = result.mixed_precision
    if mixed is not None:
        steps = ", ".join(f"{describe(mixed.measure, step.figure)} with {step.layers}" for step in mixed.steps)
        kept = f" ({', '.join(mixed.layers)})" if mixed.layers else ""
        err_console.print(
            f"  mixed      {len(mixed.layers)} layers kept at higher precision{kept}; host {mixed.measure} {steps}"
        )
        note = mixed.cap_note()
        if note:
            err_console.print(f"             {note}")
    fps = "FPS not measured yet" if result.fps is None else f"{result.fps:.1f} FPS"
    err_console.print(
        f"  service    edgekit-camera.service active, {fps}, first result: {result.first_result.describe()}"
    )
