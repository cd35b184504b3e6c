"""The little of ``os`` the plugins need that the builtin ``posix`` module lacks.

``import os`` costs ~2 ms at a plugin's start-up (it loads _collections_abc,
stat, posixpath and genericpath), a tenth of a whole ADD; ``posix`` is loaded
with the interpreter. The plugins' modules call ``posix`` directly and take
these few helpers from here.
"""


import posix
import sys
from _stat import S_ISDIR, S_ISREG

_libc: dict = {}


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


def libc(name: str):
    """libc's ``name(int, ...) -> int`` through _ctypes alone (the ctypes package costs
    ~4 ms to import, _ctypes ~0.5 ms); the callable raises OSError when it returns -1."""
    if name not in _libc:
        if not _libc:
            import _ctypes

            class c_int(_ctypes._SimpleCData):
                _type_ = "i"

            class Libc:
                _handle = _ctypes.dlopen(None, posix.RTLD_NOW)

            class Func(_ctypes.CFuncPtr):
                _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
                _restype_ = c_int

            _libc[None] = (Func, Libc(), _ctypes.get_errno)
        func_type, lib, get_errno = _libc[None]
        func = func_type((name, lib))

        def call(*args: int) -> int:
            got = func(*args)
            if got == -1:
                err = get_errno()
                raise OSError(err, posix.strerror(err))
            return got

        _libc[name] = call
    return _libc[name]


def flock_exclusive(fd: int) -> None:
    """flock(fd, LOCK_EX), as the reference host-local locks its data dir. Through libc
    when _ctypes is loaded already (the bridge plugin has it for setns), else fcntl
    (~0.3 ms to import)."""
    if "_ctypes" in sys.modules:
        while True:
            try:
                libc("flock")(fd, 2)     # LOCK_EX
                return
            except InterruptedError:     # a signal while waiting: wait on (PEP 475)
                continue
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_EX)
