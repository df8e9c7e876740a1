"""The agent's command line, run on the device as ``python3 agent.pyz <command>``.

Every command but ``serve`` prints exactly one JSON object on stdout, which is all the host
parses; an AgentError becomes ``{"error": {"kind": ..., "message": ...}}`` and exit code 1.
Command modules are imported only when run, so ``facts`` works before numpy or cv2 exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import AGENT_PROTOCOL
from .errors import AgentError


def _facts(args: argparse.Namespace) -> dict[str, Any]:
    from .facts import collect_facts

    return collect_facts(args.state_dir)


def _gate(args: argparse.Namespace) -> dict[str, Any]:
    from .gate import run_gate

    return run_gate(args.release_dir, args.samples)


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

    gate = commands.add_parser("gate", help="compare a release's model with FP32 references")
    gate.add_argument("--release-dir", required=True)
    gate.add_argument("--samples", required=True, help=".npz with inputs, reference, labels")
    gate.set_defaults(run=_gate)

    serve = commands.add_parser("serve", help="run the camera service (under systemd)")
    serve.add_argument("--config", default="/etc/edgekit/camera.json")

    version = commands.add_parser("version", help="print the agent protocol version")
    version.set_defaults(run=_version)
    return parser


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, sort_keys=True), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .service import serve

        return serve(args.config)
    try:
        result = args.run(args)
    except AgentError as exc:
        _print_json(exc.to_dict())
        return 1
    _print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
