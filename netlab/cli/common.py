"""What every command shares: turning errors into one line and exit 2, JSON
output, finding a lab, a rich console made when it is needed.

Heavy modules (rich's renderers, the dataplane, the commands) are imported
inside the functions that use them, so `netlab --help` starts fast.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, NoReturn, TypeVar

import typer

from netlab.errors import NetlabError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit status 2."""
    first = " ".join(str(message).split("\n")[0].split()) if message else "error"
    typer.echo(f"netlab: {first}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def handles_errors(func: F) -> F:
    """Decorate a command: a NetlabError becomes `netlab: <file:line: message>` and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NetlabError as err:
            fail(str(err))

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def open_lab(ref: str):
    """LAB as the user typed it: a path, or a bundled lab's number or name."""
    from netlab.labs import find_lab, load_lab

    return load_lab(find_lab(ref))


def resolve_netns(world, name: str, default_node: str):
    ns = world.resolve(name, default_node=default_node)
    if ns is None:
        known = ", ".join(sorted(n.label for n in world.namespaces.values()
                                 if n.kind != "switch"))
        raise NetlabError(f"no namespace called '{name}' (there are: {known})")
    return ns


def examples(*lines: str) -> str:
    """An epilog of examples, one per line in typer's markdown help."""
    body = "\n\n".join(f"`$ {line}`" for line in lines)
    return f"**Examples**\n\n{body}"
