"""A CNI ADD run in-process on the model, turned into a template and replayed.

A run of the real plugin (netlab.cni.invoke) becomes a ``Template``: what the run made
(the container's namespace, the host veth it added to the node's namespace — or, for a
node's first run, the node's namespace as the run left it —, the files written, the
result, the Ops) with the values that differ from one container or node to the next
taken out. Those values (the params) are the node's (given by the caller), the
container id, the netns name and the IP (the caller's), the host veth's name (from
``virtual.veth_name``, the function the plugin names it with) and the MACs the model
handed out (``World.new_mac``, in the order the run drew them); they are found wherever
they appear, whole or inside a string (bounded by characters that cannot continue a
name or an address), and put back for the next container. A new link's ifindex is the
namespace's next one, as the model gives it; a route the model shares between
namespaces is shared again (``model.shared_route``).

A Template ``bind``s to a node (``Bound``: the node's values in its own table) and
``replay``s: the objects come from straight-line code compiled from the template's own
(every string and shared route by reference, a string made of the pod's values made from
them once, dicts of strings Shared: see netlab.model.sysctl), the Ops and the result from
pickles of the run's, made only when asked for (``Deferred``). A ``Shape`` is a node's state with its values
taken out, to tell (by straight-line comparisons compiled from it) whether another node
is the same but for its own values.

What must hold for a replay to do what the plugin would do is the caller's to check:
netlab.k8s.kubelet.NodeKubelet.
"""

from __future__ import annotations

import io
import pickle

from netlab.model import ns_key
from netlab.model.world import Route
from netlab.model.sysctl import Shared

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")
_PROTO = pickle.HIGHEST_PROTOCOL


_OP_FIELDS: dict[type, tuple] = {}


def touched(op) -> set[str] | None:
    """The namespace keys an Op may change (a node's root also stands for its files);
    None when it cannot be told (an Op naming no namespace)."""
    kind = type(op)
    spec = _OP_FIELDS.get(kind)
    if spec is None:
        import dataclasses
        names = {f.name for f in dataclasses.fields(op)}
        spec = _OP_FIELDS[kind] = (
            tuple(f for f in ("netns", "peer_netns", "to_netns") if f in names),
            "node" in names, "name" in names, kind.__name__ == "AddNetns")
    fields, has_node, has_name, add_netns = spec
    d = op.__dict__
    keys = {v for f in fields if (v := d[f])}
    if has_node:
        node = d["node"]
        name = d["name"] if has_name else None
        if add_netns:
            keys.add(ns_key(node, name))
        else:
            keys.add(ns_key(node))
            if name:
                keys.add(ns_key(node, name))
    return keys or None


def _link_state(link) -> dict:
    state = dict(link.__dict__)
    state["conf"] = dict(link.conf)
    state["addresses"] = list(link.addresses)
    state["fdb"] = [dict(f) for f in link.fdb]
    if link.vxlan is not None:
        state["vxlan"] = dict(link.vxlan)
    return state


def _state(ns) -> dict:
    """A namespace's fields, copied as deep as the model changes them: its containers, and
    each link's. The model never changes a Route, Address, Listener or Neighbour in place
    (it replaces them), and replaces an iptables table rather than change it (tables are
    compared by identity, the derived route index is left out)."""
    state = {}
    ns.routes           # (a batch given later joins the list: netlab.model.world.LATER)
    for key, value in ns.__dict__.items():
        if key.startswith("_") or key == "tables":
            continue
        if key == "links":
            value = {name: _link_state(link) for name, link in value.items()}
        elif key == "ipsets":
            value = pickle.loads(pickle.dumps(value, _PROTO)) if value else {}
        elif type(value) is list:
            value = list(value)
        elif type(value) is dict or type(value) is Shared:
            value = dict(value)
        state[key] = value
    return state


