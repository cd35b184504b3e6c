"""Run a program with some stdin and read its stdout: posix_spawn and pipes.

``subprocess`` costs ~10 ms to import (selectors, signal, threading); the
plugins run iptables-save/-restore and IPAM delegates with this instead.
Payloads are small (an iptables-restore fragment, a netconf), written in
full before the output is read.
"""

from __future__ import annotations

import posix


def run(argv: list[str], stdin: bytes = b"", env: dict | None = None,
        stderr_to_parent: bool = False) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of ``argv``; stderr is passed through with
    ``stderr_to_parent`` (a delegate's logs go to the caller's stderr, as libcni does)."""
    path = argv[0] if "/" in argv[0] else which(argv[0])
    in_r, in_w = posix.pipe()
    out_r, out_w = posix.pipe()
    err_r, err_w = (None, None) if stderr_to_parent else posix.pipe()
    actions = [(posix.POSIX_SPAWN_DUP2, in_r, 0), (posix.POSIX_SPAWN_DUP2, out_w, 1)]
    if err_w is not None:
        actions.append((posix.POSIX_SPAWN_DUP2, err_w, 2))
    try:
        pid = posix.posix_spawn(path, argv, posix.environ if env is None else env, file_actions=actions)
    finally:
        for fd in (in_r, out_w, err_w):
            if fd is not None:
                posix.close(fd)
    try:
        if stdin:
            posix.write(in_w, stdin)
    except BrokenPipeError:
        pass
    finally:
        posix.close(in_w)
    out = _read_all(out_r)
    err = _read_all(err_r) if err_r is not None else b""
    _, status = posix.waitpid(pid, 0)
    return posix.waitstatus_to_exitcode(status), out, err


def which(name: str) -> str:
    path = posix.environ.get(b"PATH", b"").decode() or "/usr/sbin:/usr/bin:/sbin:/bin"
    for d in path.split(":"):
        full = (d.rstrip("/") + "/" if d else "") + name
        if posix.access(full, posix.X_OK):
            return full
    raise FileNotFoundError(2, f'exec: "{name}": executable file not found in $PATH')


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while True:
            chunk = posix.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        posix.close(fd)
