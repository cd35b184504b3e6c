"""Every bundled lab, seen: `lab run --html DIR` writes a page per step whose every
trace is placed on the diagram, and `lab run --step` shows each trace expectation as a
tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app
from netlab.labs import load_lab

LABS = sorted((Path(__file__).resolve().parents[2] / "labs").glob("*.yaml"))


def page_data(page: Path) -> dict:
    blob = page.read_text().split('id="trace-data">')[1].split("</script>")[0]
    return json.loads(blob.replace("<\\/", "</"))


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_run_html_writes_a_page_per_step(path: Path, tmp_path: Path):
    lab = load_lab(path)
    result = CliRunner().invoke(app, ["lab", "run", str(path), "--html", str(tmp_path)])
    assert result.exit_code == 0, result.output
    pages = sorted(tmp_path.glob("step-*.html"))
    assert len(pages) == len(lab.steps)
    probes = 0
    for page, step in zip(pages, lab.steps):
        data = page_data(page)
        traced = [e for e in step.expect if e.kind in ("trace", "reach")]
        forward = [leg for leg in data["legs"] if not leg["reply"]]
        assert len(forward) >= len(traced), f"{page.name}: a trace is missing"
        for leg in data["legs"]:
            assert leg["steps"], f"{page.name}: {leg['title']} has no hops"
            placed = [s for s in leg["steps"] if s["element"]]
            assert len(placed) == len(leg["steps"]), f"{page.name}: a hop is not on the diagram"
        probes += len(traced)
    assert (tmp_path / "index.html").is_file()
    assert probes, "the lab has no trace or reach expectations to show"


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_run_step_draws_every_trace_expectation(path: Path):
    lab = load_lab(path)
    wanted = sum(1 for s in lab.steps for e in s.expect if e.kind == "trace")
    result = CliRunner().invoke(app, ["lab", "run", str(path), "--step", "--no-color"])
    assert result.exit_code == 0, result.output
    # each trace tree ends its path with the outcome line, at the start of a line
    assert result.stdout.count("\noutcome: ") >= wanted
