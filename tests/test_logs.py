"""``edgekit logs``: journal lines parsed, the journalctl commands sent, following with cursors,
and what the command shows, against a FakeConnection answering as journalctl does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from edgekit import api
from edgekit.cli import app
from edgekit.device.build import RECONNECT_S, field_text
from edgekit.device.logs import LogsRequest, journal_argv, parse_entry, read_journal
from edgekit.errors import DeviceUnreachable, RemoteCommandFailed, UsageError
from edgekit.testing import FakeClock, FakeConnection, Reply, Run

UNIT = "edgekit-camera.service"
LATENCY = {"grab": 1.0, "pre": 2.0, "infer": 3.0, "post": 0.5, "total": 41.2}
# 2026-12-04 10:00:00 UTC, in journald's microseconds.
T0 = 1796378400_000000


def record(frame: int, **part: Any) -> dict[str, Any]:
    """A result line as edgekit/agent/service.py writes it."""
    part = part or {"detections": [detection("crate", 0.91), detection("pallet", 0.4)]}
    return {"ts": 1.5, "frame": frame, "release": "r1", "pid": 42, "latency_ms": LATENCY, "fps": 23.4, **part}


def detection(label: str, score: float) -> dict[str, Any]:
    return {"index": 0, "label": label, "score": score, "box": [1.0, 2.0, 3.0, 4.0]}


def entry(message: Any, n: int = 0, **fields: str) -> str:
    """One line of `journalctl --output=json`: every value a string, as journald writes them."""
    line = {
        "__CURSOR": f"s=abc;i={n}",
        "__REALTIME_TIMESTAMP": str(T0 + n * 1000),
        "_SYSTEMD_UNIT": UNIT,
        "_PID": "42",
        "PRIORITY": "6",
        "MESSAGE": json.dumps(message) if isinstance(message, dict) else message,
        **fields,
    }
    return json.dumps(line)


def journal(*lines: str) -> Reply:
    return Reply("".join(line + "\n" for line in lines))


def test_a_result_record_is_parsed_and_shown_in_its_task_s_terms() -> None:
    parsed = parse_entry(entry(record(1234)), UNIT)
    assert parsed is not None and parsed.record is not None
    assert parsed.record.frame == 1234
    assert parsed.describe() == "frame 1234  2 boxes, best crate (0.91)  23.4 fps  total 41 ms"
    assert (parsed.time, parsed.unit, parsed.pid, parsed.priority, parsed.cursor) == (
        datetime(2026, 12, 4, 10, 0, tzinfo=UTC),
        UNIT,
        42,
        6,
        "s=abc;i=0",
    )
    assert parsed.to_dict() == {
        "time": "2026-12-04T10:00:00+00:00",
        "unit": UNIT,
        "pid": 42,
        "priority": 6,
        "record": record(1234),
    }


def test_the_first_frame_has_no_fps_and_a_fast_model_shows_tenths() -> None:
    line = record(0, top=[{"index": 7, "label": "7", "score": 0.99}])
    line.update(fps=None, latency_ms={**LATENCY, "total": 3.25})
    parsed = parse_entry(entry(line), UNIT)
    assert parsed is not None and parsed.describe() == "frame 0  7 (0.99)  total 3.2 ms"


def test_a_plain_message_keeps_its_words_and_systemd_s_lines_their_unit() -> None:
    parsed = parse_entry(entry("source lost: read timed out; reconnecting in 0.5 s", 3, PRIORITY="4"), UNIT)
    assert parsed is not None and parsed.record is None
    assert parsed.describe() == "source lost: read timed out; reconnecting in 0.5 s"
    assert parsed.to_dict()["message"] == parsed.message and "record" not in parsed.to_dict()
    assert parsed.priority == 4
    # systemd's own lines about the unit name it as UNIT, from PID 1 in init.scope.
    started = entry("Started edgekit-camera.service.", _PID="1", _SYSTEMD_UNIT="init.scope", UNIT=UNIT)
    from_systemd = parse_entry(started, "asked.service")
    assert from_systemd is not None and (from_systemd.unit, from_systemd.pid) == (UNIT, 1)
    asked = json.loads(entry("no unit fields"))
    del asked["_SYSTEMD_UNIT"]
    assert getattr(parse_entry(json.dumps(asked), "asked.service"), "unit", None) == "asked.service"


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        # JSON without a frame, and a frame of another shape (an older agent's): messages as written.
        ('{"progress": "phase 3/10"}', '{"progress": "phase 3/10"}'),
        ('{"frame": "x"}', '{"frame": "x"}'),
        ("{not json", "{not json"),
    ],
)
def test_lines_that_are_not_records_are_messages(message: str, shown: str) -> None:
    parsed = parse_entry(entry(message), UNIT)
    assert parsed is not None and parsed.record is None and parsed.describe() == shown


def test_a_message_that_is_not_utf8_arrives_as_bytes() -> None:
    # journald gives such a MESSAGE as a list of byte values.
    raw = list("caméra ".encode()) + [0xFF]
    parsed = parse_entry(entry(raw), UNIT)  # type: ignore[arg-type]
    assert parsed is not None and parsed.message == "caméra \ufffd"
    # A field logged twice comes as a list of its values.
    assert field_text(["one", "two"]) == "one\ntwo"
    assert field_text(None) == ""


def test_lines_that_are_not_entries_are_skipped() -> None:
    assert parse_entry("-- No entries --", UNIT) is None
    assert parse_entry("[1, 2]", UNIT) is None


def test_the_argv_names_the_unit_the_lines_and_since_as_one_argument() -> None:
    assert journal_argv(LogsRequest()) == [
        "journalctl",
        f"--unit={UNIT}",
        "--output=json",
        "--all",
        "--no-pager",
        "--quiet",
        "--lines=50",
    ]
    since = journal_argv(LogsRequest(since="10 min ago; rm -rf /", lines=5))
    assert since[-2:] == ["--since=10 min ago; rm -rf /", "--lines=5"]
    # Following: after the newest entry seen; with none seen yet, everything the filter finds.
    assert journal_argv(LogsRequest(), "s=abc;i=9", first=False)[-1] == "--after-cursor=s=abc;i=9"
    assert journal_argv(LogsRequest(), "", first=False)[-1] == "--quiet"


def test_build_reads_the_release_s_build_unit(fake_connection: FakeConnection) -> None:
    fake_connection.on(
        ["journalctl"], journal(entry("building the engine", _SYSTEMD_UNIT="edgekit-build-ab12.service"))
    )
    shown = list(read_journal(fake_connection, LogsRequest(build="ab12")))
    assert [e.message for e in shown] == ["building the engine"] and shown[0].unit == "edgekit-build-ab12.service"
    assert fake_connection.runs[0].argv[1] == "--unit=edgekit-build-ab12.service"
    assert fake_connection.runs[0].sudo


def test_an_unknown_release_is_one_sentence_naming_releases(fake_connection: FakeConnection) -> None:
    fake_connection.on(["journalctl"], journal())
    fake_connection.on(["test", "-e", "/var/lib/edgekit/releases/0123abcd"], Reply(exit_code=1))
    with pytest.raises(UsageError, match=r"No build unit edgekit-build-0123abcd.service ran on .*`edgekit releases"):
        list(read_journal(fake_connection, LogsRequest(build="0123abcd")))


def test_a_known_release_with_an_empty_build_journal_shows_nothing(fake_connection: FakeConnection) -> None:
    fake_connection.on(["journalctl"], journal())
    fake_connection.on(["test", "-e"])
    assert list(read_journal(fake_connection, LogsRequest(build="0123abcd"))) == []


@pytest.mark.parametrize("bad", ["*", "ab cd", "../x", "-x", ""])
def test_a_release_id_that_is_not_one_is_refused_before_connecting(bad: str) -> None:
    with pytest.raises(UsageError, match="is not a release id; `edgekit releases HOST` lists them"):
        LogsRequest(build=bad)


def test_an_empty_journal_yields_nothing(fake_connection: FakeConnection) -> None:
    fake_connection.on(["journalctl"], journal())
    assert list(read_journal(fake_connection, LogsRequest())) == []
    assert len(fake_connection.runs) == 1


def test_a_since_journalctl_cannot_read_is_a_usage_error(fake_connection: FakeConnection) -> None:
    fake_connection.on(["journalctl"], Reply(stderr="Failed to parse timestamp: soonish\n", exit_code=1))
    with pytest.raises(UsageError, match="cannot read --since 'soonish'; give a time it reads"):
        list(read_journal(fake_connection, LogsRequest(since="soonish")))
    fake_connection.on(["journalctl"], Reply(stderr="No journal files were found.\n", exit_code=1))
    with pytest.raises(RemoteCommandFailed, match="No journal files were found"):
        list(read_journal(fake_connection, LogsRequest()))


def following(conn: FakeConnection, request: LogsRequest, polls: int, **kwargs: Any) -> Iterator[Any]:
    """``read_journal`` following until ``polls`` journal reads were made."""
    reads = lambda: sum(run.argv[0] == "journalctl" for run in conn.runs)  # noqa: E731
    return read_journal(conn, request, stopped=lambda: reads() >= polls, sleep=lambda s: None, **kwargs)


def test_following_reads_after_the_last_cursor(fake_connection: FakeConnection) -> None:
    fake_connection.on(
        ["journalctl"],
        journal(entry(record(1), 1), entry(record(2), 2)),
        journal(),
        journal(entry(record(3), 3)),
        journal(),
    )
    frames = [e.record.frame for e in following(fake_connection, LogsRequest(follow=True, lines=2), polls=4)]
    assert frames == [1, 2, 3]
    sent = [run.argv[-1] for run in fake_connection.runs]
    assert sent == ["--lines=2", "--after-cursor=s=abc;i=2", "--after-cursor=s=abc;i=2", "--after-cursor=s=abc;i=3"]


def test_following_an_empty_journal_reads_all_that_comes(fake_connection: FakeConnection) -> None:
    fake_connection.on(["journalctl"], journal(), journal(entry("Started.", 1)), journal())
    shown = list(following(fake_connection, LogsRequest(follow=True, since="today"), polls=3))
    assert [e.message for e in shown] == ["Started."]
    assert [run.argv[-1] for run in fake_connection.runs] == [
        "--lines=50",
        "--since=today",
        "--after-cursor=s=abc;i=1",
    ]


def dropped(run: Run) -> Reply:
    raise DeviceUnreachable("The link to nvidia@jetson dropped (EOF).")


def test_a_dropped_link_is_reconnected_with_one_line_each_way(fake_connection: FakeConnection) -> None:
    fake_connection.on(
        ["journalctl"], journal(entry("a", 1)), dropped, dropped, dropped, journal(entry("b", 2)), journal()
    )
    said: list[str] = []
    shown = list(following(fake_connection, LogsRequest(follow=True), polls=6, on_drop=said.append))
    assert [e.message for e in shown] == ["a", "b"]
    assert len(said) == 2 and said[0].startswith("link dropped (") and said[1].startswith("reconnected")
    # Nothing is lost: the read after the drop starts from the last entry seen.
    assert fake_connection.runs[4].argv[-1] == "--after-cursor=s=abc;i=1"


def test_a_link_that_stays_down_ends_following_with_one_sentence(fake_connection: FakeConnection) -> None:
    clock = FakeClock()
    fake_connection.on(["journalctl"], journal(entry("a", 1)), dropped)
    with pytest.raises(DeviceUnreachable, match=f"did not come back within {RECONNECT_S:.0f} s"):
        list(read_journal(fake_connection, LogsRequest(follow=True), sleep=clock.sleep, monotonic=clock.monotonic))
    assert clock.now - 1000.0 > RECONNECT_S


@contextlib.contextmanager
def device(monkeypatch: pytest.MonkeyPatch, conn: FakeConnection) -> Iterator[None]:
    @contextlib.contextmanager
    def connect(self: api.Endpoint) -> Iterator[FakeConnection]:
        yield conn
        conn.close()

    monkeypatch.setattr(api.Endpoint, "connect", connect)
    yield


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["logs", "jetson", "--no-ssh-config", *args], catch_exceptions=False)


def test_the_command_shows_records_and_messages_with_their_time(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_connection.on(["journalctl"], journal(entry("Started edgekit camera.", 1), entry(record(7), 2)))
    with device(monkeypatch, fake_connection):
        done = cli("--lines", "2", "--since", "today")
    assert done.exit_code == 0, done.output
    # In this machine's time zone, as journalctl shows it.
    stamp = datetime(2026, 12, 4, 10, 0, tzinfo=UTC).astimezone().strftime("%b %d %H:%M:%S")
    assert done.stdout.splitlines() == [
        f"{stamp}  Started edgekit camera.",
        f"{stamp}  frame 7  2 boxes, best crate (0.91)  23.4 fps  total 41 ms",
    ]
    assert fake_connection.runs[0].argv[-2:] == ("--since=today", "--lines=2") and fake_connection.closed


def test_the_command_s_json_is_one_object_a_line(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_connection.on(["journalctl"], journal(entry("hello", 1), entry(record(7), 2)))
    with device(monkeypatch, fake_connection):
        done = cli("--json", "--build", "ab12")
    assert done.exit_code == 0, done.output
    shown = [json.loads(line) for line in done.stdout.splitlines()]
    assert [set(line) for line in shown] == [
        {"time", "unit", "pid", "priority", "message"},
        {"time", "unit", "pid", "priority", "record"},
    ]
    assert shown[1]["record"]["frame"] == 7
    assert fake_connection.runs[0].argv[1] == "--unit=edgekit-build-ab12.service"


def test_ctrl_c_ends_following_quietly_with_exit_0(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(run: Run) -> Reply:
        # Ctrl-C while a poll runs on the device: invoke would swallow a KeyboardInterrupt here.
        os.kill(os.getpid(), signal.SIGINT)
        return journal(entry(record(2), 2))

    fake_connection.on(["journalctl"], journal(entry(record(1), 1)), interrupted)
    before = signal.getsignal(signal.SIGINT)
    with device(monkeypatch, fake_connection):
        done = cli("--follow", "--json")
    assert done.exit_code == 0, done.output
    assert [json.loads(line)["record"]["frame"] for line in done.stdout.splitlines()] == [1, 2]
    assert len(fake_connection.runs) == 2 and fake_connection.closed
    assert "Aborted" not in done.output and signal.getsignal(signal.SIGINT) is before


def test_an_empty_journal_says_so_on_stderr(fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_connection.on(["journalctl"], journal())
    with device(monkeypatch, fake_connection):
        done = cli()
    assert done.exit_code == 0 and done.stdout == ""
    assert "No entries in the journal of edgekit-camera.service on jetson." in done.stderr
