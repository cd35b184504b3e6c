"""`netlab real up | down | exec`: a lab on the machine's kernel, in namespaces netlab owns.

    netlab real up 02            # namespaces nl-veth-host, nl-veth-host-red, ...
    netlab real exec 02 red -- ip addr
    netlab real down 02          # removes exactly what /run/netlab/veth.json lists
    netlab real down --all

Each command line of a step is parsed as the model parses it (netlab.commands)
and its Ops are applied to the kernel first, then to a model World kept
alongside (which `ip route flush`-like commands read to plan their Ops). The
kernel decides: a refusal stops `up` with the kernel's words and the step's
file:line, and leaves a state that `down` cleans. Show commands and probes
(`ip addr`, `ping`, `nc -z`) are not run in this increment, and neither are
listeners (`nc -l`): they are counted and reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, List, Optional

import typer

from netlab.cli.common import EXIT_BAD_INPUT, examples, fail, handles_errors
from netlab.errors import CommandError, NetlabError

app = typer.Typer(
    name="real",
    rich_markup_mode="markdown",
    help="Run a lab on this machine's Linux kernel, in network namespaces netlab creates "
         "and removes (root only).",
    no_args_is_help=True,
    epilog=examples("sudo netlab real up 02", "sudo netlab real exec 02 red -- ip addr",
                    "sudo netlab real down 02", "sudo netlab real down --all"),
)

SKIPPED_KINDS = ("show", "probe")


# --- building a lab on the kernel (also used by the privileged tests) -----------------------

class KernelFirst:
    """The backend a Shell-like loop talks to in real mode: each Op goes to the kernel,
    then to the model, so the model's World stays what the kernel holds."""

    def __init__(self, model, linux):  # type: ignore[no-untyped-def]
        self.model = model
        self.linux = linux
        self.listeners_skipped = 0

    @property
    def world(self):  # type: ignore[no-untyped-def]
        return self.model.world

    def apply_all(self, ops) -> None:  # type: ignore[no-untyped-def]
        for op in ops:
            self.apply(op)

    def apply(self, op) -> None:  # type: ignore[no-untyped-def]
        from netlab import ops as O

        if isinstance(op, O.AddListener):
            self.listeners_skipped += 1          # real listeners: a later increment
        else:
            self.linux.apply(op)
        try:
            self.model.apply(op)
        except CommandError as exc:
            raise CommandError(f"the kernel accepted {type(op).__name__} but the model "
                               f"refused it: {exc.message}", status=2) from None


@dataclass
class UpReport:
    lab: str
    applied: int = 0
    skipped: list[str] = field(default_factory=list)      # show/probe command lines
    listeners_skipped: int = 0
    names: dict[str, str] = field(default_factory=dict)
    error: str | None = None                               # file:line: cmd: kernel's words

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": self.error is None, "applied": self.applied,
                "skipped": self.skipped, "listeners_skipped": self.listeners_skipped,
                "namespaces": self.names, "error": self.error}


def real_lab_name(lab) -> str:  # type: ignore[no-untyped-def]
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", lab.name).strip("-") or "lab"


def up_lab(lab, run_dir: str | None = None,  # type: ignore[no-untyped-def]
           name: str | None = None) -> UpReport:
    """Build the lab on the kernel. The journal stays on disk whatever happens, so
    `down` can clean; raises NetlabError when the lab is up already. ``name``: the
    prefix of its namespaces instead of the lab's own name (tests use their own)."""
    from netlab.backends.journal import RUN_DIR, Journal
    from netlab.backends.linux import LinuxBackend
    from netlab.backends.model import ModelBackend
    from netlab.commands.shell import script_commands
    from netlab.labs.build import topology_ops
    from netlab.model import World

    name = name or real_lab_name(lab)
    journal = Journal.open_new(name, run_dir or RUN_DIR)
    report = UpReport(lab=name)
    linux = LinuxBackend(name, journal)
    twin = KernelFirst(ModelBackend(World(name=lab.name)), linux)
    try:
        for op in topology_ops(lab):
            try:
                twin.apply(op)
            except NetlabError as exc:
                from netlab.commands.shell import one_line

                report.error = f"{lab.where(None)}: {type(op).__name__}: {one_line(exc)}"
                journal.set_state("failed")
                return report
        for step in lab.steps:
            for command in step.commands:
                where = lab.where(command.line)
                for _offset, text, stdin in script_commands(command.text):
                    try:
                        report.applied += _run_line(twin, text, step.node, stdin, report)
                    except NetlabError as exc:
                        from netlab.commands.shell import one_line

                        report.error = f"{where}: {text}: {one_line(exc)}"
                        if step.on_error != "continue":
                            journal.set_state("failed")
                            return report
        journal.set_state("up")
        return report
    finally:
        report.names = linux.names
        report.listeners_skipped = twin.listeners_skipped
        linux.close()


