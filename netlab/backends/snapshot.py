"""snapshot: read a real kernel back into a World.

    world = snapshot_netns("red")            # one namespace: a node called red
    world = snapshot_namespaces(["red", "blue", "host-ns"])   # several, veths joined
    world = snapshot_host()                  # the machine's own namespace, read only

Each namespace read becomes a node named after it (the hostname for the
machine's own), whose root namespace is what was read: links (kind, admin
state, MTU, MAC, master, veth peer), IPv4 addresses, the routes of table main,
neighbours, the sysctls netlab models (per device too), the iptables tables
(``iptables-save``, loaded with netlab.netfilter.restore.apply_restore) and the
listening sockets (``ss -Hltun4``).

Two layers: ``read_raw`` runs the tools (argument lists, no shell) and keeps
what they printed in a RawNetns; ``build_world`` turns RawNetns values into a
World with pure functions, so the parsing is tested on recorded output
without root (tests/data/snapshot/).

A veth whose peer is in a namespace that is not part of the snapshot keeps
``peer_netns``/``peer_name`` None: the model sees it as a cable with nothing
plugged in at the other end (no carrier, ARP gets no answer), since the
engine has no ``exited`` verdict yet. Snapshot both namespaces to trace across.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from netlab.errors import CommandError, NetlabError
from netlab.model import ROOT, Address, Link, Listener, Neighbour, Netns, Route, World, ns_key
from netlab.model.sysctl import (
    DEVICE_KEYS, NEIGH_KEYS, NETNS_DEFAULTS, NODE_ONLY_DEFAULTS, device_key, key_from_proc,
    proc_path,
)

TIMEOUT = 20.0


@dataclass
class RawNetns:
    """What the tools printed for one namespace (text as printed; None: not read)."""
    name: str                      # the real namespace name ("" for the machine's own)
    links: str                     # ip -json -details link show
    addresses: str                 # ip -4 -json addr show
    routes: str                    # ip -4 -json -details route show table main
    neighbours: str                # ip -4 -json neigh show
    nsids: str = "[]"              # ip -json netns list-id
    sysctls: str = ""              # grep -sH ^ /proc/sys/... (path:value per line)
    iptables: str | None = None    # iptables-save
    listeners: str | None = None   # ss -Hltun4

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RawNetns":
        try:
            return cls(**data)
        except TypeError as exc:
            raise CommandError(f"not a recorded namespace: {exc}") from None


# --- pure parsers ------------------------------------------------------------------------------

def parse_json(text: str, what: str) -> list[dict[str, Any]]:
    """The JSON list ``ip -json`` prints; an empty output is an empty list."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{what}: malformed JSON output ({exc.msg} at line {exc.lineno} "
                           f"column {exc.colno})") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise CommandError(f"{what}: expected a JSON list of objects, got {type(data).__name__}")
    return data


def _field(entry: dict[str, Any], key: str, what: str) -> Any:
    if key not in entry:
        raise CommandError(f"{what}: an entry has no '{key}': {json.dumps(entry)[:120]}")
    return entry[key]


def link_kind(entry: dict[str, Any]) -> str:
    """loopback | veth | bridge | dummy | another rtnetlink kind (vxlan, …) | ether (a NIC)."""
    if entry.get("link_type") == "loopback":
        return "loopback"
    kind = (entry.get("linkinfo") or {}).get("info_kind")
    if kind:
        return str(kind)
    return str(entry.get("link_type") or "ether")


@dataclass
class PeerRef:
    """Where a veth's other end is, as ``ip`` says: by name when it is in the same
    namespace (``link``), else an ifindex in the namespace with that netns id."""
    ifindex: int | None
    netnsid: int | None
    name: str | None = None


