"""A CNI ADD run in-process on the model, turned into a template and replayed.

A run of the real plugin (netlab.cni.invoke) that found its node in a steady state
— it touched only the node's namespace and the container's, the node's namespace
gained one link (the host veth) and nothing else changed there, the node's files only
gained or changed entries — becomes a ``Template``: what the run made (the container's
namespace, the new link, the files written, the result, the Ops), with the values that
differ from one container to the next taken out. Those values (``Template.PARAMS``) are
the container id, the netns name and the IP (the caller's), the host veth's name (from
``virtual.veth_name``, the function the plugin names it with) and the MACs the model
handed out (``World.new_mac``, in the order the run drew them); they are found wherever
they appear, whole or inside a string (bounded by characters that cannot continue a
name or an address), and put back for the next container. A new link's ifindex is the
namespace's next one, as the model gives it.

The objects come from a pickle of the template's (C speed), every string and every
route the model shares between namespaces taken by reference (so clones share them as
the model's own objects do). The Ops of a replayed run are made only when asked for
(``Deferred``).

What must hold for a replay to do what the plugin would do (same netconf, nothing else
changed the node since, host-local's next address, ...) is the caller's to check:
netlab.k8s.kubelet.
"""

from __future__ import annotations

import io
import pickle

from netlab.model import ns_key
from netlab.model.world import Route

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")
_PROTO = pickle.HIGHEST_PROTOCOL


def touched(op) -> set[str] | None:
    """The namespace keys an Op may change (a node's root also stands for its files);
    None when it cannot be told (an Op naming no namespace)."""
    keys = set()
    for field in ("netns", "peer_netns", "to_netns"):
        value = getattr(op, field, None)
        if value:
            keys.add(value)
    node = getattr(op, "node", None)
    if node is not None:
        name = getattr(op, "name", None)
        if type(op).__name__ == "AddNetns":
            keys.add(ns_key(node, name))
        else:
            keys.add(ns_key(node))
            if name:
                keys.add(ns_key(node, name))
    return keys or None


def _state(ns) -> dict:
    """A deep copy of a namespace's fields, without its iptables tables (replaced, never
    changed in place: compared by identity) and the derived index."""
    state = {k: v for k, v in ns.__dict__.items() if not k.startswith("_") and k != "tables"}
    return pickle.loads(pickle.dumps(state, _PROTO))


def _segments(text: str, params: list[str]) -> list | None:
    """``text`` as literal parts and param indexes, or None when no param is in it."""
    if not any(p in text for p in params):
        return None
    order = sorted(range(len(params)), key=lambda k: -len(params[k]))
    out: list = []
    pos = i = 0
    n = len(text)
    while i < n:
        for k in order:
            v = params[k]
            end = i + len(v)
            if text.startswith(v, i) and (i == 0 or text[i - 1] not in _WORD) and \
                    (end == n or text[end] not in _WORD):
                if pos < i:
                    out.append(text[pos:i])
                out.append(k)
                i = pos = end
                break
        else:
            i += 1
    if not any(type(s) is int for s in out):
        return None
    if pos < n:
        out.append(text[pos:])
    return out


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

    def template(self, backend, new_key: str, result: dict, container_id: str, netns: str,
                 ip: str, extra: dict | None = None) -> "Template | None":
        """The run since the capture as a Template, or None when it was not a steady-state
        run (see the module's docstring)."""
        world = backend.world
        root_key = ns_key(self.node)
        root = world.namespaces[root_key]
        ops = self.ops[self.start:]
        for op in ops:
            keys = touched(op)
            if keys is None or keys - {root_key, new_key}:
                return None
        if len(world.namespaces) != self.namespaces + 1 or new_key not in world.namespaces \
                or (len(world.nodes), len(world.lans)) != self.shape:
            return None
        before = self.root
        new_links = [name for name in root.links if name not in before["links"]]
        if len(new_links) != 1:
            return None
        for field, value in before.items():
            if field == "links":
                if any(root.links.get(name) != link for name, link in value.items()):
                    return None
            elif field == "next_ifindex":
                if root.next_ifindex != value + 1:
                    return None
            elif getattr(root, field) != value:
                return None
        if root.tables.keys() != self.tables.keys() or \
                any(root.tables[k] is not t for k, t in self.tables.items()):
            return None
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
        veth = new_links[0]
        link = root.links[veth]
        params = [container_id, netns, ip, veth, *macs]
        if len(set(params)) != len(params) or not all(params):
            return None
        return Template(backend, params, world.namespaces[new_key], link,
                        link.ifindex - before["next_ifindex"], result, files, ops, extra or {})


