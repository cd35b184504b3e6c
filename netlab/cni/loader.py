"""Install the plugins' modules from a bundle (one cached file of code objects).

The plugin scripts (cni_plugins/*) read the bundle before anything of netlab is
imported, take this module's code out of it and run ``install``: no path
search, no .pyc per module, not even for the ``netlab`` and ``netlab.cni``
packages. netlab/cni/__init__.py (``preload``) writes the bundle and uses
the same ``install``. Only builtins here: nothing is imported yet when it runs.

A bundle is ``MAGIC`` (the interpreter's .pyc magic number) followed by the
marshalled ``(loader code, tables)``: ``tables[plugin]`` holds ``(module name,
source path under the checkout, mtime_ns, size, code)`` of what that plugin
("bridge" or "host-local") runs, in the order the modules must run. Paths are
relative so that a copied checkout checks (and reports) its own sources.
"""


def install(table, root: str, names=None) -> bool:
    """Run the modules of ``table`` (only those named in ``names`` if given, and
    none already imported) from the checkout at ``root`` as the import system would;
    False, and nothing run, when any source of the table (also one not run now) has
    another mtime or size than the bundle was built from: then it wants rebuilding."""
    import posix
    import sys
    for _, path, mtime, size, _ in table:
        st = posix.stat(root + path)
        if st.st_mtime_ns != mtime or st.st_size != size:
            return False
    todo = [entry for entry in table if (names is None or entry[0] in names) and entry[0] not in sys.modules]
    module_type = type(sys)
    for name, path, _, _, code in todo:
        path = root + path
        module = module_type(name)
        module.__file__ = path
        if path.endswith("/__init__.py"):
            module.__path__ = [path[:-12]]
            module.__package__ = name
        else:
            module.__package__ = name.rpartition(".")[0]
        sys.modules[name] = module
        try:
            exec(code, module.__dict__)
        except BaseException:
            del sys.modules[name]
            raise
    for name, *_ in todo:          # a package can run after its submodules (errors before netlab.cni)
        parent, _, leaf = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], leaf, sys.modules[name])
    return True