def _segments(text: str, params: list[str], pattern=None) -> list | None:
    """``text`` as literal parts and param indexes, or None when no param is in it.
    A param counts where no character that could continue a name or an address is on
    either side of it; at each place the longest one that fits wins."""
    if pattern is None:
        pattern = _pattern(params)
    out: list = []
    pos = 0
    index = {p: k for k, p in enumerate(params)}
    for m in pattern.finditer(text):
        if pos < m.start():
            out.append(text[pos:m.start()])
        out.append(index[m.group()])
        pos = m.end()
    if not out:
        return None
    if pos < len(text):
        out.append(text[pos:])
    return out


def _pattern(params: list[str]):
    import re
    word = "A-Za-z0-9.\\-_:"
    alts = "|".join(re.escape(p) for p in sorted(params, key=len, reverse=True))
    return re.compile(f"(?<![{word}])(?:{alts})(?![{word}])")


class Run:
    """One steady-state plugin run: its values (``params``) and what it made."""

    __slots__ = ("params", "nodes", "ns", "link", "offset", "result", "files", "ops", "root",
                 "ifname", "kept")

    def __init__(self, params, nodes, ns, link, offset, result, files, ops, root=None,
                 ifname=None, kept=()):
        self.params, self.nodes = params, nodes
        self.ns, self.link, self.offset = ns, link, offset
        self.result, self.files, self.ops = result, files, ops
        self.root = root            # a node's first run: the node's namespace it left
        self.ifname = ifname or link.peer_name
        self.kept = kept            # a first run: the links it added other than the veth


class Capture:
    """What a run may change, taken just before it."""

    def __init__(self, backend, node: str, ops: list):
        world = backend.world
        root = world.namespaces[ns_key(node)]
        self.node = node
        self.ops, self.start = ops, len(ops)
        self.root = _state(root)
        self.tables = dict(root.tables)
        self.files = dict(world.files.get(node, {}))
        self.namespaces = len(world.namespaces)
        self.shape = (len(world.nodes), len(world.lans))
        self.mac = world.mac_counter

    def confined_ops(self, world, new_key: str) -> list | None:
        """The Ops since the capture when they touched only the node's namespace and the
        new container's (which is the one namespace more), and made no node or LAN."""
        root_key = ns_key(self.node)
        ops = self.ops[self.start:]
        for op in ops:
            keys = touched(op)
            if keys is None or keys - {root_key, new_key}:
                return None
        if len(world.namespaces) != self.namespaces + 1 or new_key not in world.namespaces \
                or (len(world.nodes), len(world.lans)) != self.shape:
            return None
        return ops

    def files_and_macs(self, world) -> tuple[list, list[str]] | None:
        """The node's files the run wrote or changed, and the MACs it drew (again, in
        their order); None when it removed a file or the MAC counter went back."""
        tree = world.files.get(self.node, {})
        if any(k not in tree for k in self.files):
            return None
        files = [(k, v) for k, v in tree.items() if self.files.get(k) != v]
        count = world.mac_counter - self.mac
        if count < 0:
            return None
        now, world.mac_counter = world.mac_counter, self.mac
        macs = [world.new_mac() for _ in range(count)]
        world.mac_counter = now
        return files, macs

    def run(self, backend, new_key: str, result: dict, container_id: str, netns: str,
            ip: str, node_params: list[str]) -> Run | None:
        """The run since the capture, or None when it was not a steady-state run (see the
        module's docstring). ``node_params``: the node's values (the same for each of its
        containers), put first in the params."""
        world = backend.world
        root = world.namespaces[ns_key(self.node)]
        ops = self.confined_ops(world, new_key)
        if ops is None:
            return None
        before = self.root
        new_links = [name for name in root.links if name not in before["links"]]
        if len(new_links) != 1:
            return None
        for field, value in before.items():
            if field == "links":
                for name, link in value.items():
                    now = root.links.get(name)
                    if now is None or _link_state(now) != link:
                        return None
            elif field == "next_ifindex":
                if root.next_ifindex != value + 1:
                    return None
            elif getattr(root, field) != value:
                return None
        if root.tables.keys() != self.tables.keys() or \
                any(root.tables[k] is not t for k, t in self.tables.items()):
            return None
        made = self.files_and_macs(world)
        if made is None:
            return None
        files, macs = made
        veth = new_links[0]
        link = root.links[veth]
        params = [*node_params, container_id, netns, ip, veth, *macs]
        if len(set(params)) != len(params) or not all(params):
            return None
        return Run(params, len(node_params), world.namespaces[new_key], link,
                   link.ifindex - before["next_ifindex"], result, files, ops)


