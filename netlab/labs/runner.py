"""Run a lab's steps through the Shell on a ModelBackend and check its expectations.

    result = run_lab(lab)                 # every step, expectations checked
    result = run_lab(lab, until=3)        # the state after step 3
    result.ok, result.stopped, result.to_json()

A command the kernel refuses stops the run at that line unless the step says
``on_error: continue``. A probe that fails (``ping`` with no answer, ``nc -z``
refused) is an observation, not a refusal: it is recorded and the run goes on; ``keep_going=True`` (what ``netlab trace`` uses) runs
the whole script whatever fails, as a shell without ``set -e`` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from netlab.labs.build import build_model
from netlab.labs.expect import ExpectResult, check
from netlab.labs.model import CommandLine, Lab, Step


@dataclass
class CommandRecord:
    cmd: str
    line: int
    ok: bool
    error: str | None
    output: str
    status: int
    probed: bool = False            # the command sent probes (ping, nc -z, curl, traceroute)

    def to_json(self) -> dict[str, Any]:
        return {"cmd": self.cmd, "ok": self.ok, "error": self.error, "output": self.output,
                "status": self.status, "line": self.line}

    def failure_text(self) -> str:
        why = (self.error or "").strip() or f"exit status {self.status}"
        return f"{self.cmd}: {why.splitlines()[0] if why else why}"


@dataclass
class StepRecord:
    step: Step
    commands: list[CommandRecord] = field(default_factory=list)
    expect: list[ExpectResult] = field(default_factory=list)
    stopped: CommandRecord | None = None       # the refused command that ended the run

    @property
    def ok(self) -> bool:
        return self.stopped is None and all(e.ok for e in self.expect)

    def to_json(self) -> dict[str, Any]:
        return {"number": self.step.number, "title": self.step.title, "line": self.step.line,
                "node": self.step.node,
                "commands": [c.to_json() for c in self.commands],
                "expect": [e.to_json() for e in self.expect]}


@dataclass
class RunResult:
    lab: Lab
    steps: list[StepRecord]
    backend: Any                                # the ModelBackend, holding the final World

    @property
    def world(self):
        return self.backend.world

    @property
    def stopped(self) -> tuple[StepRecord, CommandRecord] | None:
        for record in self.steps:
            if record.stopped is not None:
                return record, record.stopped
        return None

    @property
    def failed(self) -> list[tuple[StepRecord, ExpectResult]]:
        return [(s, e) for s in self.steps for e in s.expect if not e.ok]

    @property
    def ok(self) -> bool:
        return self.stopped is None and not self.failed

    def stop_message(self) -> str | None:
        """``labs/x.yaml:12: CMD: ERROR`` for the command that stopped the run."""
        stopped = self.stopped
        if stopped is None:
            return None
        return f"{self.lab.where(stopped[1].line)}: {stopped[1].failure_text()}"

    def to_json(self) -> dict[str, Any]:
        stopped = self.stopped
        return {
            "lab": self.lab.name,
            "path": self.lab.path,
            "ok": self.ok,
            "steps": [s.to_json() for s in self.steps],
            "stopped": None if stopped is None else {
                "step": stopped[0].step.number, "line": stopped[1].line,
                "cmd": stopped[1].cmd, "error": stopped[1].error,
                "message": self.stop_message()},
        }


class Runner:
    """Holds the backend and the shell of one run; runs steps one at a time."""

    def __init__(self, lab: Lab):
        from netlab.commands.shell import Shell

        self.lab = lab
        self.backend = build_model(lab)
        self.shell = Shell(self.backend, default_node=lab.nodes[0])

    @property
    def world(self):
        return self.backend.world      # a refused command may swap the World object: read it fresh

    def run_command(self, command: CommandLine, node: str) -> CommandRecord:
        res = self.shell.run(command.text, node=node)
        return CommandRecord(cmd=command.text, line=command.line, ok=bool(res.ok),
                             error=res.error, output=res.output or "", status=res.status,
                             probed=bool(res.traces))

    def run_step(self, step: Step, *, check_expect: bool = True,
                 keep_going: bool = False) -> StepRecord:
        record = StepRecord(step)
        for command in step.commands:
            done = self.run_command(command, step.node)
            record.commands.append(done)
            if not done.ok and not done.probed and step.on_error == "stop" and not keep_going:
                record.stopped = done
                return record
        if check_expect:
            record.expect = [check(e, self.world, step, self.lab.nodes[0]) for e in step.expect]
        return record

    def steps(self, *, until: int | None = None, check_expect: bool = True,
              keep_going: bool = False) -> Iterator[StepRecord]:
        """Run the steps in order (up to step ``until``), yielding each as it is done."""
        for step in self.lab.steps[:until]:
            record = self.run_step(step, check_expect=check_expect, keep_going=keep_going)
            yield record
            if record.stopped is not None:
                return


def run_lab(lab: Lab, *, until: int | None = None, check_expect: bool = True,
            keep_going: bool = False,
            on_step: Callable[[StepRecord], None] | None = None) -> RunResult:
    if until is not None and not 0 <= until <= len(lab.steps):
        from netlab.errors import LabError

        raise LabError(f"there is no step {until} (the lab has {len(lab.steps)} steps)",
                       path=lab.path)
    runner = Runner(lab)
    records: list[StepRecord] = []
    for record in runner.steps(until=until, check_expect=check_expect, keep_going=keep_going):
        records.append(record)
        if on_step is not None:
            on_step(record)
    return RunResult(lab=lab, steps=records, backend=runner.backend)
