"""The transfer benchmark behind scripts/bench-transfer: edgekit against scp and rsync on one slow link.

A Jetson twin boots (profile twin) and link_proxy.LinkProxy stands in front of its sshd with a
rate limit (8 MB/s each way by default), counting the bytes each tool puts on the wire. With a
random file (50 MB by default), each tool in its own process, all three in the same rounds:

(a) first upload: edgekit's upload_blobs into a store without the blob; scp and rsync into a
    folder without the file;
(b) the same file again, unchanged: edgekit and rsync find it there, scp sends it all again;
(c) the link cut once 60 % of the file's size has gone up, then the tool run again until it is
    done (edgekit retries within its run, after 1 s); "re-sent" is what went up beyond one copy
    of the file: the 60 % that had gone counted once, the missing 40 % once, the rest is waste.

One more row: a whole ``edgekit provision`` of the sample model with nothing changed (provisioned
once untimed, then timed N times), with its bytes on the wire and whether any blob arrived.

edgekit's seconds run from its connect to upload_blobs' return (the device's sha256 check and the
store's commit included), without the interpreter's start-up; scp's and rsync's are their whole
process. The store's folders are made beforehand, as scp's and rsync's folder is. The provision
row is the whole ``uv run edgekit provision`` process.

Targets: (a) edgekit's throughput at least 0.9 x scp's (best of N); (c) edgekit re-sends under 5 %
of the file (worst of N); re-provision with nothing changed under 3 s (best of N) sending no blob.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("edgekit", "scp", "rsync")
CASES = {
    "a": "first upload",
    "b": "unchanged re-send",
    "c": "cut at 60 %, then resumed",
}
PROVISION_CASE = "re-provision, nothing changed"
CUT_AT = 0.6
THROUGHPUT_TARGET = 0.9
RESENT_TARGET = 0.05
REPROVISION_TARGET_S = 3.0
# A tool that has not finished after this many runs of case (c) is broken, not slow.
MAX_RUNS = 3
DEST_DIR = "/var/tmp/bench-transfer"
SAMPLE = ROOT / "samples" / "digits"


@dataclass(frozen=True)
class Sample:
    seconds: float
    up: int
    down: int


@dataclass(frozen=True)
class Row:
    case: str
    tool: str
    best_s: float
    median_s: float
    spread_s: float
    # Bytes on the wire: client to device, device to client; the least and the most of the rounds.
    up_best: int
    up_worst: int
    down_best: int

    @classmethod
    def of(cls, case: str, tool: str, samples: Sequence[Sample]) -> Row:
        seconds = [s.seconds for s in samples]
        return cls(
            case=case,
            tool=tool,
            best_s=min(seconds),
            median_s=statistics.median(seconds),
            spread_s=max(seconds) - min(seconds),
            up_best=min(s.up for s in samples),
            up_worst=max(s.up for s in samples),
            down_best=min(s.down for s in samples),
        )


@dataclass(frozen=True)
class Verdict:
    target: str
    value: str
    met: bool


def throughput_ratio(rows: dict[tuple[str, str], Row], peer: str) -> float:
    """edgekit's throughput over ``peer``'s for the first upload, from the best times."""
    return rows["a", peer].best_s / rows["a", "edgekit"].best_s


def resent_fraction(row: Row, size: int) -> float:
    """What went up beyond one copy of the file, in the worst round, as a share of it."""
    return max(0, row.up_worst - size) / size


def verdicts(rows: dict[tuple[str, str], Row], size: int, reprovision: Row, blob_arrived: bool) -> list[Verdict]:
    ratio = throughput_ratio(rows, "scp")
    resent = resent_fraction(rows["c", "edgekit"], size)
    return [
        Verdict(f"(a) throughput edgekit/scp >= {THROUGHPUT_TARGET:.2f}", f"{ratio:.2f}", ratio >= THROUGHPUT_TARGET),
        Verdict(f"(c) edgekit re-sends < {RESENT_TARGET:.0%} of the file", f"{resent:.1%}", resent < RESENT_TARGET),
        Verdict(
            f"re-provision with nothing changed < {REPROVISION_TARGET_S:.0f} s",
            f"{reprovision.best_s:.2f} s",
            reprovision.best_s < REPROVISION_TARGET_S,
        ),
        Verdict("re-provision sends no blob", "a blob arrived" if blob_arrived else "none arrived", not blob_arrived),
    ]


def megabytes(count: int) -> str:
    return f"{count / 1e6:.3f}"


def report_lines(rows: dict[tuple[str, str], Row], size: int, reprovision: Row, found: list[Verdict]) -> list[str]:
    header = (
        f"{'case':30} {'tool':8} {'best s':>7} {'median s':>9} {'spread s':>9} {'MB/s':>6} {'up MB':>8} {'down MB':>8}"
    )
    lines = [header]
    for row in [*(rows[key] for key in sorted(rows)), reprovision]:
        case = CASES.get(row.case, row.case)
        rate = f"{size / row.best_s / 1e6:.2f}" if row.case == "a" else ""
        lines.append(
            f"{case:30} {row.tool:8} {row.best_s:>7.2f} {row.median_s:>9.2f} {row.spread_s:>9.2f} {rate:>6} "
            f"{megabytes(row.up_worst):>8} {megabytes(row.down_best):>8}"
        )
    for case in CASES:
        mine = rows[case, "edgekit"]
        ratios = ", ".join(
            f"edgekit/{peer}: time {mine.best_s / rows[case, peer].best_s:.2f}, "
            f"up {mine.up_worst / max(rows[case, peer].up_worst, 1):.2f}"
            for peer in ("scp", "rsync")
        )
        lines.append(f"({case}) {ratios}")
    for peer in ("scp", "rsync"):
        lines.append(f"(c) {peer} re-sends {resent_fraction(rows['c', peer], size):.1%} of the file")
    lines.extend(f"target: {v.target}: {v.value}: {'met' if v.met else 'MISSED'}" for v in found)
    return lines


def ssh_options(identity: str, known_hosts: str, twin_port: int) -> list[str]:
    # The twin's known_hosts names its own port; the alias lets OpenSSH check the key behind the proxy.
    return [
        "-F",
        "/dev/null",
        "-i",
        identity,
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        f"HostKeyAlias=[127.0.0.1]:{twin_port}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
    ]


def proxied_known_hosts(twin_known_hosts: Path, twin_port: int, proxy_port: int) -> str:
    """The twin's known_hosts with its entries named for the proxy's port, for edgekit."""
    named = f"[127.0.0.1]:{twin_port}"
    lines = []
    for line in twin_known_hosts.read_text().splitlines():
        host, _, key = line.partition(" ")
        if named in host.split(","):
            lines.append(f"[127.0.0.1]:{proxy_port} {key}")
    return "".join(f"{line}\n" for line in lines)


def child_upload(spec: dict[str, Any]) -> int:
    """Run in a process of its own: connect through the proxy and upload the one blob."""
    from edgekit.device.blobs import Blob, upload_blobs
    from edgekit.errors import EdgekitError
    from edgekit.ssh import open_connection
    from edgekit.ssh.target import Target

    started = time.perf_counter()
    try:
        conn = open_connection(
            Target("127.0.0.1", user=spec["user"], port=spec["port"]),
            known_hosts=Path(spec["known_hosts"]),
            identity=Path(spec["identity"]),
            use_ssh_config=False,
        )
        try:
            upload_blobs(
                conn, [Blob(Path(spec["file"]), spec["digest"])], note=lambda line: print(line, file=sys.stderr)
            )
        finally:
            conn.close()
    except EdgekitError as exc:
        print(f"bench-transfer: edgekit: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"seconds": time.perf_counter() - started}))
    return 0


class Bench:
    """The twin behind the proxy, the file, and how each tool sends it."""

    def __init__(self, twin: Any, link: Any, file: Path, digest: str, work: Path) -> None:
        self.twin = twin
        self.link = link
        self.file = file
        self.digest = digest
        self.known_hosts = work / "known_hosts"
        self.known_hosts.write_text(proxied_known_hosts(Path(twin.known_hosts), twin.port, link.port))
        self.ssh = ssh_options(twin.identity, twin.known_hosts, twin.port)
        self.env = private_cache(work)

    def device(self, script: str) -> None:
        from edgekit.twin import twin_exec

        done = twin_exec(self.twin.name, ["sh", "-c", script])
        if done.returncode != 0:
            raise SystemExit(f"bench-transfer: `{script}` failed on the twin: {done.stderr.strip()}")

    def clean(self) -> None:
        from edgekit.device.layout import BLOBS_DIR, INCOMING_DIR

        user = self.twin.user
        self.device(
            f"rm -rf {BLOBS_DIR}/{self.digest} {INCOMING_DIR}/{self.digest}.part {DEST_DIR} && "
            f"install -d -o {user} {DEST_DIR} && install -d {BLOBS_DIR} && install -d -m 0700 -o {user} {INCOMING_DIR}"
        )

    def command(self, tool: str) -> list[str]:
        destination = f"{self.twin.user}@127.0.0.1:{DEST_DIR}/{tool}.bin"
        if tool == "scp":
            return ["scp", "-q", "-P", str(self.link.port), *self.ssh, str(self.file), destination]
        if tool == "rsync":
            shell = shlex.join(["ssh", "-p", str(self.link.port), *self.ssh])
            return ["rsync", "--partial", "-e", shell, str(self.file), destination]
        spec = {
            "user": self.twin.user,
            "port": self.link.port,
            "identity": self.twin.identity,
            "known_hosts": str(self.known_hosts),
            "file": str(self.file),
            "digest": self.digest,
        }
        return [sys.executable, __file__, "--child-upload", json.dumps(spec)]

    def run_once(self, tool: str) -> tuple[bool, float, str]:
        """Whether ``tool`` finished, its seconds, and the last line it wrote to stderr."""
        started = time.perf_counter()
        done = subprocess.run(self.command(tool), capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode == 0 and tool == "edgekit":
            seconds = json.loads(done.stdout.splitlines()[-1])["seconds"]
        return done.returncode == 0, seconds, (done.stderr.strip().splitlines() or ["no output"])[-1]

    def measure(self, run: Callable[[], float]) -> Sample:
        up, down = self.link.bytes_up, self.link.bytes_down
        seconds = run()
        return Sample(seconds, self.link.bytes_up - up, self.link.bytes_down - down)

    def send(self, tool: str) -> float:
        ok, seconds, last = self.run_once(tool)
        if not ok:
            raise SystemExit(f"bench-transfer: {tool} failed on an unbroken link: {last}")
        return seconds

    def send_through_a_cut(self, tool: str, size: int) -> float:
        self.link.cut_after(int(size * CUT_AT))
        total = 0.0
        try:
            for _ in range(MAX_RUNS):
                ok, seconds, _ = self.run_once(tool)
                total += seconds
                if ok:
                    return total
        finally:
            # A cut that never came must not hit the next tool.
            self.link.cut()
        raise SystemExit(f"bench-transfer: {tool} did not finish after {MAX_RUNS} runs across one cut.")


def store_listing(twin_name: str) -> str:
    from edgekit.device.layout import BLOBS_DIR, INCOMING_DIR
    from edgekit.twin import twin_exec

    return twin_exec(twin_name, ["sh", "-c", f"ls -l --time-style=+%s {BLOBS_DIR} {INCOMING_DIR} 2>&1"]).stdout


def provision_command(bench: Bench) -> list[str]:
    # Like scripts/demo, but through the proxy and with nothing from ~/.ssh/config.
    return [
        "uv",
        "run",
        "--frozen",
        "edgekit",
        "provision",
        f"{bench.twin.user}@127.0.0.1:{bench.link.port}",
        "--identity",
        bench.twin.identity,
        "--known-hosts",
        str(bench.known_hosts),
        "--no-ssh-config",
        "--model",
        str(SAMPLE / "model.onnx"),
        "--calib",
        str(SAMPLE / "calib"),
        "--holdout",
        str(SAMPLE / "holdout"),
        "--source",
        str(SAMPLE / "clip.avi"),
    ]


def private_cache(work: Path) -> dict[str, str]:
    """An environment with a bundle cache of our own: a test run elsewhere rewrites agent.pyz in
    the shared one, and a file rewritten mid-upload arrives as corrupted. The fetched wheels are
    shared still (fetching them again needs the network)."""
    shared = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit"))
    cache = work / "cache"
    cache.mkdir()
    if (shared / "wheels").is_dir():
        (cache / "wheels").symlink_to(shared / "wheels")
    return {**os.environ, "EDGEKIT_CACHE": str(cache)}


def provision(bench: Bench) -> float:
    started = time.perf_counter()
    done = subprocess.run(provision_command(bench), cwd=ROOT, env=bench.env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench-transfer: edgekit provision exited {done.returncode}: {tail}")
    return time.perf_counter() - started


def measure_transfers(bench: Bench, size: int, repeat: int) -> dict[tuple[str, str], Row]:
    samples: dict[tuple[str, str], list[Sample]] = {(case, tool): [] for case in CASES for tool in TOOLS}
    for round_number in range(1, repeat + 1):
        print(f"round {round_number} of {repeat}", file=sys.stderr, flush=True)
        bench.clean()
        for case in ("a", "b"):
            for tool in TOOLS:
                samples[case, tool].append(bench.measure(functools.partial(bench.send, tool)))
        bench.clean()
        for tool in TOOLS:
            samples["c", tool].append(bench.measure(functools.partial(bench.send_through_a_cut, tool, size)))
    return {key: Row.of(*key, found) for key, found in samples.items()}


def measure_reprovision(bench: Bench, repeat: int) -> tuple[Row, bool, Sample]:
    print("provisioning the sample model once (untimed)", file=sys.stderr, flush=True)
    first = bench.measure(functools.partial(provision, bench))
    timed = []
    arrived = False
    for _ in range(repeat):
        before = store_listing(bench.twin.name)
        timed.append(bench.measure(functools.partial(provision, bench)))
        arrived = arrived or store_listing(bench.twin.name) != before
    return Row.of(PROVISION_CASE, "edgekit", timed), arrived, first


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (best of N is reported)")
    parser.add_argument("--rate", type=float, default=8e6, help="the link's bytes per second, each way")
    parser.add_argument("--size-mb", type=float, default=50, help="the random file's size in MB")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child-upload", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_upload:
        return child_upload(json.loads(args.child_upload))
    return run(args.repeat, args.rate, int(args.size_mb * 1e6), args.json)


def run(repeat: int, rate: float, size: int, as_json: bool) -> int:
    # Python puts this folder first on sys.path when it runs this file.
    from link_proxy import LinkProxy

    from edgekit.model import sha256_file
    from edgekit.profiles import load_profile
    from edgekit.twin import twin_down, twin_up

    name = f"bench-transfer-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as folder:
        work = Path(folder)
        file = work / "random.bin"
        file.write_bytes(os.urandom(size))
        twin = twin_up(name, load_profile("twin"), port=None, log=lambda line: print(line, file=sys.stderr))
        try:
            with LinkProxy(("127.0.0.1", twin.port), rate=rate) as link:
                bench = Bench(twin, link, file, sha256_file(file), work)
                rows = measure_transfers(bench, size, repeat)
                reprovision, arrived, first = measure_reprovision(bench, repeat)
        finally:
            twin_down(name)
    found = verdicts(rows, size, reprovision, arrived)
    if as_json:
        result = {
            "rate": rate,
            "size": size,
            "repeat": repeat,
            "rows": [asdict(row) for row in [*rows.values(), reprovision]],
            "first_provision": asdict(first),
            "targets": [asdict(v) for v in found],
        }
        print(json.dumps(result, indent=2))
        return 0
    print(f"{size / 1e6:.0f} MB random file, link {rate / 1e6:.1f} MB/s each way, best of {repeat}")
    print(f"first provision (untimed): {first.seconds:.1f} s, {megabytes(first.up)} MB up")
    print("\n".join(report_lines(rows, size, reprovision, found)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
