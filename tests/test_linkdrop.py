"""The sentence of a dropped link names the stage it cut and what a re-run does from there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edgekit.errors import LinkDropped
from edgekit.linkdrop import NOTHING_CHANGED, STAGES, naming_drops
from edgekit.provision import Reporter

ROOT = Path(__file__).resolve().parents[1]
# Steps that start no stage of their own: they happen inside the one before.
INSIDE_A_STAGE = ("the camera service pauses", "sampling")


def dropped_after(*steps: str) -> str:
    shown: list[str] = []
    with pytest.raises(LinkDropped) as raised, naming_drops(Reporter(step=shown.append)) as reporter:
        for text in steps:
            reporter.step(text)
        raise LinkDropped("jetson@d", "EOF")
    assert shown == list(steps)
    return str(raised.value)


def test_the_sentence_names_the_last_stage_and_what_a_rerun_does() -> None:
    assert dropped_after() == f"The link to jetson@d dropped while connecting (EOF); {NOTHING_CHANGED}."
    assert dropped_after("reading device facts", "uploading") == (
        "The link to jetson@d dropped while uploading (EOF); re-run the same command: every file resumes "
        "where it stopped."
    )
    # A build's "reconnecting" line is not a stage: the drop still belongs to the build.
    assert "while building the model" in dropped_after("building the int8 model", "link dropped (EOF); reconnecting")
    assert "the device ends the trial by itself" in dropped_after("on trial: 3 of 30 results, 100 s left")


def test_other_errors_pass_through_unchanged() -> None:
    with pytest.raises(ValueError, match="not a drop"), naming_drops(Reporter()) as reporter:
        reporter.step("uploading")
        raise ValueError("not a drop")


def step_texts(path: Path) -> list[str]:
    """The literal start of every ``reporter.step(...)`` text in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "step":
            (arg,) = node.args or [None]
            if isinstance(arg, ast.Constant):
                found.append(str(arg.value))
            elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
                found.append(str(arg.values[0].value))
    return found


@pytest.mark.parametrize("module", ["edgekit/provision.py", "edgekit/recalibration.py", "edgekit/api.py"])
def test_every_step_a_long_command_shows_is_a_known_stage(module: str) -> None:
    texts = step_texts(ROOT / module)
    assert texts
    for text in texts:
        assert text.startswith(tuple(prefix for prefix, _, _ in STAGES) + INSIDE_A_STAGE), text
