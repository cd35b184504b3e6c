"""`netlab real up | down | exec | verify`: a lab on the machine's kernel, in namespaces
netlab owns.

    netlab real up 02            # namespaces nl-veth-host, nl-veth-host-red, ...
    netlab real exec 02 red -- ip addr
    netlab real down 02          # removes exactly what /run/netlab/veth.json lists
    netlab real down --all
    netlab real verify 06        # model and kernel, probe by probe; exit 1 on a difference

Each command line of a step is parsed as the model parses it (netlab.commands)
and its Ops are applied to the kernel first (netlab.labs.kernel). The kernel
decides: a refusal stops `up` with the kernel's words and the step's
file:line, and leaves a state that `down` cleans. `nc -l` starts a real
listener; the lab's ping / curl / nc -z run as the real tools, and so do its show
commands (ip route, iptables -S, conntrack -L, …; `ip netns` keeps the model's view). The journal directory is /run/netlab, or $NETLAB_RUN_DIR.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List, Optional

import typer

from netlab.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, examples, fail, handles_errors
from netlab.errors import NetlabError

app = typer.Typer(
    name="real",
    rich_markup_mode="markdown",
    help="Run a lab on this machine's Linux kernel, in network namespaces netlab creates "
         "and removes (root only).",
    no_args_is_help=True,
    epilog=examples("sudo netlab real up 02", "sudo netlab real exec 02 red -- ip addr",
                    "sudo netlab real down 02", "sudo netlab real down --all",
                    "sudo netlab real verify 06"),
)

# Building, probing and removing a lab on the kernel live in netlab.labs.kernel (imported
# when used: `netlab --help` must not load the labs); these names stay importable here.

def up_lab(lab, run_dir: str | None = None, name: str | None = None,  # type: ignore[no-untyped-def]
           host: bool = False):
    from netlab.labs.kernel import up_lab as up_

    return up_(lab, run_dir, name, host=host)


def down_lab(name: str, run_dir: str | None = None, undone: list[int] | None = None) -> list[str]:
    from netlab.labs.kernel import down_lab as down_

    return down_(name, run_dir, undone)


def down_all(run_dir: str | None = None, undone: list[int] | None = None) -> list[str]:
    from netlab.labs.kernel import down_all as down_all_

    return down_all_(run_dir, undone)


def journal_dir(given: str | None = None) -> str:
    from netlab.labs.kernel import journal_dir as journal_dir_

    return journal_dir_(given)


def real_lab_name(lab) -> str:  # type: ignore[no-untyped-def]
    from netlab.labs.kernel import real_lab_name as name_

    return name_(lab)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in ("KernelFirst", "UpReport"):
        from netlab.labs import kernel

        return getattr(kernel, name)
    raise AttributeError(name)


# --- the commands ------------------------------------------------------------------------------

def need_root() -> None:
    if os.geteuid() != 0:
        fail("real mode needs root (run with sudo)")
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
                                   "sudo netlab real up cluster.yaml --node node1 --lan-iface eth1",
                                   "sudo netlab real up 03 --host --yes-modify-host"))
@handles_errors
def up(lab: str = typer.Argument(..., help="A lab file, or a bundled lab by number or name."),
       as_json: bool = typer.Option(False, "--json", help="Print JSON."),
       node: Optional[str] = typer.Option(None, "--node", help="Build only this node of the "
                                          "lab, and only its steps (one VM of several)."),
       lan_iface: List[str] = typer.Option([], "--lan-iface", metavar="[LAN=]IFACE",
                                           help="With --node: this machine's interface that "
                                           "carries the lab's LAN to the other nodes."),
       host: bool = typer.Option(False, "--host", help="The lab's first node (the first of "
                                 "`nodes:`, else `host`) is the network namespace netlab runs "
                                 "in, normally this machine's own, instead of a new one. Each "
                                 "change is journalled with what undoes it; what `down` could "
                                 "not undo exactly is refused. Needs --yes-modify-host."),
       confirmed: bool = typer.Option(False, "--yes-modify-host",
                                      help="Confirm --host: the lab changes this machine's "
                                      "links, addresses, routes and rules.")) -> None:
    """Build LAB in namespaces named `nl-LAB-NODE` (and `nl-LAB-NODE-NAME`) on this kernel
    (with --host, the first node is this machine's own namespace)."""
    from netlab.cli.common import open_lab, print_json

    if host and not confirmed:
        fail("--host changes this machine's own network namespace (links, addresses, routes, "
             "iptables): add --yes-modify-host to confirm")
    if confirmed and not host:
        fail("--yes-modify-host confirms --host, which was not given")
    if host and (node is not None or lan_iface):
        fail("--host builds the whole lab with its first node here; it does not go with "
             "--node / --lan-iface")
    need_root()
    loaded = open_lab(lab)
    if host:
        _check_host_mode(loaded)
    if _uses_iptables(loaded) and shutil.which("iptables-restore") is None:
        fail("this lab needs `iptables-restore`, which is not on PATH (apt-get install iptables)")
    if node is None and lan_iface:
        fail("--lan-iface maps a LAN for one node: give --node NAME too")
    if node is None:
        report = up_lab(loaded, host=host)
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
        from netlab.backends.linux import HOST_REAL

        for key, real in report.names.items():
            typer.echo(f"  {key:<20} {'this namespace (--host)' if real == HOST_REAL else real}")
        if report.listeners or report.probes_run:
            typer.echo(f"{report.listeners} listeners running, {report.probes_run} probe "
                       f"commands run")
        if getattr(report, "shows_run", 0):
            typer.echo(f"{report.shows_run} show commands run on the kernel")
        if report.skipped:
            typer.echo(f"not run in real mode: {len(report.skipped)} show commands")


def _check_host_mode(lab) -> None:  # type: ignore[no-untyped-def]
    """What --host cannot do, said before anything is made."""
    if lab.cluster is not None:
        fail("--host runs plain labs; a cluster lab changes too much of a node to be undone "
             "exactly: use `netlab real up LAB` (or --node NAME in a VM)")
    private = _netns_dir_is_private()
    makes_netns = len(lab.nodes) > 1 or bool(lab.lans) or \
        any("netns add" in c.text for s in lab.steps for c in s.commands)
    if private and makes_netns:
        fail("--host: netlab runs in a mount namespace of its own (`ip netns exec`?), so the "
             "namespaces the lab makes would vanish with it; enter the namespace with "
             "`nsenter --net=/run/netns/NAME` instead")


def _netns_dir_is_private() -> bool:
    """/run/netns here is a slave of another mount namespace's (`ip netns exec` makes it
    one): namespaces bind-mounted here would not be seen from there."""
    private = False
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:                            # the last mount there is the one seen
                fields = line.split()
                if len(fields) > 6 and fields[4] == "/run/netns":
                    tags = fields[6:fields.index("-")] if "-" in fields else []
                    private = any(t.startswith("master:") for t in tags)
    except OSError:
        pass
    return private


def _uses_iptables(lab) -> bool:  # type: ignore[no-untyped-def]
    return any("iptables" in c.text for s in lab.steps for c in s.commands)


@app.command("down", epilog=examples("sudo netlab real down 02", "sudo netlab real down --all"))
@handles_errors
def down(lab: Optional[str] = typer.Argument(None, help="The lab to remove."),
         every: bool = typer.Option(False, "--all", help="Remove every lab in /run/netlab "
                                    "(or $NETLAB_RUN_DIR)."),
         node: Optional[str] = typer.Option(None, "--node", help="Only this node's part "
                                            "(what `up LAB --node NAME` built).")) -> None:
    """Remove exactly the namespaces the lab's journal lists (also after a crash)."""
    need_root()
    if every == (lab is not None):
        fail("name one lab, or give --all")
    if node is not None:
        from netlab.cli.real_node import node_journal_name

        if lab is None:
            fail("--node goes with LAB (netlab real down LAB --node NAME), not with --all")
        lab = node_journal_name(_lab_name(lab), node)
    undone: list[int] = []
    removed = down_all(undone=undone) if every else \
        down_lab(_lab_name(lab), undone=undone)  # type: ignore[arg-type]
    typer.echo(f"removed {len(removed)} namespaces" + (f": {', '.join(removed)}"
                                                       if removed else ""))
    if any(undone):
        typer.echo(f"undid {sum(undone)} changes to the host's namespace")


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

    need_root()
    name = _lab_name(lab)
    if node is not None:
        from netlab.cli.real_node import node_journal_name

        name = node_journal_name(name, node)
    journal = Journal.load(name, journal_dir())
    if journal is None:
        fail(f"lab {name} is not up (netlab real up {lab})")
    from netlab.backends.linux import HOST_REAL

    real = _resolve_real(name, netns, journal.entries)
    if real != HOST_REAL and not netns_exists(real):
        fail(f"namespace {real} of lab {name} does not exist")
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        fail("give the command after --: netlab real exec LAB NS -- CMD ...")
    if real == HOST_REAL:                   # --host: the node is the namespace up ran in
        from netlab.backends.hostmode import host_entry, this_netns

        inode = ((host_entry(journal) or journal.entries[0]).data or {}).get("inode")
        if inode != this_netns():
            fail(f"{netns} of lab {name} is the namespace `up --host` ran in (net:[{inode}]), "
                 f"not this one: run `real exec` from there")
        try:
            done = subprocess.run(cmd, check=False)
        except FileNotFoundError:
            fail(f"{cmd[0]}: command not found")
        raise typer.Exit(done.returncode)
    done = subprocess.run(["ip", "netns", "exec", real, *cmd], check=False)
    raise typer.Exit(done.returncode)


def _resolve_real(lab: str, netns: str, entries) -> str:  # type: ignore[no-untyped-def]
    """A namespace as a learner names it (red, node1/red, node1) to its real name."""
    keys = {e.key: (e.data or {}).get("path", e.name) if e.kind == "host" else e.name
            for e in entries if e.key}
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


@app.command("verify", epilog=examples("sudo netlab real verify 02",
                                       "sudo netlab real verify 06 --json"))
@handles_errors
def verify(lab: str = typer.Argument(..., help="A lab file, or a bundled lab by number or name."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON."),
           cap: int = typer.Option(200, "--cap", min=0,
                                   help="At most this many automatic probes."),
           host: bool = typer.Option(False, "--host", hidden=True)) -> None:
    """Run LAB on the model and on this kernel; compare every reach/trace expectation and
    an automatic probe set (every namespace to every address, ICMP and the listener
    ports). Exit 1 on any difference. The namespaces are removed afterwards."""
    from netlab.cli.common import open_lab, print_json
    from netlab.labs.verify import verify_lab

    if host:
        fail("verify builds the lab in namespaces of its own and removes them; --host is for "
             "`netlab real up` (then probe it with `netlab real exec`)")
    need_root()
    loaded = open_lab(lab)
    if _uses_iptables(loaded) and shutil.which("iptables-restore") is None:
        fail("this lab needs `iptables-restore`, which is not on PATH (apt-get install iptables)")
    result = verify_lab(loaded, cap=cap)
    if as_json:
        print_json(result.to_json())
    else:
        _print_verify(result)
    raise typer.Exit(EXIT_FAILED if result.differences else 0)


def _cell(view: dict, proto: str) -> str:
    text = str(view.get("outcome"))
    if view.get("outcomes"):
        text += " (" + "|".join(view["outcomes"]) + ")"
    if view.get("delivered_to") and (proto != "icmp" or view.get("src")):
        text += f" at {view['delivered_to']}"
    if view.get("src"):
        text += f" {view['src']}→{view.get('dst')}"
    if view.get("ends"):
        others = len(view["ends"]) - 1
        text += f" (or {others} other endpoint{'s' if others > 1 else ''})"
    return text


def _print_verify(result) -> None:  # type: ignore[no-untyped-def]
    import sys

    header = ("", "from", "to", "probe", "where", "model", "kernel")
    rows = []
    for row in result.rows:
        probe = row.proto if row.port is None else f"{row.proto}/{row.port}"
        rows.append(("" if row.same else "DIFF", row.source, row.to, probe, row.origin,
                     _cell(row.model, row.proto), _cell(row.kernel, row.proto)))
    if sys.stdout.isatty():
        from rich.table import Table

        from netlab.cli.common import console

        table = Table(title=f"{result.lab}: model and kernel", show_lines=False)
        for name in header:
            table.add_column(name or " ", style="bold red" if not name else None)
        for r in rows:
            table.add_row(*r)
        console().print(table)
    else:
        widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            typer.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    for problem in result.problems:
        typer.echo(f"DIFF {problem}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    diffs = result.differences
    typer.echo(f"{result.lab}: {len(result.rows)} probes, "
               + (f"{diffs} differences" if diffs else "model and kernel agree"))
