"""The terminal tree of a trace, pinned by golden files (tests/data/viz/*.txt).

Regenerate after an intended change with NETLAB_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlab.viz.text import ansi, plain, rich_text, trace_lines
from tests.unit.viz_cases import CASES

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "viz"


def switches(world):
    return [lan.name for lan in world.lans]


@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_text_matches_the_golden_file(name):
    world, traced = CASES[name]()
    text = plain(trace_lines(traced, switches(world)))
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("NETLAB_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"rendering changed: diff against {golden}"


def test_the_tree_groups_hops_by_node_then_namespace():
    world, traced = CASES["lab05-masquerade"]()
    lines = plain(trace_lines(traced, switches(world))).splitlines()
    assert lines[1] == "├── host" and lines[2] == "│   ├── netns red"
    assert "│   └── root namespace" in lines
    assert "├── lan (switch)" in lines


def test_nat_shows_the_header_before_and_after():
    world, traced = CASES["lab05-masquerade"]()
    text = plain(trace_lines(traced, switches(world)))
    assert ("icmp echo-request 192.168.15.1 > 192.168.1.3  →  "
            "icmp echo-request 192.168.1.2 > 192.168.1.3") in text
    assert ("icmp echo-reply 192.168.1.3 > 192.168.1.2  →  "
            "icmp echo-reply 192.168.1.3 > 192.168.15.1") in text


def test_verdict_outcome_and_diagnosis_come_last():
    world, traced = CASES["lab06-dropped"]()
    lines = plain(trace_lines(traced, switches(world))).splitlines()
    assert lines[-2].startswith("outcome: timeout")
    assert lines[-1].startswith("diagnosis: the FORWARD policy of filter on host is DROP")


def test_forks_say_their_probability():
    world, traced = CASES["service-fork"]()
    text = plain(trace_lines(traced, switches(world)))
    assert text.count("(probability 0.333333)") == 3
    assert "path 3 of 3 (probability 0.333333)" in text


def styles_of(lines, needle: str) -> set[str]:
    return {style for line in lines for part, style in line if needle in part}


def test_colours_follow_what_a_rule_did():
    world, traced = CASES["lab06-dropped"]()
    lines = trace_lines(traced, switches(world))
    drop = next(h for h in traced.paths[0].hops if h.action == "drop")
    assert styles_of(lines, f"  {drop.rule}") == {"drop"}
    world, traced = CASES["lab06-published-port"]()
    lines = trace_lines(traced, switches(world))
    dnat = next(h for h in traced.paths[0].hops if h.action == "dnat")
    accept = next(h for h in traced.paths[0].hops if h.action == "accept" and h.rule
                  and not h.rule.startswith("-P"))
    assert styles_of(lines, f"  {dnat.rule}") == {"nat"}
    assert styles_of(lines, f"  {accept.rule}") == {"accept"}


def test_rich_text_carries_the_colours_and_the_same_characters():
    from rich.console import Console

    world, traced = CASES["lab06-published-port"]()
    lines = trace_lines(traced, switches(world))
    text = rich_text(lines)
    assert text.plain + "\n" == plain(lines)
    console = Console(force_terminal=True, color_system="standard", width=400)
    with console.capture() as cap:
        console.print(text, soft_wrap=True)
    ansi = cap.get()
    assert "\x1b[32m" in ansi and "\x1b[33m" in ansi      # green accept, yellow NAT


@pytest.mark.parametrize("name", sorted(CASES))
def test_trace_json_round_trips(name):
    from netlab.trace import Trace

    _, traced = CASES[name]()
    data = traced.to_json()
    again = Trace.from_json(data)
    assert again.to_json() == data
    assert plain(trace_lines(again)) == plain(trace_lines(traced))


def test_ansi_colours_the_same_characters():
    import re

    world, traced = CASES["lab06-dropped"]()
    lines = trace_lines(traced, switches(world))
    coloured = ansi(lines)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain(lines)
    drop = next(h for h in traced.paths[0].hops if h.action == "drop")
    assert f"\x1b[1;31m  {drop.rule}\x1b[0m" in coloured          # bold red
