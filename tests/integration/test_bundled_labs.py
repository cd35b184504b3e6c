"""Every bundled lab passes `netlab lab check`: its commands run and its expectations hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app
from netlab.labs import load_lab, run_lab

LABS = sorted((Path(__file__).resolve().parents[2] / "labs").glob("*.yaml"))


def test_there_are_bundled_labs():
    assert len(LABS) >= 4


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_check_passes(path: Path):
    result = CliRunner().invoke(app, ["lab", "check", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_every_step_has_a_title_an_explanation_and_checks(path: Path):
    """A teaching lab explains each step and checks what it claims."""
    lab = load_lab(path)
    assert lab.description.strip()
    for step in lab.steps:
        assert step.explain.strip(), f"step {step.number} explains nothing"
        assert step.commands or step.expect, f"step {step.number} does nothing"
    assert sum(len(s.expect) for s in lab.steps) >= len(lab.steps)


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_every_command_is_accepted(path: Path):
    """No command of a bundled lab is refused, except in a step that expects it."""
    result = run_lab(load_lab(path))
    for record in result.steps:
        if record.step.on_error == "continue":
            continue
        refused = [(c.line, c.cmd, c.error) for c in record.commands if not c.ok]
        assert refused == [], f"{path.name}: {refused}"