class _Unsupported(Exception):
    pass


def _expr(fmt: str) -> str:
    """The Python expression of ``fmt.format(*P)`` (``P`` the params, all strings)."""
    from string import Formatter
    parts = []
    for literal, field, _, _ in Formatter().parse(fmt):
        if literal:
            parts.append(repr(literal))
        if field is not None:
            parts.append(f"P[{int(field)}]")
    return " + ".join(parts) or "''"


def _fields(specs):
    """A function of the params giving each spec's fields (a string field is a format)."""
    code = "def fields(P):\n    return [" + "".join(
        "(" + "".join((_expr(f) if type(f) is str else repr(f)) + ", " for f in spec) + "), "
        for spec in specs) + "]\n"
    space: dict = {}
    exec(code, space)
    return space["fields"]


def _compile(objs, files, persistent, own):
    """A function of the table and the params that makes ``objs`` again as the pickle
    would (with the same table references, flat dicts too), and the files' (path,
    content) pairs, as straight-line code: each object of a class of its own made by
    ``__new__`` and given its attributes in their order (so it keeps the compact form of
    instances made by ``__init__``), lists, dicts and tuples; a string made of the pod's
    own params (``own``: its format by table index) made from the params once, where
    first used. None when the objects hold anything else, or an object twice."""
    import dataclasses
    seen: set[int] = set()
    made: set[int] = set()
    lines: list[str] = []

    def ref(pid) -> str:
        fmt = own.get(pid)
        if fmt is None:
            return f"T[{pid}]"      # a flat dict too: Shared by every pod made
        expr = _expr(fmt)
        if expr.startswith("P[") and expr.count("P[") == 1:
            return expr             # a param itself
        if pid not in made:
            made.add(pid)
            lines.append(f"    s{pid} = {expr}")
        return f"s{pid}"

    def gen(obj) -> str:
        kind = type(obj)
        pid = persistent(obj)
        if pid is not None:
            return ref(pid)
        if obj is None or kind in (int, bool, float, str):
            return repr(obj)
        if id(obj) in seen:
            raise _Unsupported
        seen.add(id(obj))
        if kind is list:
            return "[" + ", ".join(gen(x) for x in obj) + "]"
        if kind is tuple:
            return "(" + "".join(gen(x) + ", " for x in obj) + ")"
        if kind is dict:
            return "{" + ", ".join(f"{gen(k)}: {gen(v)}" for k, v in obj.items()) + "}"
        if dataclasses.is_dataclass(kind) and hasattr(obj, "__dict__") and \
                not hasattr(kind, "__slots__") and not hasattr(kind, "__setstate__") and \
                all(type(k) is str and k.isidentifier() for k in obj.__dict__):
            name = f"o{len(seen)}"
            lines.append(f"    {name} = T[{persistent(kind)}].__new__(T[{persistent(kind)}])")
            for k, v in obj.__dict__.items():
                value = gen(v)
                lines.append(f"    {name}.{k} = {value}")
            return name
        raise _Unsupported

    try:
        result = gen(objs)
    except _Unsupported:
        return None
    pairs = "[" + ", ".join(f"({ref(p)}, {ref(c)})" for p, c in files) + "]"
    code = "def make(T, P):\n" + "\n".join(lines) + f"\n    return {result}, {pairs}\n"
    space = {"dict": dict}
    exec(code, space)
    return space["make"]


def _veth_name(container_id: str, ifname: str, taken) -> str:
    """netlab.cni.virtual.veth_name, the plugin's (imported at the first call)."""
    from netlab.cni.virtual import veth_name
    global _veth_name
    _veth_name = veth_name
    return veth_name(container_id, ifname, taken)


