"""The `netlab` console script.

Each command group lives in its own module and registers itself here; the
modules import the model, the dataplane and rich only when a command runs,
so `netlab --help` stays fast.
"""

from __future__ import annotations

import typer

from netlab import __version__
from netlab.cli import cluster, draw, iptables, lab, real, show, snapshot, trace
from netlab.cli.common import examples

app = typer.Typer(
    name="netlab",
    help="Emulate the Linux networking that Kubernetes is built from — namespaces, veth "
         "pairs, bridges, routes — and trace packets through it hop by hop.",
    epilog=examples("netlab lab list", "netlab lab run 02 --step",
                    "netlab trace 02 --from red --to 192.168.15.2",
                    "netlab show 03 --ns red"),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(lab.app, name="lab")
app.add_typer(real.app, name="real")
app.add_typer(cluster.app, name="cluster")
trace.register(app)
show.register(app)
iptables.register(app)
snapshot.register(app)
draw.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"netlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Exit status: 0 ok, 1 a check or expectation failed, 2 bad input."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
