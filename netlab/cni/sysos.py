"""The little of ``os`` the plugins need that the builtin ``posix`` module lacks.

``import os`` costs ~2 ms at a plugin's start-up (it loads _collections_abc,
stat, posixpath and genericpath), a tenth of a whole ADD; ``posix`` is loaded
with the interpreter. The plugins' modules call ``posix`` directly and take
these few helpers from here.
"""


import posix
from _stat import S_ISDIR, S_ISREG


def environ() -> dict[str, str]:
    """The environment as str, as os.environ gives it."""
    return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in posix.environ.items()}


def join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name if directory else name


def _mode(path: str) -> int | None:
    try:
        return posix.stat(path).st_mode
    except OSError:
        return None


def exists(path: str) -> bool:
    return _mode(path) is not None


def isfile(path: str) -> bool:
    mode = _mode(path)
    return mode is not None and S_ISREG(mode)


def isdir(path: str) -> bool:
    mode = _mode(path)
    return mode is not None and S_ISDIR(mode)


def makedirs(path: str, mode: int = 0o777) -> None:
    """mkdir -p (os.makedirs with exist_ok=True)."""
    if isdir(path):
        return
    parent = path.rstrip("/").rsplit("/", 1)[0]
    if parent and parent != path:
        makedirs(parent, mode)
    try:
        posix.mkdir(path, mode)
    except FileExistsError:
        if not isdir(path):
            raise