def parse_links(text: str) -> tuple[dict[str, Link], dict[str, PeerRef]]:
    """``ip -json -details link show`` -> links by name, and veth peer references."""
    what = "ip -json -details link show"
    links: dict[str, Link] = {}
    peers: dict[str, PeerRef] = {}
    for entry in parse_json(text, what):
        name = str(_field(entry, "ifname", what))
        kind = link_kind(entry)
        flags = entry.get("flags") or []
        links[name] = Link(
            name=name, kind=kind, ifindex=int(_field(entry, "ifindex", what)),
            mac=str(entry.get("address") or "00:00:00:00:00:00"),
            mtu=int(entry.get("mtu", 1500)), up="UP" in flags,
            master=entry.get("master"))
        if kind == "veth" and entry.get("link"):
            peers[name] = PeerRef(None, None, str(entry["link"]))
        elif kind == "veth" and "link_index" in entry:
            nsid = entry.get("link_netnsid")
            peers[name] = PeerRef(int(entry["link_index"]), int(nsid) if nsid is not None else None)
    return links, peers


def parse_addresses(text: str) -> dict[str, list[Address]]:
    """``ip -4 -json addr show`` -> IPv4 addresses by device, in the kernel's order."""
    what = "ip -4 -json addr show"
    out: dict[str, list[Address]] = {}
    for entry in parse_json(text, what):
        name = str(_field(entry, "ifname", what))
        for info in entry.get("addr_info") or []:
            if info.get("family", "inet") != "inet" or "local" not in info:
                continue
            out.setdefault(name, []).append(
                Address(str(info["local"]), int(info.get("prefixlen", 32)), info.get("broadcast")))
    return out


def normal_dst(dst: str) -> str:
    if dst == "default":
        return dst
    return dst if "/" in dst else f"{dst}/32"


def parse_routes(text: str) -> list[Route]:
    """``ip -4 -json -details route show table main`` -> Routes. A multipath route keeps its
    first next hop (the model has no multipath)."""
    what = "ip -4 -json route show table main"
    routes = []
    for entry in parse_json(text, what):
        hop = entry
        if "nexthops" in entry and entry["nexthops"]:
            hop = {**entry, **entry["nexthops"][0]}
        flags = hop.get("flags") or []
        routes.append(Route(
            dst=normal_dst(str(_field(entry, "dst", what))),
            dev=hop.get("dev"), gateway=hop.get("gateway"), src=entry.get("prefsrc"),
            metric=int(entry.get("metric", 0)), proto=str(entry.get("protocol", "boot")),
            scope=str(entry.get("scope", "global")), type=str(entry.get("type", "unicast")),
            onlink="onlink" in flags))
    return routes


def parse_neighbours(text: str) -> list[Neighbour]:
    """``ip -4 -json neigh show`` -> Neighbours (no lladdr: FAILED / INCOMPLETE)."""
    what = "ip -4 -json neigh show"
    out = []
    for entry in parse_json(text, what):
        state = entry.get("state") or ["NONE"]
        out.append(Neighbour(ip=str(_field(entry, "dst", what)), dev=str(_field(entry, "dev", what)),
                             mac=entry.get("lladdr"),
                             state=str(state[0] if isinstance(state, list) else state)))
    return out


def parse_nsids(text: str) -> dict[int, str]:
    """``ip -json netns list-id`` -> netns id -> namespace name (named ones only)."""
    return {int(e["nsid"]): str(e["name"]) for e in parse_json(text, "ip -json netns list-id")
            if "nsid" in e and e.get("name")}


def parse_sysctls(text: str) -> dict[str, str]:
    """``grep -sH ^ /proc/sys/…`` lines (``path:value``) -> sysctl key -> value."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        key = key_from_proc(path) if sep else None
        if key is None:
            raise CommandError(f"sysctl read: unexpected line '{line[:80]}'")
        out[key] = value
    return out


def parse_listeners(text: str) -> list[Listener]:
    """``ss -Hltun4`` -> Listeners: ``tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*``."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[0] not in ("tcp", "udp"):
            continue
        local = words[4]
        addr, _, port = local.rpartition(":")
        addr = addr.split("%", 1)[0]
        if addr in ("*", ""):
            addr = "0.0.0.0"
        if not port.isdigit():
            continue
        listener = Listener(words[0], int(port), addr)
        if listener not in out:
            out.append(listener)
    return out


