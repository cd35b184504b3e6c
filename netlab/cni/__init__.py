"""CNI: the protocol (skel, types), host-local and bridge, on a kernel or a World.

Kept light: every plugin start-up imports this package. ``invoke`` (the
in-process API for the Kubernetes layer) loads the World machinery only
when called. ``preload`` is the plugins' fast import path.
"""

import marshal
import posix
import sys

from netlab.cni.errors import CniError

# Every module a kernel ADD/DEL runs, in the order they must run.
PLUGIN_MODULES = ("fastjson", "types", "skel", "ip", "sysos", "store", "hostlocal",
                  "bridge", "delegate", "netlink", "kernel")
HOSTLOCAL_MODULES = PLUGIN_MODULES[:7]
# What the bundle holds: the two packages and the errors they import first, then those.
BUNDLED = ("netlab", "netlab.errors", "netlab.cni.errors", "netlab.cni") + tuple(
    "netlab.cni." + name for name in PLUGIN_MODULES)
MAGIC = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
BUNDLE = f"{__path__[0]}/__pycache__/plugins.{sys.implementation.cache_tag}.bundle"


ROOT = __path__[0][:-len("/netlab/cni")]      # the checkout (or site-packages) holding netlab


def _source(name: str) -> str:
    """The source of module ``name``, relative to ROOT."""
    return "/" + name.replace(".", "/") + ("/__init__.py" if name in ("netlab", "netlab.cni") else ".py")


def _compile(path: str):
    """As under ``from __future__ import annotations``: annotations stay strings (no
    ``IP | None`` built for every def at start-up, ~0.1 ms in all); nothing reads them."""
    import __future__
    with open(path, "rb") as f:
        return compile(f.read(), path, "exec", flags=__future__.annotations.compiler_flag,
                       dont_inherit=True)


def build_bundle() -> tuple:
    """``(loader code, tables)`` as netlab/cni/loader.py describes, from the sources now."""
    table = []
    for name in BUNDLED:
        path = _source(name)
        st = posix.stat(ROOT + path)
        table.append((name, path, st.st_mtime_ns, st.st_size, _compile(ROOT + path)))
    hostlocal = len(BUNDLED) - len(PLUGIN_MODULES) + len(HOSTLOCAL_MODULES)
    return (_compile(f"{__path__[0]}/loader.py"),
            {"bridge": tuple(table), "host-local": tuple(table[:hostlocal])})


def _write(bundle: tuple) -> None:
    tmp = f"{BUNDLE}.{posix.getpid()}"
    try:
        try:
            posix.mkdir(BUNDLE.rsplit("/", 1)[0], 0o755)
        except FileExistsError:
            pass
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o644)
        try:
            posix.write(fd, MAGIC + marshal.dumps(bundle))
        finally:
            posix.close(fd)
        posix.rename(tmp, BUNDLE)
    except OSError:               # a read-only checkout: the plain imports still work
        try:
            posix.unlink(tmp)
        except OSError:
            pass


def read_bundle() -> tuple | None:
    """The bundle on disk, or None when it is missing or damaged (not checked for staleness)."""
    try:
        with open(BUNDLE, "rb") as f:
            data = f.read()
        if data[:len(MAGIC)] == MAGIC:
            loader, tables = marshal.loads(memoryview(data)[len(MAGIC):])
            return loader, tables
    except (OSError, ValueError, EOFError, TypeError):
        pass
    return None


def preload(names) -> None:
    """Import ``names`` (from PLUGIN_MODULES) from the bundle.

    A plain import of a small module costs ~130 us of finding, stat-ing and
    reading its .pyc, most of the module's cost on a plugin's start-up path; the
    bundle is one file for all of them (ADD runs eleven). The plugin scripts load
    it themselves before importing anything (then this finds everything imported);
    this is their fall-back: a stale, damaged or missing bundle is rebuilt (written
    atomically, skipped when the package directory is read-only or under -B)."""
    wanted = {f"{__name__}.{name}" for name in names}
    if all(name in sys.modules for name in wanted):
        return
    from netlab.cni.loader import install
    bundle = read_bundle()
    try:
        if bundle is not None and install(bundle[1]["bridge"], ROOT, wanted):
            return
    except OSError:               # a source gone: rebuilding says which
        pass
    bundle = build_bundle()
    if not sys.dont_write_bytecode:      # python -B: as for .pyc files
        _write(bundle)
    install(bundle[1]["bridge"], ROOT, wanted)


def invoke(backend, command: str, netconf: dict, *, container_id: str, netns: str, ifname: str,
           node: str, cni_args: str = "", data_dir_state: dict | None = None) -> dict:
    """Run one CNI command (ADD, DEL, CHECK, STATUS, GC, VERSION) in-process on a
    ModelBackend, as a runtime would run the plugin ``netconf["type"]`` (bridge or
    host-local). Returns the result dict (ADD; ``{}`` otherwise); raises
    CniError(code, msg, details). Details: netlab.cni.virtual.invoke."""
    from netlab.cni.virtual import invoke as _invoke
    return _invoke(backend, command, netconf, container_id=container_id, netns=netns,
                   ifname=ifname, node=node, cni_args=cni_args, data_dir_state=data_dir_state)


def run_plugin(name: str) -> None:
    """The whole process of the plugin scripts in cni_plugins/ (``bridge`` or
    ``host-local``): run by the interpreter with -S (no site) and -E (no PYTHON*
    variables), needing only the standard library; never returns."""
    import gc
    gc.disable()            # a short-lived process: no cycles worth collecting, ~1 ms saved
    if posix.environ.get(b"NETLAB_WORLD"):
        from netlab.cni import skel, sysos
        from netlab.cni.virtual import plugin_handlers
        _finish(skel.main(name, plugin_handlers(sysos.environ(), name)))
    if name == "bridge":
        preload(PLUGIN_MODULES)
        from netlab.cni import bridge, delegate, kernel
        handlers = bridge.handlers(kernel.KernelHost, delegate.Ipam)
    else:
        preload(HOSTLOCAL_MODULES)
        from netlab.cni import hostlocal
        handlers = hostlocal.handlers()
    from netlab.cni import skel
    _finish(skel.main(name, handlers))


def _finish(status: int) -> None:
    """Exit without the interpreter's teardown (~2 ms): output is flushed, nothing else
    needs finalising."""
    sys.stdout.flush()
    sys.stderr.flush()
    posix._exit(status)


__all__ = ["CniError", "invoke"]
