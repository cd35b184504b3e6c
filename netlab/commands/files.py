"""``ls`` and ``cat`` of a node's CNI files: the configs in /etc/cni/net.d (a lab's
``files:``) and host-local's data dir under /var/lib/cni.

The World keeps a node's files as ``{path: content}`` (World.files). Only the CNI
directories are shown this way; /proc/sys is still sysctl's (``cat /proc/sys/...``)
and other files stay unmodelled (``cat /etc/hosts`` is refused as before).
"""

from __future__ import annotations

from netlab.commands import sysctl
from netlab.commands.base import Command, Ctx, Output, unsupported

CNI_DIRS = ("/etc/cni", "/var/lib/cni", "/opt/cni", "/run/cni")


def _cni_path(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in CNI_DIRS)


def _files(world, node: str) -> dict[str, str]:
    return world.files.get(node, {})


def parse_cat(words: list[str], ctx: Ctx) -> Command:
    paths = [w for w in words if not w.startswith("-")]
    if not paths or not all(_cni_path(p) for p in paths):
        return sysctl.parse_cat(words, ctx)

    def query(world) -> Output:
        files = _files(world, ctx.node)
        text, errors = "", []
        for p in paths:
            if p in files:
                text += files[p]
            elif any(k.startswith(p.rstrip("/") + "/") for k in files):
                errors.append(f"cat: {p}: Is a directory")
            else:
                errors.append(f"cat: {p}: No such file or directory")
        return Output(text=text, status=1 if errors else 0, error=errors[0] if errors else None)
    return ctx.command(query=query, kind="show")


def parse_ls(words: list[str], ctx: Ctx) -> Command:
    flags = "".join(w[1:] for w in words if w.startswith("-"))
    paths = [w for w in words if not w.startswith("-")]
    if not paths or not all(_cni_path(p) for p in paths):
        raise unsupported("ls" if not paths else f"ls {paths[0]}")

    def query(world) -> Output:
        files = _files(world, ctx.node)
        out, errors = [], []
        for p in paths:
            if p in files:
                out.append(p)
                continue
            prefix = p.rstrip("/") + "/"
            names = sorted({k[len(prefix):].split("/", 1)[0] for k in files if k.startswith(prefix)})
            if not names:
                errors.append(f"ls: cannot access '{p}': No such file or directory")
                continue
            if len(paths) > 1:
                out.append(f"{p}:")
            if "a" not in flags:
                names = [n for n in names if not n.startswith(".")]
            out.extend(names)
        text = "".join(line + "\n" for line in out)
        return Output(text=text, status=2 if errors else 0, error=errors[0] if errors else None)
    return ctx.command(query=query, kind="show")
