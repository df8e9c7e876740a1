"""``edgekit calibrate HOST``: recalibrate the serving release on the real scene, old against new."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgekit.cli.connect import (
    JsonOption,
    TargetArgument,
    device_command,
)
from edgekit.cli.output import console, print_json
from edgekit.cli.trial_options import TrialDeadlineOption, TrialResultsOption
from edgekit.curation import SUBSET_COUNT
from edgekit.device.trial import TrialPolicy
from edgekit.preflight import require

if TYPE_CHECKING:
    from edgekit.api import Endpoint
    from edgekit.device.answers import GateReport
    from edgekit.recalibration import CalibrationResult, Comparison, DataSummary


@device_command
def calibrate_command(
    target: TargetArgument,
    images: Annotated[Path | None, typer.Option(help="Folder of frames from the camera's real scene.")] = None,
    video: Annotated[Path | None, typer.Option(help="A video of the scene; frames are sampled evenly.")] = None,
    from_device: Annotated[
        bool, typer.Option("--from-device", help="Fetch the frames the camera service kept (its sample ring).")
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(help="The ONNX to calibrate, with the serving release's input (default: the release's own)."),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option(help="Labelled frames of the scene (labels.csv) to gate on; default: a part held out by time."),
    ] = None,
    count: Annotated[
        int, typer.Option(min=16, help="Calibration frames kept at most; past it, a diverse subset.")
    ] = SUBSET_COUNT,
    gate_threshold: Annotated[
        float | None,
        typer.Option(help="Minimum agreement with FP32 on the held-out frames (default: the task's, as provision)."),
    ] = None,
    trial_results: TrialResultsOption = TrialPolicy.results,
    trial_deadline: TrialDeadlineOption = TrialPolicy.deadline_s,
    check: Annotated[
        bool, typer.Option("--check", help="Prepare and report the data only; build and change nothing.")
    ] = False,
    as_json: JsonOption = False,
    *,
    device: Endpoint,
) -> None:
    """Recalibrate the serving release's model on frames of the real scene, compare it with the serving
    release on the same held-out frames, and switch it in on trial if the gate passes."""
    from edgekit import api
    from edgekit.cli.provision import progress_reporter

    request = api.CalibrateRequest(
        frames=api.FrameSource(images=images, video=video, from_device=from_device),
        model=model,
        holdout_dir=holdout,
        count=count,
        gate_threshold=gate_threshold,
        trial=TrialPolicy(results=trial_results, deadline_s=trial_deadline),
    )
    try:
        with progress_reporter() as reporter:
            result = api.calibrate(device, request, reporter, check=check)
    except api.CalibrationRefused as refused:
        _show(refused.result, as_json)
        raise
    _show(result, as_json)
    if check:
        require(result.checks, listed=True)


def _show(result: CalibrationResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    _data(result.data)
    if result.comparison is None:
        for item in result.checks:
            if not item.ok:
                console.print(f"[red]FAIL[/] {escape(item.name)}: {escape(item.problem or item.detail)}")
        console.print(
            f"[green]data ready[/]: release {escape(result.release)} would replace {escape(result.previous)}; "
            "nothing was built or changed (--check)."
        )
        return
    _comparison(result, result.comparison)
    if result.activated:
        console.print(
            f"[bold green]recalibrated[/] {escape(result.target)}: release {escape(result.release)} committed on "
            f"trial; {escape(result.previous)} is previous (`edgekit rollback` goes back)"
        )


def _data(data: DataSummary) -> None:
    curation = data.curation
    console.print(f"[bold]data[/] from {escape(data.source)}")
    console.print(
        f"  {curation.images} images read, {len(curation.skipped)} unreadable skipped, "
        f"{len(curation.duplicates)} near-duplicates removed, {curation.usable} usable, {len(curation.kept)} kept"
    )
    for skipped in curation.skipped[:10]:
        console.print(f"  [yellow]skipped[/] {escape(skipped.name)}: {escape(skipped.reason)}")
    if len(curation.skipped) > 10:
        console.print(f"  [yellow]skipped[/] ... and {len(curation.skipped) - 10} more (--json lists them all)")
    console.print(
        f"  {data.calibration_frames} calibration frames, {data.holdout_frames} held out ({escape(data.holdout)})"
    )
    for warning in curation.warnings:
        console.print(f"  [yellow]warning[/] {escape(warning)}")


def _comparison(result: CalibrationResult, comparison: Comparison) -> None:
    table = Table(
        f"on {comparison.new.samples} held-out frames",
        f"serving {result.previous}",
        f"recalibrated {result.release}",
        title=f"against FP32 (gate: {comparison.measure} at least {comparison.threshold:.0%} or no worse than serving)",
    )
    rows: list[tuple[str, Callable[[GateReport], float | None], Callable[[float | None], str]]] = [
        (comparison.measure, lambda gate: gate.measured(result.task)[1], _percent),
        ("output cosine", lambda gate: gate.output_cosine, _plain),
        ("SNR dB", lambda gate: gate.snr_db, _plain),
        ("accuracy", lambda gate: gate.accuracy, _percent),
        ("FP32 accuracy", lambda gate: gate.reference_accuracy, _percent),
        ("inference ms", lambda gate: gate.infer_ms_mean, _plain),
    ]
    for name, figure, shown in rows:
        if figure(comparison.new) is None and (comparison.current is None or figure(comparison.current) is None):
            continue
        current = comparison.current_error or "n/a" if comparison.current is None else shown(figure(comparison.current))
        table.add_row(name, current, shown(figure(comparison.new)))
    new_figure = comparison.new.measured(result.task)[1]
    verdict = "[red]refused[/]" if comparison.refused else "[green]passed[/]"
    if not comparison.refused and (new_figure is None or new_figure < comparison.threshold):
        verdict = "[yellow]passed[/]: under the threshold, no worse than serving"
    table.add_row("gate", "", verdict)
    console.print(table)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
