from __future__ import annotations

import io
import json

import pytest

from edgekit.agent.errors import AgentError
from edgekit.agent.results import ResultWriter


def test_each_record_is_one_compact_line_on_the_stream_and_in_the_file(tmp_path):
    stream = io.StringIO()
    path = tmp_path / "deep" / "dir" / "results.jsonl"
    writer = ResultWriter(str(path), max_bytes=10_000, backups=1, stream=stream)
    writer.write({"frame": 0, "top": [{"label": "cat", "score": 0.5}]})
    writer.write({"frame": 1, "top": []})
    writer.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == '{"frame":0,"top":[{"label":"cat","score":0.5}]}'
    assert path.read_text().splitlines() == lines


def test_files_rotate_by_size_and_keep_only_the_backups(tmp_path):
    path = tmp_path / "results.jsonl"
    writer = ResultWriter(str(path), max_bytes=200, backups=2, stream=io.StringIO())
    for frame in range(40):
        writer.write({"frame": frame, "pad": "x" * 20})
    writer.close()
    files = [path.with_name("results.jsonl.2"), path.with_name("results.jsonl.1"), path]
    assert all(f.exists() for f in files)
    assert not path.with_name("results.jsonl.3").exists()
    assert all(0 < f.stat().st_size <= 200 for f in files)
    frames = [json.loads(line)["frame"] for f in files for line in f.read_text().splitlines()]
    # Oldest to newest across the rotated files, ending with the last record written.
    assert frames == list(range(frames[0], 40))


def test_an_existing_file_is_appended_to_and_counted(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("x" * 190 + "\n")
    writer = ResultWriter(str(path), max_bytes=200, backups=0, stream=io.StringIO())
    writer.write({"frame": 0})
    writer.close()
    assert path.read_text() == '{"frame":0}\n'
    assert not path.with_name("results.jsonl.1").exists()


def test_a_results_path_the_service_may_not_write_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AgentError) as caught:
        ResultWriter(str(blocker / "results.jsonl"), 1000, 1, stream=io.StringIO())
    assert caught.value.kind == "config" and "set results.path" in caught.value.message


def test_a_full_disk_keeps_results_on_stdout_and_says_so_once():
    stream, lines = io.StringIO(), []
    writer = ResultWriter("/dev/full", 1 << 20, 0, stream=stream, log=lines.append)
    for frame in range(3):
        writer.write({"frame": frame})
    writer.close()
    assert [json.loads(line)["frame"] for line in stream.getvalue().splitlines()] == [0, 1, 2]
    assert len(lines) == 1 and "cannot write /dev/full (No space left on device)" in lines[0]