def _model_fields() -> frozenset:
    import dataclasses
    from netlab.model import world
    return frozenset(f.name for cls in vars(world).values() if dataclasses.is_dataclass(cls)
                     for f in dataclasses.fields(cls))


_FIELDS = _model_fields()


def first_run(capture: "Capture", backend, new_key: str, result: dict, container_id: str,
              netns: str, ip: str, ifname: str, node_params: list[str]) -> Run | None:
    """A node's first run (it may change the node's namespace in any way: the caller
    checks the namespace was as the template's was before it), or None when it changed
    more than the node's namespace, the container's and the node's files, or the node
    has iptables state (tables are shared, not copied)."""
    from netlab.cni.virtual import veth_name
    world = backend.world
    root = world.namespaces[ns_key(capture.node)]
    ops = capture.confined_ops(world, new_key)
    if ops is None:
        return None
    if root.tables or capture.tables or root.ipsets or root.conntrack:
        return None
    made = capture.files_and_macs(world)
    if made is None:
        return None
    files, macs = made
    veth = veth_name(container_id, ifname, capture.root["links"])
    added = [name for name in root.links if name not in capture.root["links"]]
    if veth not in added:
        return None
    params = [*node_params, container_id, netns, ip, veth, *macs]
    if len(set(params)) != len(params) or not all(params):
        return None
    return Run(params, len(node_params), world.namespaces[new_key], None, 0, result, files, ops,
               root=root, ifname=ifname, kept=tuple(n for n in added if n != veth))


def _flat(d) -> bool:
    return type(d) is dict and all(type(k) is str and type(v) is str for k, v in d.items())


