"""The agent's command line, run on the device as ``python3 agent.pyz <command>``.

Every command but ``serve`` prints exactly one JSON object on stdout, which is all the host
parses; an AgentError becomes ``{"error": {"kind": ..., "message": ...}}`` and exit code 1.
Command modules are imported only when run, so ``facts`` works before numpy or cv2 exist.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

from . import AGENT_PROTOCOL, ENGINES_DIR
from .errors import AgentError


def _facts(args: argparse.Namespace) -> dict[str, Any]:
    from .facts import collect_facts

    return collect_facts(args.state_dir)


def _build(args: argparse.Namespace) -> dict[str, Any]:
    from .build import build_and_record

    return build_and_record(args.release_dir, args.samples, args.engines_dir, args.result, args.baseline_release_dir)


def _lifecycle(args: argparse.Namespace) -> dict[str, Any]:
    from .files import locked

    with locked(os.path.join(args.state_dir, "lifecycle", ".lock")):
        return _lifecycle_action(args)


def _lifecycle_action(args: argparse.Namespace) -> dict[str, Any]:
    from . import lifecycle

    if args.action in ("list", "prune"):
        from . import inventory

        if args.action == "list":
            return inventory.releases(args.state_dir)
        return inventory.prune(args.state_dir, args.keep, check=args.check)
    if args.action == "begin":
        return lifecycle.begin(
            args.state_dir,
            args.release,
            args.deadline_s,
            args.results,
            args.max_restarts,
            restore_config=args.restore_config,
        )
    if args.action == "check":
        return lifecycle.check(args.state_dir, args.by, starting=args.starting)
    if args.action == "commit":
        return lifecycle.commit(args.state_dir, args.release, json.loads(args.health), args.by)
    if args.action == "rollback":
        return lifecycle.rollback(args.state_dir, args.reason, args.by, to=args.to)
    if args.action == "refuse":
        return lifecycle.refuse(args.state_dir, args.release, args.reason)
    if args.action == "serving":
        from .serving import serving

        return serving(args.state_dir, args.files)
    return lifecycle.status(args.state_dir)


def _version(args: argparse.Namespace) -> dict[str, Any]:
    return {"protocol": AGENT_PROTOCOL}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit-agent", description="The edgekit agent, run on the device by the host."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    facts = commands.add_parser("facts", help="describe this device as JSON")
    facts.add_argument("--state-dir", default="/var/lib/edgekit")
    facts.set_defaults(run=_facts)

    build = commands.add_parser("build", help="build a release's engine here, then gate it against FP32")
    build.add_argument("--release-dir", required=True)
    build.add_argument("--samples", required=True, help=".npz with inputs, reference, labels")
    build.add_argument("--engines-dir", default=ENGINES_DIR)
    build.add_argument("--result", required=True, help="where the JSON answer is also written")
    build.add_argument(
        "--baseline-release-dir", help="the release serving now, gated on the same samples for comparison"
    )
    build.set_defaults(run=_build)

    serve = commands.add_parser("serve", help="run the camera service (under systemd)")
    serve.add_argument("--config", default="/etc/edgekit/camera.json")
    serve.add_argument("--engines-dir", default=ENGINES_DIR)

    trials = commands.add_parser(
        "lifecycle", help="release trials: begin, check, commit, rollback, status, serving, list, prune"
    )
    actions = trials.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("begin", "switch a release in on trial"),
        ("check", "commit a release that proved healthy, roll back one that did not"),
        ("commit", "commit the release on trial"),
        ("rollback", "switch back to the last committed release, or --to one"),
        ("refuse", "record that the gate refused a release (kept for inspection, never switched in)"),
        ("status", "the links, the trial and the last rollback"),
        ("serving", "status, with what the current release runs with: for a re-provision"),
        ("list", "every release: its model, gate, state and size"),
        ("prune", "remove old releases and the blobs, engines and caches only they used"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--state-dir", default="/var/lib/edgekit")
        action.add_argument("--by", default="host", choices=("host", "device"))
        action.set_defaults(run=_lifecycle)
        if name in ("begin", "commit", "refuse"):
            action.add_argument("--release", required=True)
    trial_options = actions.choices["begin"]
    trial_options.add_argument("--deadline-s", type=float, required=True)
    trial_options.add_argument("--results", type=int, required=True)
    trial_options.add_argument("--max-restarts", type=int, required=True)
    trial_options.add_argument(
        "--restore-config", action="store_true", help="a rollback: put back the site config kept for the release"
    )
    actions.choices["check"].add_argument("--starting", action="store_true", help="run by the unit's ExecStartPre")
    actions.choices["commit"].add_argument("--health", default="{}", help="the health figures, as JSON")
    actions.choices["rollback"].add_argument("--reason", required=True)
    actions.choices["refuse"].add_argument("--reason", required=True)
    actions.choices["rollback"].add_argument("--to", help="a committed release (default: the trial's fallback)")
    actions.choices["prune"].add_argument("--keep", type=int, default=3, help="committed releases to keep")
    actions.choices["prune"].add_argument("--check", action="store_true", help="only say what would be removed")
    actions.choices["serving"].add_argument("files", nargs="*", metavar="FILE", help="a file to report the sha256 of")

    version = commands.add_parser("version", help="print the agent protocol version")
    version.set_defaults(run=_version)
    return parser


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, sort_keys=True), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .service import serve

        return serve(args.config, args.engines_dir)
    try:
        result = args.run(args)
    except AgentError as exc:
        _print_json(exc.to_dict())
        return 1
    # The unit's ExecStartPre check answers no one: its answer would land in the service's
    # journal at every start, among the service's own lines (lifecycle/ keeps what it did).
    if not getattr(args, "starting", False):
        _print_json(result)
    return 0


def exit_process(code: int) -> None:
    """``sys.exit(code)``, unless a thread is still running, such as a camera read abandoned
    past its deadline and still inside the driver. Interpreter shutdown would end that
    thread by unwinding it through OpenCV's C++ frames, whose catch-all blocks make glibc
    abort ("FATAL: exception not rethrown"): a clean stop would end in SIGABRT. Such a call
    cannot be interrupted, so the process then ends without the interpreter's shutdown,
    once everything it wrote is flushed (the service closed its files before returning)."""
    if any(thread.is_alive() for thread in threading.enumerate() if thread is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
