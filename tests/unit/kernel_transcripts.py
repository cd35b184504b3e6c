"""Reading the real-kernel transcripts in tests/data/kernel/ and replaying them.

A transcript is ``$ command`` / output / ``[exit N]`` (FINDINGS.md there says
how they were recorded). ``normalise`` removes what differs between any two
machines or runs: MAC addresses (and what is derived from them: IPv6
link-local addresses, solicited-node groups, bridge ids), ifindexes,
netnsid/link-netns words, the ``kref-`` prefix of namespace names, times and
timers, and the order of neighbour entries (the kernel lists them in hash
order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parents[1] / "data" / "kernel"


@dataclass
class Step:
    cmd: str
    output: str
    status: int
    background: bool = False
    line: int = 0
    occurrence: int = 0          # how many times this exact command came before


def read_transcript(name: str) -> list[Step]:
    steps: list[Step] = []
    cur: Step | None = None
    seen: dict[str, int] = {}
    lines: list[str] = []
    text = (KERNEL_DIR / f"{name}.txt").read_text()
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("# kernel:"):
            continue
        if line.startswith("$ "):
            cmd = line[2:]
            cur = Step(cmd=cmd, output="", status=-1, line=number,
                       occurrence=seen.get(cmd, 0))
            seen[cmd] = seen.get(cmd, 0) + 1
            steps.append(cur)
            lines = []
            continue
        if cur is None:
            continue
        if cur.status == -1:
            m = re.fullmatch(r"\[exit (\d+)(.*)\]", line)
            if m:
                cur.status = int(m.group(1))
                cur.output = "".join(l + "\n" for l in lines)
                lines = []
                continue
            if line == "[started in background]":
                cur.status, cur.background = 0, True
                cur.output = ""
                lines = []
                continue
            lines.append(line)
    return [s for s in steps if s.status != -1]


_MAC = re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b")
_RULES = [
    (re.compile(r"fe80::[0-9a-f:]+"), "fe80::X"),
    (re.compile(r"(?m)^\d+: "), "N: "),
    (re.compile(r"@if\d+"), "@ifN"),
    (re.compile(r" link-netns(?:id)? \S+"), " link-netns X"),
    (re.compile(r" tentative"), ""),
    (re.compile(r"time=\d+(?:\.\d+)? ms"), "time=T ms"),
    (re.compile(r"time \d+ms"), "time Tms"),
    (re.compile(r"= [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms"), "= RTT ms"),
    (re.compile(r"\d+\.\d+ ms"), "T ms"),
    (re.compile(r"after \d+ (ms|milliseconds)"), r"after T \1"),
    (re.compile(r"8000\.[0-9a-f:]+"), "8000.ID"),
    (re.compile(r"(_timer) +\d+\.\d+"), r"\1 T"),
    (re.compile(r"kref-"), ""),
    (re.compile(r"\bINCOMPLETE\b"), "FAILED"),   # the same entry seconds later
]


def normalise(text: str, cmd: str = "") -> str:
    text = _MAC.sub("MAC", text)
    for rx, repl in _RULES:
        text = rx.sub(repl, text)
    if " neigh" in cmd:
        text = "".join(sorted(text.splitlines(keepends=True)))
    return text


def result_matches(step: Step, output: str, error: str | None, status: int) -> bool:
    """Does a CommandResult print what the kernel's tools printed?

    ``output`` is stdout; the error line is what the tool printed on stderr when
    the tool prints one. A transcript merges both, and only the first line of a
    multi-line error is kept in ``error`` (``Dump terminated``, usage text).
    """
    if status != step.status:
        return False
    want = normalise(step.output, step.cmd)
    err = (error or "").split(" (hint: ")[0]
    if normalise(output, step.cmd) == want:
        return True
    if err and normalise(output + err + "\n", step.cmd) == want:
        return True
    if err and not output and normalise(err + "\n") == normalise(
            step.output.split("\n")[0] + "\n"):
        return True
    # The tool printed nothing; netlab still explains the failure in `error`.
    return not step.output and status != 0 and not output


@dataclass
class Replay:
    mismatches: list[tuple[Step, str]] = field(default_factory=list)
    matched: list[Step] = field(default_factory=list)