class Template:
    """A Run with its values taken out: ``bind`` it to a node, then ``replay`` it.

    ``params``: the node's values (``nodes`` of them), then the container id, netns name,
    IP, host veth name and the MACs of the run. The table a template's pickles refer to
    holds constants (strings, and flat dicts of strings, Shared by the pods made), the
    strings made of params (a format each) and the routes the model shares (found again by
    their fields, made of params, in the model's own table of them)."""

    def __init__(self, backend, run: Run):
        params = run.params
        self.nodes = run.nodes
        self.macs = len(params) - run.nodes - 4
        self.ifname = run.ifname
        self.offset = run.offset
        self.first = run.root is not None
        self.kept = run.kept
        self.table: list = []
        self.kinds: list[tuple] = []
        self.slots: list[tuple[int, str, bool]] = []    # (table index, format, pod's own)
        self.routes: list[tuple[int, tuple, bool]] = []  # (table index, fields, pod's own)
        self.interned = backend.__dict__.setdefault("_routes", {})
        self.backend = backend
        index_of: dict = {}
        template = self
        pattern = _pattern(params)
        nodes = self.nodes

        def add(key, obj, kind):
            index = index_of[key] = len(template.table)
            template.table.append(obj)
            template.kinds.append(kind)
            return index

        def fmt(text: str):
            segs = _segments(text, params, pattern)
            if segs is None:
                return None
            return "".join("{%d}" % s if type(s) is int else
                           s.replace("{", "{{").replace("}", "}}") for s in segs), \
                any(type(s) is int and s >= nodes for s in segs)

        def esc(text: str) -> str:
            return text.replace("{", "{{").replace("}", "}}")

        second = run.root if self.first else run.link
        spaces = [run.ns, run.root] if self.first else [run.ns]
        flats = {id(ns.sysctls) for ns in spaces} | \
            {id(l.conf) for ns in spaces for l in ns.links.values()}
        if not self.first:
            flats.add(id(run.link.conf))

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                kind = type(obj)
                if kind is str:
                    if obj in _FIELDS:
                        return None         # an attribute's name: pickle interns it
                    index = index_of.get(obj)
                    if index is not None:
                        return index
                    f = fmt(obj)
                    if f is None:
                        return add(obj, obj, ("c", obj))
                    index = add(obj, obj, ("v", f[0]))
                    template.slots.append((index, f[0], f[1]))
                    return index
                if kind is type:            # a class: by reference, not looked up by name
                    key = ("class", obj)
                    index = index_of.get(key)
                    return index if index is not None else \
                        add(key, obj, ("t", obj.__module__, obj.__qualname__))
                if kind is dict and id(obj) in flats and _flat(obj) and not any(
                        fmt(k) or fmt(v) for k, v in obj.items()):
                    key = ("dict", id(obj))
                    index = index_of.get(key)
                    return index if index is not None else \
                        add(key, Shared(obj), ("d", tuple(obj.items())))
                if kind is Route:
                    fields = (obj.dst, obj.dev, obj.gateway, obj.src, obj.metric, obj.proto,
                              obj.scope, obj.type, obj.onlink)
                    if template.interned.get(fields) is obj:
                        key = ("route", id(obj))
                        index = index_of.get(key)
                        if index is None:
                            done = [fmt(f) if type(f) is str else None for f in fields]
                            spec = tuple(d[0] if d else esc(f) if type(f) is str else f
                                         for f, d in zip(fields, done))
                            index = add(key, obj, ("r", spec))
                            template.routes.append((index, spec, any(d and d[1] for d in done)))
                        return index
                return None

        def dump(obj) -> bytes:
            buf = io.BytesIO()
            Pickler(buf, _PROTO).dump(obj)
            return buf.getvalue()

        persistent = Pickler(io.BytesIO(), _PROTO).persistent_id

        indexes = [ns.__dict__.pop("_route_index", None) for ns in spaces]
        try:
            self.blob = dump((run.ns, second))
            state = len(self.table)     # the entries the objects need (the rest: result, Ops)
            # The files: each path and content is a string of the table (made of params).
            self.files = []
            for path, content in run.files:
                pair = []
                for text in (path, content):
                    if text not in index_of:
                        persistent(text)
                    pair.append(index_of[text])
                self.files.append(tuple(pair))
            own = {index: f for index, f, mine in self.slots if mine}
            self.make = _compile((run.ns, second), self.files, persistent, own)
        finally:
            for ns, index in zip(spaces, indexes):
                if index is not None:
                    ns.__dict__["_route_index"] = index
        if self.first and self.make is None:
            raise AssertionError("a node's first run holds what the template cannot make")
        self.result_blob = dump(run.result)
        self.ops_blob = dump(run.ops)
        # The params of a replay: the node's, the container's, the MACs drawn in order.
        space: dict = {}
        exec("def params(N, cid, netns, ip, veth, new_mac):\n    return N + (cid, netns, ip, "
             "veth" + ", new_mac()" * self.macs + ")\n", space)
        self.params = space["params"]
        # The shared routes' fields for the params: the node's, the pod's own.
        self.node_fields = _fields([spec for _, spec, own in self.routes if not own])
        self.own_fields = _fields([spec for _, spec, own in self.routes if own])
        needed = set(range(state)) | {i for pair in self.files for i in pair}
        self.needed = needed
        self.signature = (self.blob, self.result_blob, self.ops_blob, tuple(self.files),
                          tuple(self.kinds), self.nodes, self.macs, self.offset, self.ifname,
                          self.first, self.kept)
        # The template reproduces its own run: a check of the substitution itself.
        if not self.reproduces(run):
            raise AssertionError("a CNI template does not reproduce its own run")

    def bind(self, node_params) -> "Bound | None":
        """The template for one node (None when a route it shares is not there)."""
        return Bound(self, tuple(node_params))

    def reproduces(self, run: Run) -> bool:
        """Whether this template, given ``run``'s values, makes what ``run`` made."""
        if run.nodes != self.nodes or len(run.params) - run.nodes - 4 != self.macs or \
                run.offset != self.offset or run.ifname != self.ifname or \
                (run.root is not None) != self.first or run.kept != self.kept:
            return False
        bound = self.bind(run.params[:run.nodes])
        ns, second, files = bound._make(tuple(run.params),
                                        run.link.ifindex - run.offset if run.link else 0)
        return ns == run.ns and second == (run.root if self.first else run.link) and \
            files == run.files and \
            bound.result(tuple(run.params)) == run.result and \
            bound.ops(tuple(run.params)) == run.ops