def sysctl_paths(link_names: list[str]) -> list[str]:
    """The /proc/sys files of the sysctls netlab models, for a namespace with these links."""
    keys = list(NETNS_DEFAULTS) + list(NODE_ONLY_DEFAULTS)
    for dev in link_names:
        keys += [f"net.ipv4.conf.{dev}.{leaf}" for leaf in DEVICE_KEYS]
        keys += [f"net.ipv4.neigh.{dev}.{leaf}" for leaf in NEIGH_KEYS]
    return [proc_path_of(k) for k in keys]


def proc_path_of(key: str) -> str:
    per_dev = device_key(key)
    if per_dev is None:
        return proc_path(key)
    dev, leaf = per_dev
    section = "neigh" if leaf.startswith("neigh.") else "conf"
    return f"/proc/sys/net/ipv4/{section}/{dev}/{leaf.removeprefix('neigh.')}"


# --- building the World -------------------------------------------------------------------------

def build_netns(raw: RawNetns, node: str) -> tuple[Netns, dict[str, PeerRef]]:
    """One namespace from what the tools printed (veth peers still unresolved)."""
    links, peers = parse_links(raw.links)
    for dev, addrs in parse_addresses(raw.addresses).items():
        if dev in links:
            links[dev].addresses = addrs
    ns = Netns(node=node, name=ROOT, kind="node", links=links,
               routes=parse_routes(raw.routes), neighbours=parse_neighbours(raw.neighbours),
               next_ifindex=max((l.ifindex for l in links.values()), default=0) + 1)
    ns.main_table = bool(ns.routes)
    for key, value in parse_sysctls(raw.sysctls).items():
        per_dev = device_key(key)
        if per_dev is None:
            ns.sysctls[key] = value
        elif per_dev[0] in links:
            links[per_dev[0]].conf[per_dev[1]] = value
    if raw.listeners:
        ns.listeners = parse_listeners(raw.listeners)
    if raw.iptables and raw.iptables.strip():
        from netlab.netfilter.restore import apply_restore
        label = raw.name or node
        try:
            apply_restore(ns, raw.iptables)
        except NetlabError as exc:
            raise CommandError(f"{label}: iptables-save: {exc}") from None
    return ns, peers


def build_world(raws: dict[str, RawNetns], name: str = "snapshot") -> World:
    """A World of one node per namespace read (node name -> RawNetns). A veth's peer is
    joined when it is in one of these namespaces, otherwise left None."""
    world = World(name=name)
    peer_refs: dict[str, dict[str, PeerRef]] = {}
    by_real: dict[str, str] = {}
    for node, raw in raws.items():
        ns, peer_refs[node] = build_netns(raw, node)
        world.nodes.append(node)
        world.namespaces[ns.key] = ns
        if raw.name:
            by_real[raw.name] = node
    for node, raw in raws.items():
        ns = world.namespaces[ns_key(node)]
        nsids = parse_nsids(raw.nsids)
        for dev, ref in peer_refs[node].items():
            if ref.netnsid is None:
                peer_node = node
            else:
                peer_node = by_real.get(nsids.get(ref.netnsid, ""))
            if peer_node is None:
                continue
            peer_ns = world.namespaces[ns_key(peer_node)]
            peer = peer_ns.links.get(ref.name) if ref.name is not None else \
                next((l for l in peer_ns.links.values() if l.ifindex == ref.ifindex), None)
            if peer is not None:
                link = ns.links[dev]
                link.peer_netns, link.peer_name = peer_ns.key, peer.name
    return world


# --- reading a kernel ------------------------------------------------------------------------------

