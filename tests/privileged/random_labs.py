"""Small random labs for the random twin test: 2-4 namespaces on one host, veth pairs,
maybe a bridge in the host's root namespace, addresses from a few subnets, routes
(default ones too), ip_forward, a few iptables filter and nat rules, listeners, and
probes written as `reach` expectations. Everything is drawn from one random.Random, so a
seed gives the same lab every time. Commands are typed as a learner types them; some
are wrong on purpose (a gateway that is not on a connected network), and both backends
must refuse the same ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("a", "b", "c", "d")


@dataclass
class RandomLab:
    name: str
    lines: list[str]
    probes: list[tuple[str, str, str, int | None]]     # from, to, proto, port

    def yaml(self, lines: list[str] | None = None) -> str:
        body = "\n".join(f"      {line}" for line in (self.lines if lines is None else lines))
        expect = "\n".join(
            f"      - reach: {{from: {src}, to: {dst}, proto: {proto}"
            + (f", port: {port}" if port is not None else "") + "}"
            for src, dst, proto, port in self.probes)
        return (f"netlab: 1\nname: {self.name}\ntitle: a random twin\nsteps:\n"
                f"  - title: random\n    on_error: continue\n    run: |\n{body}\n"
                f"    expect:\n{expect}\n")


def random_lab(rng: random.Random, name: str) -> RandomLab:
    names = list(NAMES[:rng.randint(2, 4)])
    lines = [f"ip netns add {n}" for n in names]
    addrs: dict[str, list[tuple[str, str, str]]] = {n: [] for n in names}   # ns -> (ip, dev, subnet)
    addrs["host"] = []
    links: list[tuple[str, str, str]] = []           # (ns, dev, subnet) of every IP end
    subnet_no = 0

    def address(ns: str, dev: str, subnet: str, host: int) -> None:
        if rng.random() < 0.06:                      # a /32: no connected route
            ip, plen = f"{subnet}.{host}", 32
        elif rng.random() < 0.05:                    # on the wrong network
            ip, plen = f"10.{rng.randint(1, 4)}.0.{host}", 24
        else:
            ip, plen = f"{subnet}.{host}", 24
        where = f"ip -n {ns} " if ns != "host" else "ip "
        lines.append(f"{where}addr add {ip}/{plen} dev {dev}")
        addrs[ns].append((ip, dev, subnet))

    def up(ns: str, dev: str, p: float = 0.93) -> None:
        if rng.random() < p:
            where = f"ip -n {ns} " if ns != "host" else "ip "
            lines.append(f"{where}link set {dev} up")

    # veth pairs: each namespace after the first is joined to an earlier one
    for j in range(1, len(names)):
        x, y = names[rng.randrange(j)], names[j]
        subnet_no += 1
        subnet = f"10.{subnet_no}.0"
        lines += [f"ip link add {x}{y} type veth peer name {y}{x}",
                  f"ip link set {x}{y} netns {x}", f"ip link set {y}{x} netns {y}"]
        address(x, f"{x}{y}", subnet, 1)
        address(y, f"{y}{x}", subnet, 2)
        up(x, f"{x}{y}")
        up(y, f"{y}{x}")
        links += [(x, f"{x}{y}", subnet), (y, f"{y}{x}", subnet)]
    # a bridge in the host's root namespace joining some of them
    if rng.random() < 0.4:
        members = rng.sample(names, rng.randint(2, len(names)))
        lines += ["ip link add br0 type bridge", "ip link set br0 up"]
        for k, n in enumerate(members, 1):
            lines += [f"ip link add {n}br type veth peer name br{n}",
                      f"ip link set {n}br netns {n}", f"ip link set br{n} master br0"]
            address(n, f"{n}br", "10.9.0", 10 + k)
            up(n, f"{n}br")
            up("host", f"br{n}", 0.95)
            links.append((n, f"{n}br", "10.9.0"))
        if rng.random() < 0.5:
            address("host", "br0", "10.9.0", 254)
            links.append(("host", "br0", "10.9.0"))
    for n in names:
        if rng.random() < 0.85:
            lines.append(f"ip -n {n} link set lo up")
    for n in names:
        if rng.random() < 0.5:
            lines.append(f"ip netns exec {n} sysctl -w net.ipv4.ip_forward=1")
    if rng.random() < 0.2:
        lines.append("sysctl -w net.ipv4.ip_forward=1")
    # routes through a neighbour on a link of the namespace (sometimes a wrong gateway)
    for n in names:
        mine = [l for l in links if l[0] == n]
        if not mine:
            continue
        for kind in ("default", "specific"):
            if rng.random() >= (0.6 if kind == "default" else 0.3):
                continue
            _, dev, subnet = rng.choice(mine)
            peers = [ip for other, items in addrs.items() if other != n
                     for ip, _d, s in items if s == subnet]
            if rng.random() < 0.1 or not peers:
                gw = f"10.{rng.randint(5, 7)}.0.1"               # not on any link
            else:
                gw = rng.choice(peers)
            dst = "default" if kind == "default" else f"10.{rng.randint(1, 9)}.0.0/24"
            lines.append(f"ip -n {n} route add {dst} via {gw}")
    all_ips = sorted({ip for items in addrs.values() for ip, _d, _s in items})
    # iptables, now and then
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        n = rng.choice(names + ["host"])
        lines.append(_iptables(rng, n, all_ips, links))
    # listeners
    for n in names:
        if rng.random() < 0.6:
            lines.append(f"ip netns exec {n} nc -l -p 80 &")
        if rng.random() < 0.4:
            lines.append(f"ip netns exec {n} nc -l -u -p 53 &")
    sources = names + (["host"] if addrs["host"] else [])
    targets = all_ips + ["10.1.0.77"]
    probes = []
    for _ in range(8):
        proto, port = rng.choice((("icmp", None), ("icmp", None), ("icmp", None),
                                  ("tcp", 80), ("tcp", 80), ("tcp", 8080),
                                  ("udp", 53), ("udp", 53)))
        probes.append((rng.choice(sources), rng.choice(targets), proto, port))
    return RandomLab(name, lines, list(dict.fromkeys(probes)))


def _iptables(rng: random.Random, ns: str, ips: list[str], links) -> str:  # type: ignore[no-untyped-def]
    prefix = f"ip netns exec {ns} " if ns != "host" else ""
    ip = rng.choice(ips) if ips else "10.1.0.1"
    subnet = ip.rsplit(".", 1)[0] + ".0/24"
    if rng.random() < 0.35:                                    # nat
        if rng.random() < 0.55:
            chain = rng.choice(("PREROUTING", "OUTPUT"))
            return (f"{prefix}iptables -t nat -A {chain} -p tcp --dport 8080 -j DNAT "
                    f"--to-destination {ip}:80")
        devs = [dev for n, dev, _s in links if n == ns]
        out = f" -o {rng.choice(devs)}" if devs and rng.random() < 0.5 else ""
        return f"{prefix}iptables -t nat -A POSTROUTING -s {subnet}{out} -j MASQUERADE"
    if rng.random() < 0.15:
        return f"{prefix}iptables -P {rng.choice(('INPUT', 'FORWARD', 'OUTPUT'))} DROP"
    chain = rng.choice(("INPUT", "FORWARD", "OUTPUT"))
    match = rng.choice(("", "-p icmp ", "-p tcp --dport 80 ", "-p udp --dport 53 ",
                        f"-s {subnet} ", f"-d {ip}/32 ",
                        "-m conntrack --ctstate RELATED,ESTABLISHED "))
    target = rng.choice(("DROP", "ACCEPT", "REJECT"))
    if target == "REJECT" and match.startswith("-p tcp") and rng.random() < 0.5:
        target = "REJECT --reject-with tcp-reset"
    elif target == "REJECT" and rng.random() < 0.3:
        target = "REJECT --reject-with " + rng.choice(("icmp-host-unreachable",
                                                         "icmp-net-unreachable",
                                                         "icmp-host-prohibited",
                                                         "icmp-admin-prohibited"))
    verb = rng.choice(("-A", "-I"))
    return f"{prefix}iptables {verb} {chain} {match}-j {target}"