class Template:
    PARAMS = ("container_id", "netns", "ip", "veth", "macs...")

    def __init__(self, backend, params, ns, link, offset, result, files, ops, extra):
        self.node = ns.node
        self.ifname = link.peer_name
        self.macs = len(params) - 4
        self.offset = offset
        self.extra = extra
        self.files = files
        self.table: list = []
        self.slots: list[tuple[int, str]] = []      # (table index, format of the params)
        consts: dict = {}
        variables: dict[str, int] = {}
        interned = backend.__dict__.get("_routes", {})
        template = self

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                kind = type(obj)
                if kind is str:
                    index = variables.get(obj)
                    if index is not None:
                        return index
                    index = consts.get(obj)
                    if index is not None:
                        return index
                    segs = _segments(obj, params)
                    index = len(template.table)
                    template.table.append(obj)
                    if segs is None:
                        consts[obj] = index
                    else:
                        fmt = "".join("{%d}" % s if type(s) is int else
                                      s.replace("{", "{{").replace("}", "}}") for s in segs)
                        template.slots.append((index, fmt))
                        variables[obj] = index
                    return index
                if kind is Route and interned.get(
                        (obj.dst, obj.dev, obj.gateway, obj.src, obj.metric, obj.proto,
                         obj.scope, obj.type, obj.onlink)) is obj:
                    key = ("route", id(obj))
                    index = consts.get(key)
                    if index is None:
                        index = consts[key] = len(template.table)
                        template.table.append(obj)
                    return index
                return None

        def dump(obj) -> bytes:
            buf = io.BytesIO()
            Pickler(buf, _PROTO).dump(obj)
            return buf.getvalue()

        index = ns.__dict__.pop("_route_index", None)
        try:
            self.blob = dump((ns, link, result, files))
        finally:
            if index is not None:
                ns.__dict__["_route_index"] = index
        self.ops_blob = dump(ops)
        # The template reproduces its own run: a check of the substitution itself.
        self._fill(params)
        got = self._load(self.blob)
        if pickle.dumps(got[2:], _PROTO) != pickle.dumps((result, files), _PROTO) or \
                got[1] != link or _state(got[0]) != _state(ns):
            raise AssertionError("a CNI template does not reproduce its own run")

    def _fill(self, params) -> None:
        table = self.table
        for index, fmt in self.slots:
            table[index] = fmt.format(*params)

    def _load(self, blob: bytes):
        up = pickle.Unpickler(io.BytesIO(blob))
        up.persistent_load = self.table.__getitem__
        return up.load()

    def params(self, world, container_id: str, netns: str, ip: str, root) -> tuple:
        """This container's values: the veth name and the MACs drawn as the plugin draws them."""
        from netlab.cni.virtual import veth_name
        veth = veth_name(container_id, self.ifname, root.links)
        return (container_id, netns, ip, veth, *[world.new_mac() for _ in range(self.macs)])

    def replay(self, world, root, params: tuple) -> dict:
        """Make what the run made, with ``params``; returns the plugin's result."""
        self._fill(params)
        ns, link, result, files = self._load(self.blob)
        world.namespaces[ns.key] = ns
        base = root.next_ifindex
        link.ifindex = base + self.offset
        root.next_ifindex = base + 1
        root.links[link.name] = link
        tree = world.files[self.node]
        for path, content in files:
            tree[path] = content
        return result

    def ops(self, params: tuple) -> list:
        self._fill(params)
        return self._load(self.ops_blob)


class Deferred:
    """A replayed run's Ops, made when asked for."""

    __slots__ = ("template", "params")

    def __init__(self, template: Template, params: tuple):
        self.template, self.params = template, params

    def ops(self) -> list:
        return self.template.ops(self.params)
