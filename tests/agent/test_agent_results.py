from __future__ import annotations

import io
import json

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