class Bound:
    """A Template for one node: the node's values in its own table."""

    def __init__(self, template: Template, node_params: tuple):
        self.template = template
        self.node_params = node_params
        self.table = table = list(template.table)
        for index, f, own in template.slots:
            if not own:
                table[index] = f.format(*node_params)
        self.slots = [(index, f) for index, f, own in template.slots
                      if own and index in template.needed]
        self.later = [(index, f) for index, f, own in template.slots
                      if own and index not in template.needed]
        self.routes = [index for index, _, own in template.routes if own]
        self.node_routes = [index for index, _, own in template.routes if not own]
        self.ready = False

    def _routes(self, params) -> None:
        """The shared routes the objects refer to: the node's (once), the pod's own."""
        from netlab.backends.model import shared_route
        table = self.table
        backend = self.template.backend
        if not self.ready:
            for index, fields in zip(self.node_routes, self.template.node_fields(params)):
                table[index] = shared_route(backend, fields)
            self.ready = True
        for index, fields in zip(self.routes, self.template.own_fields(params)):
            table[index] = shared_route(backend, fields)

    def _fill(self, params) -> None:
        """The table as the pickles need it for ``params``."""
        self._routes(params)
        table = self.table
        for index, f in self.slots:
            table[index] = f.format(*params)
        for index, f in self.later:
            table[index] = f.format(*params)

    def _load(self, blob: bytes):
        up = pickle.Unpickler(io.BytesIO(blob))
        up.persistent_load = self.table.__getitem__
        return up.load()

    def _make(self, params, base: int):
        t = self.template
        if t.make is not None:
            if self.routes or not self.ready:
                self._routes(params)
            (ns, link), files = t.make(self.table, params)
        else:
            self._fill(params)
            ns, link = self._load(t.blob)
            table = self.table
            files = [(table[p], table[c]) for p, c in t.files]
        if not t.first:
            link.ifindex = base + t.offset
        return ns, link, files

    def result(self, params: tuple) -> dict:
        """The plugin's result for ``params`` (made when asked for)."""
        self._fill(params)
        return self._load(self.template.result_blob)

    def replay(self, world, root, node: str, container_id: str, netns: str,
               ip: str) -> tuple:
        """Make what the run made for this container: its veth name and MACs drawn as the
        plugin draws them. Returns the params (``result`` gives the plugin's result)."""
        t = self.template
        veth = _veth_name(container_id, t.ifname,
                          root.links.keys() | t.kept if t.first else root.links)
        params = t.params(self.node_params, container_id, netns, ip, veth, world.new_mac)
        ns, second, files = self._make(params, root.next_ifindex)
        world.namespaces[ns.key] = ns
        if t.first:                 # the node's namespace as the first run left it
            world.namespaces[second.key] = second
        else:
            root.next_ifindex += 1
            root.links[second.name] = second
        tree = world.files[node]
        for path, content in files:
            tree[path] = content
        return params

    def ops(self, params: tuple) -> list:
        self._fill(params)
        return self._load(self.template.ops_blob)