def _run_line(twin: KernelFirst, text: str, node: str, stdin: str | None,
              report: UpReport) -> int:
    from netlab.commands.shell import parse

    command = parse(text, node=node, stdin=stdin)
    if command.kind in SKIPPED_KINDS or (command.query is not None and not command.ops
                                         and command.plan is None):
        report.skipped.append(text)
        return 0
    world = twin.world
    if command.netns not in world.namespaces:
        from netlab.commands.base import netns_missing
        from netlab.model import split_key

        raise netns_missing(split_key(command.netns)[1])
    for check in command.checks:
        check(world)
    ops = list(command.ops)
    if command.plan is not None:
        ops += command.plan(world)
    twin.apply_all(ops)
    return len(ops)


def down_lab(name: str, run_dir: str | None = None) -> list[str]:
    """Remove what the lab's journal lists; the names removed. Missing: nothing to do."""
    from netlab.backends.journal import RUN_DIR, Journal

    journal = Journal.load(name, run_dir or RUN_DIR)
    if journal is None:
        return []
    return _remove(journal)


def down_all(run_dir: str | None = None) -> list[str]:
    from netlab.backends.journal import RUN_DIR, Journal

    removed: list[str] = []
    for journal in Journal.all(run_dir or RUN_DIR):
        removed += _remove(journal)
    return removed


def _remove(journal) -> list[str]:  # type: ignore[no-untyped-def]
    from netlab.backends.linux import remove_netns

    removed = []
    for entry in reversed(journal.entries):
        if entry.kind == "netns" and remove_netns(entry.name):
            removed.append(entry.name)
    journal.remove()
    return removed


# --- the commands ------------------------------------------------------------------------------

def _need_root() -> None:
    if os.geteuid() != 0:
        fail("real mode needs root (it creates network namespaces): run it with sudo")
    if shutil.which("ip") is None:
        fail("real mode needs `ip`, which is not on PATH (apt-get install iproute2)")


def _lab_name(ref: str) -> str:
    """LAB as typed: a bundled lab or a file (its name), or a name seen in a journal."""
    from netlab.cli.common import open_lab

    try:
        return real_lab_name(open_lab(ref))
    except NetlabError:
        return ref


@app.command("up", epilog=examples("sudo netlab real up 02", "sudo netlab real up 05 --json",
                                   "sudo netlab real up cluster.yaml --node node1 --lan-iface eth1"))
