"""``edgekit provision``: one device, from ONNX + calibration images to a running service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from edgekit.bundle import BundleRequest, build_bundle
from edgekit.cli.output import err_console, print_json
from edgekit.device.layout import CURRENT_LINK
from edgekit.provision import ProvisionResult, Reporter, SourceSpec, provision
from edgekit.ssh import open_connection, parse_target

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


def provision_command(
    target: Annotated[str, typer.Argument(help="The device, as [user@]host[:port] or a ~/.ssh/config alias.")],
    model: Annotated[Path, typer.Option(help="The ONNX model to deploy.")],
    calib: Annotated[Path, typer.Option(help="Folder of calibration images from the scene.")],
    source: Annotated[str, typer.Option(help="Camera source: a local video (shipped) or a device URI.")],
    holdout: Annotated[
        Path | None, typer.Option(help="Held-out images (labels.csv optional) for the accuracy gate.")
    ] = None,
    precision: Annotated[str, typer.Option(help="int8 (default) or fp32.")] = "int8",
    gate_threshold: Annotated[float, typer.Option(help="Minimum top-1 agreement with FP32 on held-out images.")] = 0.99,
    identity: Annotated[Path | None, typer.Option("--identity", "-i", help="SSH private key.")] = None,
    known_hosts: Annotated[
        Path, typer.Option(help="known_hosts file to verify the device against.")
    ] = DEFAULT_KNOWN_HOSTS,
    accept_new_host_key: Annotated[
        bool, typer.Option(help="Trust an unknown host key (its fingerprint is printed).")
    ] = False,
    ssh_config: Annotated[bool, typer.Option(help="Read ~/.ssh/config for aliases, users, keys, ProxyJump.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Build INT8 on the host, ship it, gate it on the device and start the camera service."""
    parsed = parse_target(target)
    with err_console.status("preparing the model") as status:
        bundle = build_bundle(
            BundleRequest(model=model, calib_dir=calib, holdout_dir=holdout, precision=precision),
            log=lambda text: status.update(text),
        )
        camera_source = SourceSpec(source)
        camera_source.device_uri(CURRENT_LINK)
        status.update(f"connecting to {parsed}")
        conn = open_connection(
            parsed,
            known_hosts=known_hosts.expanduser(),
            accept_new_host_key=accept_new_host_key,
            identity=identity,
            use_ssh_config=ssh_config,
            on_new_host_key=lambda host, fp: err_console.print(f"trusting new host key of {host}: {fp}"),
        )
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            step = progress.add_task("connecting", total=None)
            upload: list[TaskID] = []

            def start_upload(name: str, size: int) -> None:
                upload.append(progress.add_task(f"  {name}", total=size))

            def advance(done: int, total: int) -> None:
                progress.update(upload[-1], completed=done)

            def announce(text: str) -> None:
                progress.update(step, description=text)
                err_console.print(f"[dim]·[/] {text}")

            result = provision(
                conn,
                bundle,
                camera_source,
                precision,
                gate_threshold,
                Reporter(step=announce, upload=start_upload, progress=advance),
            )
    finally:
        conn.close()
    if as_json:
        print_json(result.to_dict())
    else:
        _summary(result)


def _summary(result: ProvisionResult) -> None:
    gate = result.gate
    accuracy = (
        ""
        if gate.get("accuracy") is None
        else f", accuracy {gate['accuracy']:.1%} (FP32 {gate['reference_accuracy']:.1%})"
    )
    top = result.first_result.get("top", [{}])[0]
    err_console.print(f"[bold green]provisioned[/] {result.target} ({'changed' if result.changed else 'unchanged'})")
    err_console.print(f"  device     {result.device_model or 'unknown'} (L4T {result.l4t or '?'})")
    err_console.print(f"  profile    {result.profile or 'none matched'}")
    err_console.print(f"  release    {result.release}, {result.precision} on {result.backend}, Python {result.python}")
    err_console.print(
        f"  gate       top-1 agreement {gate['top1_agreement']:.1%} on {gate['samples']} samples "
        f"(threshold {gate['threshold']:.0%}){accuracy}"
    )
    err_console.print(
        f"  service    edgekit-camera.service active, {result.fps or 0:.1f} FPS, "
        f"first result: {top.get('label')} ({top.get('score')})"
    )