class Shape:
    """A node's state (a namespace's ``_state`` and its files) with its values taken out
    (strings made of ``params``, as in a Template): ``matches`` tells whether another
    node's state is the same but for its own values. Two shapes from different nodes
    that are the very same (``signature``) show the substitution is right."""

    def __init__(self, state, params: list[str]):
        self.count = len(params)
        self.table: list = []
        self.slots: list[tuple[int, str]] = []
        kinds: list = []
        index_of: dict = {}
        pattern = _pattern(params)
        shape = self

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if type(obj) is not str or obj in _FIELDS:
                    return None
                index = index_of.get(obj)
                if index is not None:
                    return index
                index = index_of[obj] = len(shape.table)
                shape.table.append(obj)
                segs = _segments(obj, params, pattern)
                if segs is None:
                    kinds.append(("c", obj))
                else:
                    f = "".join("{%d}" % x if type(x) is int else
                                x.replace("{", "{{").replace("}", "}}") for x in segs)
                    shape.slots.append((index, f))
                    kinds.append(("v", f))
                return index

        buf = io.BytesIO()
        Pickler(buf, _PROTO).dump(state)
        self.blob = buf.getvalue()
        self.signature = (self.blob, tuple(kinds), self.count)
        own = dict(self.slots)
        self.match = _matcher(state, lambda text: None if text in _FIELDS else
                              own.get(index_of[text]))
        if not self.matches(state, params) or not self.loaded_matches(state, params):
            raise AssertionError("a node's shape does not match its own state")

    def matches(self, state, params) -> bool:
        if len(params) != self.count or len(set(params)) != len(params):
            return False
        if self.match is not None:
            return self.match(state, params)
        return self.loaded_matches(state, params)

    def loaded_matches(self, state, params) -> bool:
        """``matches`` by the state the shape's pickle makes for ``params``, compared."""
        if len(params) != self.count or len(set(params)) != len(params):
            return False
        table = list(self.table)
        for index, f in self.slots:
            table[index] = f.format(*params)
        up = pickle.Unpickler(io.BytesIO(self.blob))
        up.persistent_load = table.__getitem__
        return up.load() == state


def _matcher(state, fmt_of):
    """A function ``(other, P)`` telling whether ``other == state`` once the strings of
    ``state`` made of params (``fmt_of(text)``: their format, else None) are made from
    ``P``, as straight-line code: no copy of the state is made to compare. It is as
    strict as ``==`` or stricter (exact types of containers). None when ``state`` holds
    anything but dicts, lists, tuples, strings, numbers, None and the model's immutable
    records (their fields compared, as their ``__eq__`` does)."""
    import dataclasses
    from netlab.model.world import Address, Listener, Neighbour
    records = (Address, Listener, Neighbour, Route)
    lines: list[str] = []
    made: dict[str, str] = {}
    count = [0]

    def text(value: str) -> str:
        fmt = fmt_of(value)
        if fmt is None:
            return repr(value)
        expr = _expr(fmt)
        name = made.get(expr)
        if name is None:
            name = made[expr] = f"s{len(made)}"
            lines.append(f"    {name} = {expr}")
        return name

    def gen(x: str, obj) -> None:
        kind = type(obj)
        if kind is str:
            lines.append(f"    if {x} != {text(obj)}: return False")
        elif obj is None:
            lines.append(f"    if {x} is not None: return False")
        elif kind in (int, float, bool):
            lines.append(f"    if {x} != {obj!r}: return False")
        elif kind in (dict, list, tuple) or kind in records:
            count[0] += 1
            y = f"x{count[0]}"
            lines.append(f"    {y} = {x}")
            lines.append(f"    if type({y}) is not {kind.__name__}: return False")
            if kind is dict:
                lines.append(f"    if len({y}) != {len(obj)}: return False")
                for key, value in obj.items():
                    if type(key) is not str:
                        raise _Unsupported
                    gen(f"{y}.get({text(key)}, MISSING)", value)
            elif kind in (list, tuple):
                lines.append(f"    if len({y}) != {len(obj)}: return False")
                for i, value in enumerate(obj):
                    gen(f"{y}[{i}]", value)
            else:
                for f in dataclasses.fields(kind):
                    if f.compare:
                        gen(f"{y}.{f.name}", getattr(obj, f.name))
        else:
            raise _Unsupported

    try:
        gen("S", state)
    except _Unsupported:
        return None
    code = "def match(S, P):\n" + "\n".join(lines) + "\n    return True\n"
    space = {"MISSING": object(), **{c.__name__: c for c in (*records, dict, list, tuple)}}
    exec(code, space)
    return space["match"]


class Deferred:
    """A replayed run's Ops, made when asked for."""

    __slots__ = ("template", "params")

    def __init__(self, template: "Bound", params: tuple):
        self.template, self.params = template, params

    def ops(self) -> list:
        return self.template.ops(self.params)

    def result(self) -> dict:
        return self.template.result(self.params)