@handles_errors
def up(lab: str = typer.Argument(..., help="A lab file, or a bundled lab by number or name."),
       as_json: bool = typer.Option(False, "--json", help="Print JSON."),
       node: Optional[str] = typer.Option(None, "--node", help="Build only this node of the "
                                          "lab, and only its steps (one VM of several)."),
       lan_iface: List[str] = typer.Option([], "--lan-iface", metavar="[LAN=]IFACE",
                                           help="With --node: this machine's interface that "
                                           "carries the lab's LAN to the other nodes.")) -> None:
    """Build LAB in namespaces named `nl-LAB-NODE` (and `nl-LAB-NODE-NAME`) on this kernel."""
    from netlab.cli.common import open_lab, print_json

    _need_root()
    loaded = open_lab(lab)
    if _uses_iptables(loaded) and shutil.which("iptables-restore") is None:
        fail("this lab needs `iptables-restore`, which is not on PATH (apt-get install iptables)")
    if node is None and lan_iface:
        fail("--lan-iface maps a LAN for one node: give --node NAME too")
    if node is None:
        report = up_lab(loaded)
    else:
        from netlab.cli.real_node import up_node

        report = up_node(loaded, node, lan_iface)
    if as_json:
        print_json(report.to_json())
    if report.error is not None:
        if not as_json:
            typer.echo(f"netlab: {report.error}", err=True)
            again = f"{lab} --node {node}" if node else lab
            typer.echo(f"(the lab is partly up: `netlab real down {again}` removes it)", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if not as_json:
        typer.echo(f"{report.lab} is up: {len(report.names)} namespaces, "
                   f"{report.applied} changes")
        for key, real in report.names.items():
            typer.echo(f"  {key:<20} {real}")
        if report.skipped or report.listeners_skipped:
            typer.echo(f"not run yet in real mode: {len(report.skipped)} show/probe commands, "
                       f"{report.listeners_skipped} listeners")


def _uses_iptables(lab) -> bool:  # type: ignore[no-untyped-def]
    return any("iptables" in c.text for s in lab.steps for c in s.commands)


@app.command("down", epilog=examples("sudo netlab real down 02", "sudo netlab real down --all"))
@handles_errors
def down(lab: Optional[str] = typer.Argument(None, help="The lab to remove."),
         every: bool = typer.Option(False, "--all", help="Remove every lab in /run/netlab."),
         node: Optional[str] = typer.Option(None, "--node", help="Only this node's part "
                                            "(what `up LAB --node NAME` built).")) -> None:
    """Remove exactly the namespaces the lab's journal lists (also after a crash)."""
    _need_root()
    if every == (lab is not None):
        fail("name one lab, or give --all")
    if node is not None:
        from netlab.cli.real_node import node_journal_name

        if lab is None:
            fail("--node goes with LAB (netlab real down LAB --node NAME), not with --all")
        lab = node_journal_name(_lab_name(lab), node)
    removed = down_all() if every else down_lab(_lab_name(lab))  # type: ignore[arg-type]
    typer.echo(f"removed {len(removed)} namespaces" + (f": {', '.join(removed)}"
                                                       if removed else ""))


@app.command("exec", context_settings={"allow_interspersed_args": False},
             epilog=examples("sudo netlab real exec 02 red -- ip addr",
                             "sudo netlab real exec 03 host -- ip -br link"))
@handles_errors
def exec_(lab: str = typer.Argument(..., help="The lab (it must be up)."),
          netns: str = typer.Argument(..., help="red, node1/red, or node1 for a node."),
          cmd: List[str] = typer.Argument(..., help="The command and its arguments, after --."),
          node: Optional[str] = typer.Option(None, "--node", help="The lab was brought up "
                                             "with `--node NAME`.")) -> None:
    """Run CMD in one of the lab's namespaces (an argument list, no shell)."""
    from netlab.backends.journal import Journal
    from netlab.backends.linux import netns_exists

    _need_root()
    name = _lab_name(lab)
    if node is not None:
        from netlab.cli.real_node import node_journal_name

        name = node_journal_name(name, node)
    journal = Journal.load(name)
    if journal is None:
        fail(f"lab {name} is not up (netlab real up {lab})")
    real = _resolve_real(name, netns, journal.entries)
    if not netns_exists(real):
        fail(f"namespace {real} of lab {name} does not exist")
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        fail("give the command after --: netlab real exec LAB NS -- CMD ...")
    done = subprocess.run(["ip", "netns", "exec", real, *cmd], check=False)
    raise typer.Exit(done.returncode)


def _resolve_real(lab: str, netns: str, entries) -> str:  # type: ignore[no-untyped-def]
    """A namespace as a learner names it (red, node1/red, node1) to its real name."""
    keys = {e.key: e.name for e in entries if e.key}
    if "/" in netns:
        node, name = netns.split("/", 1)
        wanted = [f"{node}/{name or 'root'}"]
    else:
        wanted = [f"{netns}/root"] + sorted(k for k in keys if k.split("/", 1)[1] == netns)
    found = [k for k in wanted if k in keys]
    if len(found) > 1 and found[0] != f"{netns}/root":
        raise NetlabError(f"'{netns}' is ambiguous in lab {lab}: say one of "
                          f"{', '.join(found)}")
    if not found:
        labels = sorted(k[:-5] if k.endswith("/root") else k for k in keys)
        raise NetlabError(f"lab {lab} has no namespace called '{netns}' (there are: "
                          f"{', '.join(labels)})")
    return keys[found[0]]
