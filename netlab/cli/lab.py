"""`netlab lab list | show | run | check`."""

from __future__ import annotations

import sys
from typing import Any

import typer

from netlab.cli.common import (
    EXIT_BAD_INPUT, EXIT_FAILED, console, examples, fail, handles_errors, open_lab, print_json,
)
from netlab.cli.render import CROSS, TICK, esc, prompt

app = typer.Typer(
    name="lab",
    rich_markup_mode="markdown",
    help="Run the bundled labs or your own lab files, step by step.",
    no_args_is_help=True,
    epilog=examples("netlab lab list", "netlab lab show 02", "netlab lab run 02 --step",
                    "netlab lab check labs/02-veth.yaml --json"),
)

LAB_HELP = "A lab file, or a bundled lab by number or name: 01, 02-veth, veth."


# --- list ------------------------------------------------------------------------------
@app.command("list", epilog=examples("netlab lab list", "netlab lab list --json"))
@handles_errors
def list_labs(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the bundled labs in teaching order."""
    from netlab.errors import LabError
    from netlab.labs import bundled, labs_dir, load_lab

    rows: list[dict[str, Any]] = []
    for path in bundled():
        row: dict[str, Any] = {"id": path.stem, "path": str(path)}
        try:
            lab = load_lab(path)
            row.update(name=lab.name, title=lab.title, steps=len(lab.steps))
        except LabError as err:
            row.update(name=None, title=None, steps=None, error=str(err))
        rows.append(row)
    if as_json:
        folder = labs_dir()
        print_json({"dir": str(folder) if folder else None, "labs": rows})
        return
    if not rows:
        fail("no bundled labs found (looked in: labs/ next to the package, netlab/bundled_labs)")
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        if "error" in r:
            typer.echo(f"{r['id']:<{width}}  (cannot load: {r['error']})")
        else:
            typer.echo(f"{r['id']:<{width}}  {r['title']}  ({r['steps']} steps)")


# --- show ------------------------------------------------------------------------------
def lab_json(lab) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "name": lab.name, "title": lab.title, "path": lab.path, "description": lab.description,
        "nodes": lab.nodes,
        "lans": [{"name": l.name, "subnet": l.subnet, "line": l.line,
                  "members": [asdict(m) for m in l.members]} for l in lab.lans],
        "steps": [{"number": s.number, "title": s.title, "line": s.line, "node": s.node,
                   "explain": s.explain, "on_error": s.on_error,
                   "commands": [{"cmd": c.text, "line": c.line} for c in s.commands],
                   "expect": [expectation_json(e) for e in s.expect]}
                  for s in lab.steps],
    }


def expectation_json(exp) -> dict[str, Any]:
    from dataclasses import asdict

    data = {k: v for k, v in asdict(exp).items() if v is not None}
    if "source" in data:
        data["from"] = data.pop("source")
    return data


def expectation_text(exp) -> str:
    from netlab.labs.expect import probe_text

    if exp.kind == "output":
        checks = [f"{k.replace('_', ' ')} {v!r}" for k, v in
                  (("contains", exp.contains), ("equals", exp.equals),
                   ("not_contains", exp.not_contains)) if v is not None]
        return f"output of `{exp.run}` " + ", ".join(checks)
    what = probe_text(exp.source, exp.to, exp.proto, exp.port)
    if exp.kind == "reach":
        return f"reach {what}" + ("" if exp.want else ": not reached")
    wanted = [f"{k.replace('_', ' ')} {v}" for k, v in
              (("verdict", exp.verdict), ("outcome", exp.outcome),
               ("delivered to", exp.delivered_to), ("reply verdict", exp.reply_verdict)) if v]
    return f"trace {what}: " + ", ".join(wanted)


@app.command("show", epilog=examples("netlab lab show 02", "netlab lab show veth --json"))
@handles_errors
def show_lab(lab: str = typer.Argument(..., help=LAB_HELP, metavar="LAB"),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a lab: its machines, and each step with its explanation and commands."""
    loaded = open_lab(lab)
    if as_json:
        print_json(lab_json(loaded))
        return
    from rich.markdown import Markdown
    from rich.rule import Rule

    out = console()
    out.print(f"[bold]{esc(loaded.title)}[/bold]  ({esc(loaded.path)})")
    if loaded.description:
        out.print(Markdown(loaded.description))
    out.print(topology_text(loaded))
    for step in loaded.steps:
        out.print(Rule(f"Step {step.number}: {esc(step.title)}", align="left"))
        if step.explain:
            out.print(Markdown(step.explain))
        for cmd in step.commands:
            out.print(f"  {prompt(step.node, loaded.nodes)} {esc(cmd.text)}", style="cyan",
                      soft_wrap=True)
        for exp in step.expect:
            out.print(f"  expect: {esc(expectation_text(exp))}", soft_wrap=True)


def topology_text(lab) -> str:
    lines = [f"nodes: {', '.join(lab.nodes)}"]
    for lan in lab.lans:
        members = ", ".join(f"{m.node} {m.dev}" + (f" {m.address}" if m.address else "")
                            for m in lan.members)
        lines.append(f"LAN {lan.name}" + (f" ({lan.subnet})" if lan.subnet else "")
                     + f": {members}")
    return esc("\n".join(lines))


# --- run and check ------------------------------------------------------------------------
def check_backend(backend: str) -> None:
    if backend not in ("model", "real"):
        fail(f"unknown backend '{backend}' (model or real)")
    if backend == "real":
        from netlab.cli.real import need_root

        need_root()


def print_step(out, record, lab, total: int) -> None:
    from rich.markdown import Markdown
    from rich.rule import Rule

    step = record.step
    out.print()
    out.print(Rule(f"Step {step.number}/{total}: {esc(step.title)}", align="left"))
    if step.explain:
        out.print(Markdown(step.explain))
        out.print()
    for cmd in record.commands:
        # Command output is printed as the tool prints it: never wrapped or cropped.
        out.print(f"{prompt(step.node, lab.nodes)} {esc(cmd.cmd)}", style="bold cyan",
                  soft_wrap=True)
        if cmd.output:
            out.print(esc(cmd.output.rstrip("\n")), soft_wrap=True)
        if cmd.error and cmd.error.strip() not in cmd.output:
            out.print(esc(cmd.error.rstrip("\n")), style="red", soft_wrap=True)
    for exp in record.expect:
        mark = f"[green]{TICK}[/green]" if exp.ok else f"[red]{CROSS}[/red]"
        out.print(f"{mark} {esc(exp.detail)}", soft_wrap=True)
        if not exp.ok:
            out.print(f"  ({lab.where(exp.line)})", style="dim", soft_wrap=True)


def print_traces(out, record, world) -> None:
    """Each trace expectation of a step as the tree of its hops."""
    from netlab.viz.text import rich_text, trace_lines

    switches = [lan.name for lan in world.lans]
    for exp in record.expect:
        if exp.kind == "trace" and exp.trace is not None:
            out.print()
            out.print(rich_text(trace_lines(exp.trace, switches)), soft_wrap=True)


def summary(result) -> str:
    total = sum(len(s.expect) for s in result.steps)
    failed = len(result.failed)
    steps = len(result.steps)
    if failed:
        return f"{failed} of {total} expectations failed ({steps} steps run)"
    return f"{total} expectations passed ({steps} steps run)"


def finish(result, as_json: bool) -> None:
    """Exit 2 when a command stopped the run, 1 when an expectation failed."""
    if as_json:
        print_json(result.to_json())
    message = result.stop_message()
    if message is not None:
        fail(message)
    if result.failed:
        raise typer.Exit(EXIT_FAILED)


@app.command("run", epilog=examples("netlab lab run 02", "netlab lab run 02-veth --step",
                                    "netlab lab run my-lab.yaml --json"))
@handles_errors
def run_lab(lab: str = typer.Argument(..., help=LAB_HELP, metavar="LAB"),
            step: bool = typer.Option(False, "--step",
                                      help="Pause after each step (waits for Enter on a terminal)."),
            as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
            backend: str = typer.Option("model", "--backend", help="model (default) or real.",
                                        metavar="model|real"),
            html: str = typer.Option(None, "--html", metavar="DIR",
                                     help="Write a web page per step into DIR: the diagram "
                                          "and its traces, hop by hop."),
            no_color: bool = typer.Option(False, "--no-color",
                                          help="Plain text, no colour.")) -> None:
    """Run a lab: each step's explanation, its commands with their output, and its checks.

    With --step each trace expectation is shown as a tree of its hops, and the run
    pauses after each step.

    A command the kernel would refuse prints the kernel's error and stops the lab there
    (exit 2), unless the step says on_error: continue. A failed expectation gives exit
    1.
    """
    check_backend(backend)
    loaded = open_lab(lab)
    from netlab.labs import Runner

    if backend == "real":                # the same steps on this kernel, removed afterwards
        from netlab.labs.kernel import KernelRunner

        runner = KernelRunner(loaded)
    else:
        runner = Runner(loaded)
    try:
        _run_steps(runner, loaded, step, as_json, html, no_color)
    finally:
        if backend == "real":
            runner.close()


def _run_steps(runner, loaded, step: bool, as_json: bool, html: str | None = None,
               no_color: bool = False) -> None:
    from netlab.labs import RunResult

    records = []
    pages = None
    if html is not None:
        from netlab.cli.draw import StepPages

        pages = StepPages(html, loaded)
    out = None if as_json else console()
    if out is not None and no_color:
        out.no_color = True
    if out is not None:
        out.print(f"[bold]{esc(loaded.title)}[/bold]  ({esc(loaded.path)})")
        if loaded.description:
            from rich.markdown import Markdown

            out.print(Markdown(loaded.description))
        out.print(topology_text(loaded))
    pause = step and not as_json and sys.stdin.isatty()
    total = len(loaded.steps)
    for record in runner.steps():
        records.append(record)
        if pages is not None:
            pages.add(record, runner.world)
        if out is None:
            continue
        print_step(out, record, loaded, total)
        if step:
            print_traces(out, record, runner.world)
        if pause and record.step.number < total and record.stopped is None:
            out.print(f"[dim]Enter for step {record.step.number + 1}…[/dim]", end="")
            try:
                input()
            except EOFError:
                pass
    result = RunResult(lab=loaded, steps=records, backend=runner.backend)
    if pages is not None:
        pages.finish()
    if out is not None and result.stopped is None:
        out.print()
        out.print(summary(result), style="bold green" if result.ok else "bold red")
    finish(result, as_json)


@app.command("check", epilog=examples("netlab lab check 02", "netlab lab check my-lab.yaml --json"))
@handles_errors
def check_lab(lab: str = typer.Argument(..., help=LAB_HELP, metavar="LAB"),
              as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
              backend: str = typer.Option("model", "--backend", help="model (default) or real.",
                                          metavar="model|real")) -> None:
    """Check a lab quietly: exit 0 when every expectation holds, 1 when one fails, 2 on bad
    input.

    Prints one line per failed expectation, with its file and line.
    """
    check_backend(backend)
    loaded = open_lab(lab)
    from netlab.labs import run_lab as run

    if backend == "real":
        from netlab.labs import RunResult
        from netlab.labs.kernel import KernelRunner

        runner = KernelRunner(loaded)
        try:
            result = RunResult(lab=loaded, steps=list(runner.steps()), backend=runner.backend)
        finally:
            runner.close()
    else:
        result = run(loaded)
    if not as_json:
        for record, exp in result.failed:
            typer.echo(f"{loaded.where(exp.line)}: {CROSS} {exp.detail}")
        if result.stopped is None:
            typer.echo(f"{loaded.path}: {summary(result)}")
    finish(result, as_json)


__all__ = ["app", "EXIT_BAD_INPUT"]
