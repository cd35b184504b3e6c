"""`netlab snapshot [--netns NS]... | --host -o world.json`: a real kernel read into a World.

The file it writes is World.to_json(); `netlab trace --world world.json` traces on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from netlab.cli.common import examples, fail, handles_errors, print_json
from netlab.errors import NetlabError

EPILOG = examples(
    "sudo netlab snapshot --netns red -o red.json",
    "sudo netlab snapshot --netns red --netns blue --netns host-ns -o lab.json",
    "sudo netlab snapshot --host -o host.json",
    "netlab trace --world lab.json --from red --to 192.168.15.2",
)


def register(app: typer.Typer) -> None:
    app.command("snapshot", epilog=EPILOG)(snapshot_command)


@handles_errors
def snapshot_command(
    netns: list[str] = typer.Option(None, "--netns", metavar="NAME",
                                    help="A namespace to read (as in `ip netns list`); repeat it "
                                         "to read several into one World, veths joined."),
    host: bool = typer.Option(False, "--host", help="Read the machine's own namespace (read only)."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE",
                                help="Where to write the World (JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary as JSON."),
) -> None:
    """Read a real kernel into a World: links, addresses, routes, neighbours, sysctls,
    iptables (iptables-save) and listening sockets. Needs root.

    Each namespace read becomes a node named after it (the hostname with --host), whose
    root namespace is what was read. A veth whose peer is in a namespace not read is
    kept without a peer: to the model it is a cable with nothing at the other end.
    """
    from netlab.backends.snapshot import snapshot_host, snapshot_namespaces

    if host and netns:
        fail("give --netns NAME or --host, not both")
    if not host and not netns:
        fail("give --netns NAME (repeatable) or --host")
    world = snapshot_host() if host else snapshot_namespaces(list(dict.fromkeys(netns)))
    try:
        output.write_text(json.dumps(world.to_json(), indent=1) + "\n")
    except OSError as exc:
        fail(f"{output}: cannot write: {exc.strerror}")
    summary = {"output": str(output), "nodes": [
        {"node": ns.node, "links": len(ns.links), "routes": len(ns.routes),
         "rules": sum(len(c.rules) for t in ns.tables.values() for c in t.chains.values()),
         "listeners": len(ns.listeners)} for ns in world.namespaces.values()]}
    if as_json:
        print_json(summary)
        return
    for n in summary["nodes"]:
        typer.echo(f"{n['node']}: {n['links']} links, {n['routes']} routes, "
                   f"{n['rules']} iptables rules, {n['listeners']} listeners")
    typer.echo(f"wrote {output}")


def load_world_file(path: Path):
    """A World from a file `netlab snapshot` wrote (or World.to_json()); NetlabError if not."""
    from netlab.model import World

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise NetlabError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise NetlabError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    try:
        world = World.from_json(data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise NetlabError(f"{path}: not a netlab World (from netlab snapshot): {exc}") from None
    if not world.namespaces:
        raise NetlabError(f"{path}: the World has no namespaces")
    return world
