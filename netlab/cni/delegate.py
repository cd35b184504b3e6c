"""IPAM delegation as libcni's invoke does it: find ``ipam.type`` in CNI_PATH, run it
with the same environment (only CNI_COMMAND changed) and the complete netconf
on stdin; its error object comes back unchanged.

When the executable found is this checkout's own host-local script (through
symlinks, as the script resolves them itself: the very file, so it would load
the same netlab modules from the same checkout and use the same data dir; its
interpreter line is the repository's, as the bridge script's), it runs in this
process instead: the same code on the same files, minus a second interpreter
start-up (~6 ms, nearly the reference's whole ADD). Any other host-local (the
reference's, a copy, another checkout's) is executed.
``NETLAB_CNI_EXEC=1`` forces a real exec.
"""


import posix

from netlab.cni.errors import CniError, internal


def find_in_path(plugin: str, paths: list[str]) -> str:
    from netlab.cni.sysos import isfile, join
    if not paths:
        raise internal("no paths provided")
    if "/" not in plugin and plugin:
        for d in paths:
            full = join(d, plugin)
            if isfile(full) and posix.access(full, posix.X_OK):
                return full
    raise internal(f'failed to find plugin "{plugin}" in path [{" ".join(paths)}]')


def resolve(path: str) -> str:
    """Where a plugin script at ``path`` finds itself: through symlinks, as cni_plugins/*
    resolve their own path to find the checkout."""
    if not path.startswith("/"):
        path = posix.getcwd() + "/" + path
    for _ in range(40):
        try:
            link = posix.readlink(path)
        except OSError:
            break
        path = link if link.startswith("/") else path.rsplit("/", 1)[0] + "/" + link
    return path


def is_ours(path: str) -> bool:
    """Whether executing ``path`` runs this checkout's host-local script itself."""
    from netlab.cni import ROOT
    return resolve(path) == ROOT + "/cni_plugins/host-local"


class Ipam:
    """The IPAM delegate of one invocation (``args``: skel.Args)."""

    def __init__(self, args, plugin: str, memory: dict | None = None, in_process_only: bool = False):
        self.args = args
        self.plugin = plugin
        self.memory = memory
        self.in_process_only = in_process_only
        self.before: dict | None = None     # host-local's last_reserved_ip.N before our ADD
        self.raw: dict | None = None        # what our ADD got
        self._ours: bool | None = None      # ipam.type found in CNI_PATH is our host-local

    def add(self) -> dict:
        """IPAM ADD, remembering what is needed to undo it completely (see rollback)."""
        if not self._runs_in_process():
            self.before = self.snapshot()
        self.raw = self.run("ADD")
        return self.raw

    def _runs_in_process(self) -> bool:
        if self.in_process_only:
            return True
        if self._ours is None:
            self._ours = False
            if self.plugin == "host-local" and not self.args.env.get("NETLAB_CNI_EXEC"):
                try:
                    self._ours = is_ours(find_in_path(self.plugin, self.args.path))
                except CniError:
                    pass
        return self._ours

    def run(self, command: str) -> dict | None:
        if not self.plugin:
            raise internal("no plugin name provided")
        if self.in_process_only:
            if self.plugin != "host-local":
                raise internal(f'failed to find plugin "{self.plugin}" in path [{" ".join(self.args.path)}]')
            return self._in_process(command)
        if self._runs_in_process():
            return self._in_process(command)
        return self._exec(find_in_path(self.plugin, self.args.path), command)

    def _in_process(self, command: str) -> dict | None:
        from netlab.cni import hostlocal, skel
        sub = skel.Args(command, self.args.container_id, self.args.netns, self.args.ifname,
                        self.args.args, self.args.path, self.args.stdin, env=self.args.env)
        saved: dict = {}
        out = skel.dispatch(sub, hostlocal.handlers(self.memory, saved))
        if command == "ADD":
            self.before = saved
        return out

    def _exec(self, path: str, command: str) -> dict | None:
        from netlab.cni import fastjson, proc
        env = dict(self.args.env)
        env["CNI_COMMAND"] = command
        rc, out, _ = proc.run([path], self.args.stdin, env, stderr_to_parent=True)
        if rc != 0:
            if not out:
                raise internal(f"netplugin failed with no error message: exit status {rc}")
            try:
                err = fastjson.loads(out)
                raise CniError(int(err.get("code", 999)), str(err.get("msg", "")), str(err.get("details") or ""))
            except (ValueError, AttributeError):
                raise internal(f"netplugin failed but error parsing its diagnostic message {out!r}") from None
        if command != "ADD":
            return None
        try:
            return fastjson.loads(out)
        except ValueError as exc:
            raise internal(f"failed to parse result: {exc}") from None

    # --- undoing an ADD ----------------------------------------------------------------
    def _open(self, create: bool = True):
        if self.plugin != "host-local":
            return None
        from netlab.cni.store import DEFAULT_DATA_DIR, store_for
        ipam = self.args.conf.get("ipam") or {}
        data_dir = ipam.get("dataDir") or ""
        from netlab.cni.sysos import isdir, join
        if self.memory is None and not create and not isdir(
                join(data_dir or DEFAULT_DATA_DIR, self.args.conf["name"])):
            return None
        try:
            return store_for(self.memory, data_dir, self.args.conf["name"])
        except OSError:
            return None

    def snapshot(self) -> dict | None:
        """host-local's ``last_reserved_ip.N`` before ADD, to put back if this ADD fails."""
        if self.plugin != "host-local":
            return None
        store = self._open(create=False)
        if store is None:
            return {}                # no data dir yet: no last_reserved_ip to put back
        try:
            store.lock()
            return {n: store.read(n) for n in store.names() if n.startswith("last_reserved_ip.")}
        finally:
            store.close()

    def rollback(self) -> None:
        """IPAM DEL; then, for host-local, each ``last_reserved_ip.N`` that still names an
        address this ADD got goes back to what it was (another ADD since then keeps its own)."""
        before, raw = self.before, self.raw
        self.run("DEL")
        store = self._open()
        if store is None or before is None or raw is None:
            return
        from netlab.cni.types import from_any
        mine = {i["address"].split("/")[0] for i in from_any(raw, self.args.version)["ips"]}
        try:
            store.lock()
            for name in store.names():
                if name.startswith("last_reserved_ip.") and (store.read(name) or "").strip() in mine:
                    if before.get(name) is None:
                        store.remove(name)
                    else:
                        store.write(name, before[name])
        finally:
            store.close()
