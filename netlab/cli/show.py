"""`netlab show LAB`: every namespace's `ip addr` and `ip route` after the lab's steps."""

from __future__ import annotations

import typer

from netlab.cli.common import examples, fail, handles_errors, open_lab, print_json, resolve_netns
from netlab.cli.lab import LAB_HELP

EPILOG = examples("netlab show 03", "netlab show 03 --ns red", "netlab show 04 --after-step 2 --json")


def register(app: typer.Typer) -> None:
    app.command("show", epilog=EPILOG)(show_command)


def commands_for(ns) -> tuple[str, str, str]:
    """(node to run on, ip addr command, ip route command) as a person would type them."""
    if ns.name == "root":
        return ns.node, "ip addr", "ip route"
    return ns.node, f"ip -n {ns.name} addr", f"ip -n {ns.name} route"


@handles_errors
def show_command(
    lab: str = typer.Argument(..., help=LAB_HELP, metavar="LAB"),
    netns: str = typer.Option(None, "--ns", metavar="NS",
                              help="Only this namespace: red, node1/red, node1."),
    after_step: int = typer.Option(None, "--after-step", metavar="N", min=0,
                                   help="The state after step N (default: the last)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show each namespace's addresses and routes (`ip addr`, `ip route`) after the lab's
    steps.

    The LANs' switches are left out unless named with --ns (a switch is LAN/root).
    """
    from netlab.commands.shell import Shell
    from netlab.labs import run_lab

    loaded = open_lab(lab)
    if after_step is not None and after_step > len(loaded.steps):
        fail(f"{loaded.path}: --after-step {after_step}: the lab has {len(loaded.steps)} steps")
    result = run_lab(loaded, until=after_step, check_expect=False, keep_going=True)
    world = result.world
    if netns is not None:
        chosen = [resolve_netns(world, netns, loaded.nodes[0])]
    else:
        chosen = [ns for ns in world.namespaces.values() if ns.kind != "switch"]
    shell = Shell(result.backend, default_node=loaded.nodes[0])
    rows = []
    for ns in chosen:
        node, addr_cmd, route_cmd = commands_for(ns)
        if ns.kind == "switch":
            addr_cmd, route_cmd = "ip addr", "ip route"
        outputs = []
        for cmd in (addr_cmd, route_cmd):
            res = shell.run(cmd, node=node)
            outputs.append(res.output if res.ok else (res.error or ""))
        rows.append({"name": ns.label, "node": ns.node, "netns": ns.name, "kind": ns.kind,
                     "addr": outputs[0], "route": outputs[1],
                     "commands": [addr_cmd, route_cmd]})
    if as_json:
        print_json({"lab": loaded.name, "namespaces": rows})
        return
    for i, row in enumerate(rows):
        if i:
            typer.echo("")
        typer.echo(f"== {row['name']} ({row['kind']})")
        for cmd, text in zip(row["commands"], (row["addr"], row["route"])):
            typer.echo(f"$ {cmd}")
            if text.strip():
                typer.echo(text.rstrip("\n"))
