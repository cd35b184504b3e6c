"""CNI: the protocol (skel, types), host-local and bridge, on a kernel or a World.

Kept light: every plugin start-up imports this package. ``invoke`` (the
in-process API for the Kubernetes layer) loads the World machinery only
when called. ``preload`` is the plugins' fast import path.
"""

import marshal
import posix
import sys

from netlab.cni.errors import CniError

# Every module a kernel ADD/DEL runs, in import order.
PLUGIN_MODULES = ("fastjson", "types", "skel", "ip", "sysos", "store", "hostlocal",
                  "bridge", "delegate", "netlink", "kernel")
HOSTLOCAL_MODULES = PLUGIN_MODULES[:7]
_MAGIC = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
_BUNDLE = f"{__path__[0]}/__pycache__/plugins.{sys.implementation.cache_tag}.bundle"


def _bundle() -> dict:
    """``{name: (source path, mtime_ns, size, marshalled code)}`` of PLUGIN_MODULES."""
    out = {}
    for name in PLUGIN_MODULES:
        path = f"{__path__[0]}/{name}.py"
        st = posix.stat(path)
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
        out[name] = (path, st.st_mtime_ns, st.st_size, marshal.dumps(code))
    return out


def _write(bundle: dict) -> None:
    tmp = f"{_BUNDLE}.{posix.getpid()}"
    try:
        try:
            posix.mkdir(_BUNDLE.rsplit("/", 1)[0], 0o755)
        except FileExistsError:
            pass
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o644)
        try:
            posix.write(fd, _MAGIC + marshal.dumps(bundle))
        finally:
            posix.close(fd)
        posix.rename(tmp, _BUNDLE)
    except OSError:               # a read-only checkout: the plain imports still work
        try:
            posix.unlink(tmp)
        except OSError:
            pass


def preload(names) -> None:
    """Import ``names`` (from PLUGIN_MODULES) from one cached file of code objects.

    A plain import of a small module costs ~130 us of finding, stat-ing and
    reading its .pyc, most of the module's cost on a plugin's start-up path; this
    reads one file for all of them (ADD runs eleven). Each source's mtime and size
    are checked as the .pyc check does; a stale or missing bundle is rebuilt
    (written atomically, skipped when the package directory is read-only)."""
    bundle = None
    try:
        with open(_BUNDLE, "rb") as f:
            data = f.read()
        if data[:len(_MAGIC)] == _MAGIC:
            bundle = marshal.loads(data[len(_MAGIC):])
            for name in names:
                path, mtime, size, _ = bundle[name]
                st = posix.stat(path)
                if st.st_mtime_ns != mtime or st.st_size != size:
                    bundle = None
                    break
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        bundle = None
    if bundle is None:
        bundle = _bundle()
        if not sys.dont_write_bytecode:      # python -B: as for .pyc files
            _write(bundle)
    package = sys.modules[__name__]
    for name in names:
        full = f"{__name__}.{name}"
        if full in sys.modules:
            continue
        path, _, _, code = bundle[name]
        module = type(sys)(full)
        module.__file__ = path
        module.__package__ = __name__
        sys.modules[full] = module
        try:
            exec(marshal.loads(code), module.__dict__)
        except BaseException:
            del sys.modules[full]
            raise
        setattr(package, name, module)


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