def _run(argv: list[str], what: str, ok_status: tuple[int, ...] = (0,)) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except FileNotFoundError:
        raise CommandError(f"{argv[0]} not found (install iproute2)", status=2) from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"{what}: no answer after {TIMEOUT:.0f} s", status=2) from None
    if done.returncode not in ok_status:
        err = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise CommandError(f"{what}: {err}", status=2)
    return done.stdout


def check_can_read(host: bool = False) -> None:
    """Root and iproute2 are needed (entering a namespace and iptables-save need root)."""
    if shutil.which("ip") is None:
        raise CommandError("snapshot needs the ip command: apt-get install iproute2", status=2)
    if os.geteuid() != 0:
        where = "the machine's namespace" if host else "a network namespace"
        raise CommandError(f"snapshot needs root to read {where} (try sudo)", status=2)


def real_namespaces() -> list[str]:
    return [e["name"] for e in parse_json(_run(["ip", "-json", "netns", "list"], "ip netns list"),
                                          "ip -json netns list") if "name" in e]


def read_raw(netns: str | None) -> RawNetns:
    """Run the tools in namespace ``netns`` (None: the machine's own, read only)."""
    ip = ["ip"] if netns is None else ["ip", "-n", netns]
    inside = [] if netns is None else ["ip", "netns", "exec", netns]
    label = netns or "host"
    links = _run(ip + ["-json", "-details", "link", "show"], f"{label}: ip link")
    raw = RawNetns(
        name=netns or "",
        links=links,
        addresses=_run(ip + ["-4", "-json", "addr", "show"], f"{label}: ip addr"),
        routes=_run(ip + ["-4", "-json", "-details", "route", "show", "table", "main"],
                    f"{label}: ip route"),
        neighbours=_run(ip + ["-4", "-json", "neigh", "show"], f"{label}: ip neigh"),
        nsids=_run(ip + ["-json", "netns", "list-id"], f"{label}: ip netns list-id"),
    )
    names = list(parse_links(links)[0])
    # grep exits 2 when some files are missing (a key the kernel lacks): what exists is printed.
    raw.sysctls = _run(inside + ["grep", "-sH", "^", *sysctl_paths(names)], f"{label}: sysctls",
                       ok_status=(0, 1, 2))
    if shutil.which("iptables-save") is None:
        raise CommandError("snapshot needs iptables-save: apt-get install iptables", status=2)
    raw.iptables = _run(inside + ["iptables-save"], f"{label}: iptables-save")
    if shutil.which("ss") is not None:
        raw.listeners = _run(inside + ["ss", "-Hltun4"], f"{label}: ss")
    return raw


def snapshot_namespaces(names: list[str] | dict[str, str]) -> World:
    """Several namespaces into one World: a list of real names (each node named after its
    namespace), or node name -> real name."""
    check_can_read()
    mapping = dict(names) if isinstance(names, dict) else {n: n for n in names}
    if not mapping:
        raise CommandError("snapshot: no namespace given", status=2)
    known = set(real_namespaces())
    for real in mapping.values():
        if real not in known:
            raise CommandError(f"no network namespace called '{real}' (see ip netns list)",
                               status=2)
    return build_world({node: read_raw(real) for node, real in mapping.items()})


def snapshot_netns(name: str) -> World:
    """One namespace: a node named after it whose root namespace is what was read."""
    return snapshot_namespaces([name])


def snapshot_host() -> World:
    """The machine's own namespace (read only): a node named after the hostname."""
    check_can_read(host=True)
    return build_world({socket.gethostname() or "host": read_raw(None)})


__all__ = ["RawNetns", "build_netns", "build_world", "parse_addresses", "parse_json",
           "parse_links", "parse_listeners", "parse_neighbours", "parse_nsids", "parse_routes",
           "parse_sysctls", "read_raw", "snapshot_host", "snapshot_namespaces", "snapshot_netns",
           "sysctl_paths"]
