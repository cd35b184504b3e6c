"""Small topologies built from Ops, for dataplane tests that do not depend on
the command parser."""

from __future__ import annotations

from netlab import ops as O
from netlab.backends.model import ModelBackend


def host() -> ModelBackend:
    b = ModelBackend()
    b.apply(O.AddNode("host"))
    return b


def netns(b: ModelBackend, name: str, lo_up: bool = True) -> str:
    b.apply(O.AddNetns("host", name))
    if lo_up:
        b.apply(O.SetLinkUp(f"host/{name}", "lo", True))
    return f"host/{name}"


def veth(b: ModelBackend, a_ns: str, a: str, b_ns: str, bname: str, *,
         a_ip: str | None = None, b_ip: str | None = None, up: bool = True) -> None:
    b.apply(O.AddLink(a_ns, a, "veth", peer=bname, peer_netns=b_ns))
    for ns, dev, ip in ((a_ns, a, a_ip), (b_ns, bname, b_ip)):
        if ip:
            addr, _, plen = ip.partition("/")
            b.apply(O.AddAddress(ns, dev, addr, int(plen or 32)))
        if up:
            b.apply(O.SetLinkUp(ns, dev, True))


def pair() -> ModelBackend:
    """red 192.168.15.1/24 <-veth-> blue 192.168.15.2/24."""
    b = host()
    netns(b, "red")
    netns(b, "blue")
    veth(b, "host/red", "veth-red", "host/blue", "veth-blue",
         a_ip="192.168.15.1/24", b_ip="192.168.15.2/24")
    return b


def bridge_with(names: list[str], host_ip: str | None = "192.168.15.5/24") -> ModelBackend:
    """v-net-0 on the host, one namespace per name at 192.168.15.(i+1)."""
    b = host()
    b.apply(O.AddLink("host/root", "v-net-0", "bridge"))
    b.apply(O.SetLinkUp("host/root", "v-net-0", True))
    if host_ip:
        ip, _, plen = host_ip.partition("/")
        b.apply(O.AddAddress("host/root", "v-net-0", ip, int(plen)))
    for i, name in enumerate(names, start=1):
        ns = netns(b, name)
        port = f"veth-{name}-br"
        veth(b, ns, f"veth-{name}", "host/root", port, a_ip=f"192.168.15.{i}/24")
        b.apply(O.SetLinkMaster("host/root", port, "v-net-0"))
    return b


def router(forwarding: bool = True) -> ModelBackend:
    """h1 10.0.1.2 — (10.0.1.1) r (10.0.2.1) — h2 10.0.2.2, default routes on both hosts."""
    b = host()
    for name in ("h1", "r", "h2"):
        netns(b, name)
    veth(b, "host/h1", "eth0", "host/r", "eth1", a_ip="10.0.1.2/24", b_ip="10.0.1.1/24")
    veth(b, "host/h2", "eth0", "host/r", "eth2", a_ip="10.0.2.2/24", b_ip="10.0.2.1/24")
    b.apply(O.AddRoute("host/h1", "default", gateway="10.0.1.1"))
    b.apply(O.AddRoute("host/h2", "default", gateway="10.0.2.1"))
    if forwarding:
        b.apply(O.SetSysctl("host/r", "net.ipv4.ip_forward", "1"))
    return b
