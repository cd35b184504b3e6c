"""Expectations checked against a World: reach, trace, output.

Each check gives an ExpectResult (kind, ok, detail, line); a failed
expectation is a result, not an exception. ``output`` runs its command on a
copy of the state, so a check never changes what the next step sees.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from netlab.labs.model import Expectation, OutputExpect, Reach, Step, TraceExpect
from netlab.model import World
from netlab.trace import SUCCESS, Path, Trace


@dataclass
class ExpectResult:
    kind: str
    ok: bool
    detail: str
    line: int
    trace: Trace | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": self.ok, "detail": self.detail, "line": self.line}


def check(expectation: Expectation, world: World, step: Step, default_node: str) -> ExpectResult:
    if isinstance(expectation, Reach):
        return check_reach(expectation, world, step)
    if isinstance(expectation, TraceExpect):
        return check_trace(expectation, world, step)
    if isinstance(expectation, OutputExpect):
        return check_output(expectation, world, step, default_node)
    raise TypeError(f"not an expectation: {expectation!r}")


def probe_text(source: str, to: str, proto: str, port: int | None) -> str:
    dst = f"{to}:{port}" if port is not None else to
    return f"{source} → {dst} ({proto})"


def _run_trace(exp: Reach | TraceExpect, world: World, step: Step) -> Trace | str:
    from netlab.dataplane.engine import trace

    ns = world.resolve(exp.source, default_node=step.node)
    if ns is None:
        known = ", ".join(sorted(n.label for n in world.namespaces.values() if n.kind != "switch"))
        return f"no namespace called '{exp.source}' (there are: {known})"
    return trace(world, ns.key, exp.to, proto=exp.proto, dport=exp.port,
                 sport=getattr(exp, "sport", None))


def path_summary(path: Path) -> str:
    text = path.verdict
    if path.delivered_to:
        text += f" to {path.delivered_to}"
    text += f", {path.outcome}"
    if path.diagnosis:
        text += f": {path.diagnosis}"
    if path.reply is not None and path.reply.verdict != "delivered":
        text += f"; the reply: {path.reply.verdict}"
        if path.reply.diagnosis:
            text += f" ({path.reply.diagnosis})"
    return text


def check_reach(exp: Reach, world: World, step: Step) -> ExpectResult:
    what = probe_text(exp.source, exp.to, exp.proto, exp.port)
    result = _run_trace(exp, world, step)
    if isinstance(result, str):
        return ExpectResult("reach", False, f"{what}: {result}", exp.line)
    paths = result.paths
    succeeding = sum(p.probability for p in paths if p.outcome == SUCCESS)
    reached = bool(paths) and all(p.outcome == SUCCESS for p in paths)
    never = all(p.outcome != SUCCESS for p in paths)
    ok = reached if exp.want else never
    if reached:
        detail = f"{what}: reached"
    elif never:
        detail = f"{what}: not reached ({result.outcome})"
    else:
        detail = f"{what}: reached on some paths only (probability {succeeding:.2f})"
    if not ok:
        detail += f" — expected {'reached' if exp.want else 'not reached'}"
        worst = next((p for p in paths if (p.outcome == SUCCESS) != exp.want), None)
        if worst is not None:
            detail += f"; {path_summary(worst)}"
    elif not reached and paths:
        detail += f"; {path_summary(paths[0])}"
    return ExpectResult("reach", ok, detail, exp.line, trace=result)


def _end(ip: str | None, port: int | None, wanted: str | None) -> str | None:
    """A packet's end as the expectation writes it: with the port only if it names one."""
    return f"{ip}:{port}" if wanted is not None and ":" in wanted else ip


def check_trace(exp: TraceExpect, world: World, step: Step) -> ExpectResult:
    what = probe_text(exp.source, exp.to, exp.proto, exp.port)
    result = _run_trace(exp, world, step)
    if isinstance(result, str):
        return ExpectResult("trace", False, f"{what}: {result}", exp.line)
    wanted_to = exp.delivered_to
    if wanted_to is not None:
        ns = world.resolve(wanted_to, default_node=step.node)
        wanted_to = ns.label if ns is not None else wanted_to
    problems: list[str] = []
    for i, path in enumerate(result.paths, 1):
        out = path.packet_out
        got = {"verdict": path.verdict, "outcome": path.outcome,
               "delivered_to": path.delivered_to,
               "reply_verdict": path.reply.verdict if path.reply is not None else None,
               "src_out": _end(out.src, out.sport, exp.src_out),
               "dst_out": _end(out.dst, out.dport, exp.dst_out)}
        want = {"verdict": exp.verdict, "outcome": exp.outcome, "delivered_to": wanted_to,
                "reply_verdict": exp.reply_verdict, "src_out": exp.src_out,
                "dst_out": exp.dst_out}
        for key, value in want.items():
            if value is not None and got[key] != value:
                label = f"path {i}: " if len(result.paths) > 1 else ""
                problems.append(f"{label}{key} {got[key] or 'none'}, expected {value}")
    if not result.paths:
        problems.append("no path traced")
    if problems:
        detail = f"{what}: " + "; ".join(problems)
        if result.paths:
            detail += f" ({path_summary(result.paths[0])})"
        return ExpectResult("trace", False, detail, exp.line, trace=result)
    return ExpectResult("trace", True, f"{what}: {path_summary(result.paths[0])}", exp.line,
                        trace=result)


def check_output(exp: OutputExpect, world: World, step: Step, default_node: str) -> ExpectResult:
    from netlab.backends.model import ModelBackend
    from netlab.commands.shell import Shell

    shell = Shell(ModelBackend(copy.deepcopy(world)), default_node=default_node)
    res = shell.run(exp.run, node=exp.node or step.node)
    text = res.output if res.ok else "\n".join(x for x in (res.output, res.error) if x)
    problems: list[str] = []
    if exp.contains is not None and exp.contains not in text:
        problems.append(f"does not contain {exp.contains!r}")
    if exp.not_contains is not None and exp.not_contains in text:
        problems.append(f"contains {exp.not_contains!r}")
    if exp.equals is not None and _lines(text) != _lines(exp.equals):
        problems.append(f"is not {exp.equals.strip()!r}")
    if problems:
        shown = text.strip() or "(nothing)"
        if len(shown) > 300:
            shown = shown[:300] + "…"
        return ExpectResult("output", False, f"`{exp.run}` " + ", ".join(problems)
                            + f"; it printed: {shown}", exp.line)
    wanted = exp.contains or exp.equals or exp.not_contains or ""
    verb = "contains" if exp.contains is not None else (
        "is" if exp.equals is not None else "does not contain")
    return ExpectResult("output", True, f"`{exp.run}` {verb} {wanted.strip()!r}", exp.line)


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]
