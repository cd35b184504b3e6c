"""``ping``, ``nc``, ``curl`` and ``traceroute``: a trace, printed as the tool prints it.

Each probe runs netlab.dataplane.trace and reads the outcome the way the
program would observe it. Nothing waits: a lab must not hang, so ``ping``
sends one packet unless ``-c`` says otherwise, and timeouts are reported at
once with the time the real tool would have waited. Round-trip times are
made up (a few tens of microseconds per hop).

Waits that matter for what is printed: an ARP that gets no answer fails
after 3 × net.ipv4.neigh.default.retrans_time_ms, so "Destination Host
Unreachable" (or EHOSTUNREACH) appears only when the tool waits longer than
that (``ping -W``, ``nc -w``, ``curl -m``, ``traceroute -w``).

curl: a listener that accepts the connection counts as a web server; the
body printed is one line, ``netlab: connected to IP:PORT``, and ``-w
'%{http_code}'`` prints 200. ICMP rate limiting is not modelled: every probe
that provokes an ICMP error gets one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from netlab import ops as O
from netlab.commands.base import Command, Ctx, Output, unsupported_feature
from netlab.commands.inet import parse_ipv4
from netlab.errors import CommandError
from netlab.model import Netns, World
from netlab.trace import REFUSED, SUCCESS, TIMEOUT, UNREACHABLE, HOST_UNREACHABLE, Path, Trace

SERVICES = {
    ("tcp", 20): "ftp-data", ("tcp", 21): "ftp", ("tcp", 22): "ssh", ("tcp", 23): "telnet",
    ("tcp", 25): "smtp", ("tcp", 53): "domain", ("udp", 53): "domain", ("udp", 67): "bootps",
    ("udp", 68): "bootpc", ("udp", 69): "tftp", ("tcp", 80): "http", ("tcp", 110): "pop3",
    ("udp", 123): "ntp", ("tcp", 143): "imap2", ("udp", 161): "snmp", ("tcp", 179): "bgp",
    ("tcp", 389): "ldap", ("tcp", 443): "https", ("udp", 443): "https", ("udp", 514): "syslog",
    ("tcp", 636): "ldaps", ("tcp", 873): "rsync", ("tcp", 993): "imaps", ("tcp", 995): "pop3s",
    ("tcp", 2379): "etcd-client", ("tcp", 2380): "etcd-server", ("tcp", 3306): "mysql",
    ("tcp", 5432): "postgresql", ("tcp", 6443): "sun-sr-https", ("tcp", 8080): "http-alt",
    ("udp", 8080): "http-alt", ("tcp", 8443): "pcsync-https", ("udp", 4789): "*",
}

ICMP_TEXT = {
    (3, 0): "Destination Net Unreachable", (3, 1): "Destination Host Unreachable",
    (3, 2): "Destination Protocol Unreachable", (3, 3): "Destination Port Unreachable",
    (3, 9): "Destination Net Prohibited", (3, 10): "Destination Host Prohibited",
    (3, 13): "Packet filtered", (11, 0): "Time to live exceeded",
}
TRACEROUTE_MARK = {(3, 0): " !N", (3, 1): " !H", (3, 2): " !P", (3, 9): " !N", (3, 10): " !H",
                   (3, 13): " !X"}
ERRNO_TEXT = {(3, 0): "Network is unreachable", (3, 1): "No route to host",
              (3, 9): "Network is unreachable", (3, 10): "No route to host",
              (3, 13): "No route to host"}


# --- option parsing (getopt-style: -c1, -c 1, -qc1) ---------------------------------------

def getopt(words: list[str], with_value: str, flags: str, tool: str,
           long: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--":
            rest += words[i + 1:]
            break
        if w.startswith("--") and long is not None:
            name, eq, value = w[2:].partition("=")
            if name not in long:
                raise CommandError(f"{tool}: unrecognized option '{w}'", status=2)
            letter = long[name]
            if letter in with_value:
                if not eq:
                    i += 1
                    if i >= len(words):
                        raise CommandError(f"{tool}: option '{w}' requires an argument", status=2)
                    value = words[i]
                opts[letter] = value
            else:
                opts[letter] = ""
            i += 1
            continue
        if w.startswith("-") and len(w) > 1:
            j = 1
            while j < len(w):
                c = w[j]
                if c in with_value:
                    value = w[j + 1:]
                    if not value:
                        i += 1
                        if i >= len(words):
                            raise CommandError(f"{tool}: option requires an argument -- '{c}'",
                                               status=2)
                        value = words[i]
                    opts[c] = value
                    break
                if c not in flags:
                    raise CommandError(f"{tool}: invalid option -- '{c}'", status=2)
                opts[c] = ""
                j += 1
            i += 1
            continue
        rest.append(w)
        i += 1
    return opts, rest


def _number(value: str, tool: str, *, integer: bool = False) -> float:
    try:
        n = int(value) if integer else float(value)
    except ValueError:
        raise CommandError(f"{tool}: invalid argument: '{value}'", status=2) from None
    if n < 0:
        raise CommandError(f"{tool}: invalid argument: '{value}'", status=2)
    return n


# --- running a trace ------------------------------------------------------------------------

def run_trace(world: World, key: str, dst: str, **kwargs: Any) -> Trace:
    from netlab.dataplane import trace
    return trace(world, key, dst, **kwargs)


def main_path(tr: Trace) -> Path | None:
    if not tr.paths:
        return None
    outcome = tr.outcome
    candidates = [p for p in tr.paths if p.outcome == outcome] or tr.paths
    return max(candidates, key=lambda p: p.probability)


def icmp_answer(path: Path) -> tuple[tuple[int, int], str] | None:
    """The ICMP error that came back (type, code) and who sent it."""
    reply = path.reply
    if reply is None or reply.verdict != "delivered":
        return None
    pkt = reply.packet_out
    if pkt.proto != "icmp" or pkt.icmp_type not in (3, 11):
        return None
    return (pkt.icmp_type, pkt.icmp_code or 0), pkt.src or "?"


def arp_wait(world: World, path: Path) -> float:
    """Seconds until a failed ARP gives up, in the namespace that tried."""
    for hop in reversed(path.hops):
        if hop.event == "arp":
            ns = world.namespaces.get(f"{hop.node}/{hop.netns}")
            if ns is not None:
                ms = ns.sysctls.get("net.ipv4.neigh.default.retrans_time_ms", "1000")
                try:
                    return 3 * int(ms) / 1000
                except ValueError:
                    return 3.0
    return 3.0


def failed_arp(path: Path) -> bool:
    """A host-unreachable that needs an ARP timeout (locally or at a router)."""
    if path.verdict == HOST_UNREACHABLE:
        return True
    answer = icmp_answer(path)
    return answer is not None and answer[0] == (3, 1)


def hop_count(path: Path) -> int:
    return sum(1 for h in path.hops if h.event in ("veth", "forward", "bridge"))


def rtt(path: Path, probe: int = 0) -> float:
    hops = hop_count(path) + (hop_count(path.reply) if path.reply else 0)
    return 0.030 + 0.012 * hops + 0.001 * probe


# --- neighbour entries the probe left behind ----------------------------------------------

class NeighbourLog:
    """Neighbour entries an exchange creates, as the kernel's state machine does:
    the asker learns the answer (REACHABLE), the answerer learns the asker from
    the request (STALE) and turns that into DELAY when it sends back."""

    def __init__(self, world: World):
        self.world = world
        self.entries: dict[tuple[str, str, str], tuple[str | None, str]] = {}

    def _current(self, key: str, ip: str, dev: str) -> tuple[str | None, str] | None:
        if (key, ip, dev) in self.entries:
            return self.entries[(key, ip, dev)]
        ns = self.world.namespaces.get(key)
        if ns is None:
            return None
        for n in ns.neighbours:
            if n.ip == ip and n.dev == dev:
                return n.mac, n.state
        return None

    def walk(self, path: Path | None) -> None:
        while path is not None:
            for hop in path.hops:
                if hop.event == "arp" and hop.dev:
                    self._arp(hop, path)
            path = path.reply

    def _arp(self, hop: Any, path: Path) -> None:
        key = f"{hop.node}/{hop.netns}"
        extra = hop.extra or {}
        ip, mac = extra.get("ip"), extra.get("mac")
        if ip is None:
            return
        if mac is None:  # nobody answered
            current = self._current(key, ip, hop.dev)
            if current is None or current[1] != "PERMANENT":
                self.entries[(key, ip, hop.dev)] = (None, "FAILED")
            return
        current = self._current(key, ip, hop.dev)
        if current is not None and current[0] == mac and current[1] not in ("FAILED",
                                                                           "INCOMPLETE"):
            if current[1] == "STALE":
                self.entries[(key, ip, hop.dev)] = (mac, "DELAY")
            return
        self.entries[(key, ip, hop.dev)] = (mac, "REACHABLE")
        self._learned_by_target(key, hop.dev, ip, mac)

    def _learned_by_target(self, key: str, dev: str, target_ip: str, target_mac: str) -> None:
        asker = self.world.namespaces.get(key)
        if asker is None or dev not in asker.links:
            return
        link = asker.links[dev]
        sender_ip = _source_on(link, target_ip)
        if sender_ip is None:
            return
        for ns in self.world.namespaces.values():
            for other in ns.links.values():
                if other.mac == target_mac and any(a.ip == target_ip for a in other.addresses):
                    current = self._current(ns.key, sender_ip, other.name)
                    if current is None or current[0] != link.mac or current[1] in ("FAILED",
                                                                                   "INCOMPLETE"):
                        self.entries[(ns.key, sender_ip, other.name)] = (link.mac, "STALE")
                    return

    def ops(self) -> list[O.Op]:
        return [O.AddNeighbour(key, ip, dev, mac, state)
                for (key, ip, dev), (mac, state) in self.entries.items()]


def _source_on(link: Any, target: str) -> str | None:
    import ipaddress
    ip = ipaddress.IPv4Address(target)
    for addr in link.addresses:
        if ip in addr.network:
            return addr.ip
    return link.addresses[0].ip if link.addresses else None


# --- what the local stack says before anything is sent ------------------------------------

def local_error(world: World, ns: Netns, dst: str, src: str | None,
                oif: str | None) -> str | None:
    """connect()'s errno text when the namespace itself cannot send to ``dst``."""
    from netlab.dataplane.routing import route_get
    d = route_get(ns, dst, src=src, oif=oif)
    if d.kind == "none":
        return "Network is unreachable"
    if d.kind == "blackhole":
        return "Invalid argument"
    if d.kind == "unreachable":
        return "No route to host"
    if d.kind == "prohibit":
        return "Permission denied"
    return None


def is_broadcast(world: World, ns: Netns, dst: str) -> bool:
    from netlab.commands.show import broadcast_dev
    return dst == "255.255.255.255" or broadcast_dev(world, ns, dst) is not None


# --- ping --------------------------------------------------------------------------------

@dataclass
class PingArgs:
    dst: str
    count: int = 1
    wait: float = 10.0           # -W: how long to wait for a reply
    interval: float = 1.0
    ttl: int | None = None
    quiet: bool = False
    size: int = 56
    iface: str | None = None     # -I DEV
    src: str | None = None       # -I ADDR
    broadcast: bool = False


def parse_ping(words: list[str], ctx: Ctx) -> Command:
    opts, rest = getopt(words, "ciIlmMpQsStTwW", "46aAbBdDfhLnOqrRUvV", "ping")
    if "6" in opts:
        raise unsupported_feature("IPv6 (ping -6)")
    if "f" in opts:
        raise unsupported_feature("flood ping (ping -f)")
    if not rest:
        raise CommandError("ping: usage error: Destination address required", status=2)
    target = rest[-1]
    dst = parse_ipv4(target) if target.count(".") == 3 else None
    if dst is None:
        raise CommandError(f"ping: {target}: Name or service not known", status=2,
                           hint="netlab has no DNS: use an IP address")
    args = PingArgs(dst=dst)
    if "c" in opts:
        args.count = int(_number(opts["c"], "ping", integer=True))
        if args.count < 1:
            raise CommandError(f"ping: invalid argument: '{opts['c']}': out of range: "
                               "1 <= value <= 9223372036854775807", status=1)
        if args.count > 1000:
            raise unsupported_feature("more than 1000 pings in one command")
    if "W" in opts:
        args.wait = _number(opts["W"], "ping")
    elif "w" in opts:
        args.wait = _number(opts["w"], "ping")
    if "i" in opts:
        args.interval = _number(opts["i"], "ping")
    if "t" in opts:
        ttl = int(_number(opts["t"], "ping", integer=True))
        if not 1 <= ttl <= 255:
            raise CommandError(f"ping: invalid argument: '{opts['t']}': out of range: "
                               "0 <= value <= 255", status=1)
        args.ttl = ttl
    if "s" in opts:
        args.size = int(_number(opts["s"], "ping", integer=True))
    if "I" in opts:
        value = opts["I"]
        if parse_ipv4(value) is not None and value.count(".") == 3:
            args.src = parse_ipv4(value)
        else:
            args.iface = value
    args.quiet = "q" in opts
    args.broadcast = "b" in opts
    key = ctx.key

    def query(world: World) -> Output:
        return run_ping(world, key, args)
    return ctx.command(query=query, kind="probe")


def run_ping(world: World, key: str, a: PingArgs) -> Output:
    ns = world.namespaces[key]
    if a.iface is not None and a.iface not in ns.links:
        return Output("", 2, f"ping: SO_BINDTODEVICE {a.iface}: No such device")
    if is_broadcast(world, ns, a.dst) and not a.broadcast:
        msg = "ping: Do you want to ping broadcast? Then -b. If not, check your local firewall rules"
        return Output("", 2, msg)
    if a.broadcast:
        return Output("", 2, "netlab does not model broadcast pings")
    kwargs: dict[str, Any] = {"proto": "icmp", "src": a.src, "oif": a.iface}
    if a.ttl is not None:
        kwargs["ttl"] = a.ttl
    tr = run_trace(world, key, a.dst, **kwargs)
    path = main_path(tr)
    log = NeighbourLog(world)
    log.walk(path)
    if path is None:
        return Output("", 1, "ping: no path", traces=[tr])
    if path.outcome == UNREACHABLE and icmp_answer(path) is None and not failed_arp(path):
        why = local_error(world, ns, a.dst, a.src, a.iface) or "Network is unreachable"
        if why == "Permission denied":
            msg = ("ping: Do you want to ping broadcast? Then -b. If not, check your local "
                   "firewall rules")
        else:
            msg = f"ping: connect: {why}"
        return Output("", 2, msg, traces=[tr], ops=log.ops())
    src = tr.packet.src or "0.0.0.0"
    size = a.size
    via = f" from {src} {a.iface}:" if a.iface else ""
    lines = [f"PING {a.dst} ({a.dst}){via} {size}({size + 28}) bytes of data."]
    received = errors = 0
    times: list[float] = []
    answer = icmp_answer(path)
    for seq in range(1, a.count + 1):
        if path.outcome == SUCCESS:
            received += 1
            t = rtt(path, seq - 1)
            times.append(t)
            ttl = path.reply.packet_out.ttl if path.reply is not None else 64
            if not a.quiet:
                lines.append(f"{size + 8} bytes from {a.dst}: icmp_seq={seq} ttl={ttl} "
                             f"time={t:.3f} ms")
        elif answer is not None and not (failed_arp(path) and a.wait <= arp_wait(world, path)):
            errors += 1
            if not a.quiet:
                text = ICMP_TEXT.get(answer[0], f"ICMP type {answer[0][0]} code {answer[0][1]}")
                lines.append(f"From {answer[1]} icmp_seq={seq} {text}")
        elif failed_arp(path) and answer is None and a.wait > arp_wait(world, path):
            errors += 1
            if not a.quiet:
                lines.append(f"From {src} icmp_seq={seq} Destination Host Unreachable")
    loss = int(round(100 * (a.count - received) / a.count))
    elapsed = int((a.count - 1) * a.interval * 1000)
    err = f"+{errors} errors, " if errors else ""
    lines += ["", f"--- {a.dst} ping statistics ---",
              f"{a.count} packets transmitted, {received} received, {err}{loss}% packet loss, "
              f"time {elapsed}ms"]
    tail = []
    if times:
        avg = sum(times) / len(times)
        mdev = (sum((t - avg) ** 2 for t in times) / len(times)) ** 0.5
        tail.append(f"rtt min/avg/max/mdev = {min(times):.3f}/{avg:.3f}/{max(times):.3f}/"
                    f"{mdev:.3f} ms")
    if errors and failed_arp(path) and a.count > 1 and a.interval > 0:
        # Echo requests queue behind the ARP that fails: ping reports how many were in flight.
        pipe = min(a.count, int(arp_wait(world, path) / a.interval) + 1)
        if pipe > 1:
            tail.append(f"pipe {pipe}")
    lines.append(", ".join(tail))   # iputils ends the summary with one more line, maybe empty
    text = "\n".join(lines) + "\n"
    if received:
        return Output(text, 0, traces=[tr], ops=log.ops())
    summary = f"{a.count} packets transmitted, 0 received, {err}100% packet loss"
    return Output(text, 1, summary, traces=[tr], ops=log.ops())


# --- nc ----------------------------------------------------------------------------------

def parse_nc(words: list[str], ctx: Ctx) -> Command:
    opts, rest = getopt(words, "pswqiIOTVXxeMm", "46DdhklnNrStuvzCFU", "nc")
    proto = "udp" if "u" in opts else "tcp"
    if "l" in opts:
        return _listen(opts, rest, ctx, proto)
    if "U" in opts:
        raise unsupported_feature("unix sockets (nc -U)")
    if len(rest) < 2:
        raise CommandError("usage: nc [-46CDdFhklNnrStUuvZz] [-I length] [-i interval] "
                           "[-M ttl] [-m minttl] [-O length] [-P proxy_username] [-p source_port]"
                           " [-q seconds] [-s sourceaddr] [-T keyword] [-V rtable] [-W recvlimit]"
                           " [-w timeout] [-X proxy_protocol] [-x proxy_address[:port]] "
                           "[destination] [port]", status=1)
    host, port_text = rest[0], rest[1]
    dst = parse_ipv4(host) if host.count(".") == 3 else None
    if dst is None:
        raise CommandError(f'nc: getaddrinfo for host "{host}" port {port_text}: '
                           "Name or service not known", status=1,
                           hint="netlab has no DNS: use an IP address")
    port = _port(port_text, "nc")
    wait = _number(opts["w"], "nc") if "w" in opts else None
    verbose = "v" in opts
    src = opts.get("s")
    key = ctx.key

    def query(world: World) -> Output:
        return run_nc(world, key, dst, port, proto, wait, verbose, src)
    return ctx.command(query=query, kind="probe")


def _port(text: str, tool: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        if "-" in text:
            raise unsupported_feature("port ranges")
        raise CommandError(f"{tool}: port number invalid: {text}", status=1)
    return int(text)


def _listen(opts: dict[str, str], rest: list[str], ctx: Ctx, proto: str) -> Command:
    port_text = opts.get("p") or (rest[-1] if rest else None)
    if port_text is None:
        raise CommandError("nc: missing port with option -l", status=1)
    port = _port(port_text, "nc")
    addr = opts.get("s") or (rest[0] if len(rest) >= 2 else "0.0.0.0")
    if parse_ipv4(addr) is None or addr.count(".") != 3:
        raise CommandError("nc: getaddrinfo: Name or service not known", status=1)
    text = f"Listening on {addr} {port}\n" if "v" in opts else ""
    key = ctx.key

    def plan(world: World) -> list[O.Op]:
        # A real `nc -l` (without -k) exits after its first connection; netlab's
        # listener stays, so starting the same one again reuses it.
        ns = world.namespaces[key]
        if any(l.proto == proto and l.port == port and l.addr == addr for l in ns.listeners):
            return []
        return [O.AddListener(key, proto, port, addr)]
    return ctx.command(plan=plan, output=text, kind="listen")


def run_nc(world: World, key: str, dst: str, port: int, proto: str, wait: float | None,
           verbose: bool, src: str | None) -> Output:
    ns = world.namespaces[key]
    tr = run_trace(world, key, dst, proto=proto, dport=port, src=src)
    path = main_path(tr)
    log = NeighbourLog(world)
    log.walk(path)
    service = SERVICES.get((proto, port), "*")
    ok_line = f"Connection to {dst} {port} port [{proto}/{service}] succeeded!\n"

    def fail(reason: str, timed_out: bool = False) -> Output:
        verb = "timed out" if timed_out else "failed"
        msg = f"nc: connect to {dst} port {port} ({proto}) {verb}: {reason}"
        return Output("", 1, msg, traces=[tr], ops=log.ops())

    if path is None:
        return fail("Network is unreachable")
    local = path.outcome == UNREACHABLE and icmp_answer(path) is None and not failed_arp(path)
    if local:
        return fail(local_error(world, ns, dst, src, None) or "Network is unreachable")
    if proto == "udp":
        if path.outcome in (SUCCESS, TIMEOUT):
            return Output(ok_line if verbose else "", 0, traces=[tr], ops=log.ops())
        # netcat-openbsd: the ICMP error is seen only with -v; without it nc -zu exits 0.
        if not verbose:
            return Output("", 0, traces=[tr], ops=log.ops())
        return Output("", 1, f"nc: {dst} port {port} (udp) answered with ICMP port unreachable "
                             "(nc -zuv prints nothing)", traces=[tr], ops=log.ops())
    if path.outcome == SUCCESS:
        return Output(ok_line if verbose else "", 0, traces=[tr], ops=log.ops())
    if path.outcome == REFUSED:
        return fail("Connection refused")
    answer = icmp_answer(path)
    slow = failed_arp(path)
    limit = wait if wait is not None else 127.0
    if path.outcome == UNREACHABLE and (not slow or limit > arp_wait(world, path)):
        reason = ERRNO_TEXT.get(answer[0], "No route to host") if answer else "No route to host"
        return fail(reason)
    if wait is None:
        return fail("Connection timed out")
    return fail("Operation now in progress", timed_out=True)


# --- curl --------------------------------------------------------------------------------

_CURL_LONG = {"silent": "s", "show-error": "S", "max-time": "m", "output": "o",
              "write-out": "w", "head": "I", "include": "i", "verbose": "v", "fail": "f",
              "location": "L", "insecure": "k", "request": "X", "header": "H",
              "connect-timeout": "c", "data": "d", "user-agent": "A", "interface": "n",
              "noproxy": "x", "retry": "r", "http1.1": "1", "no-progress-meter": "P"}


@dataclass
class CurlArgs:
    ip: str
    port: int
    silent: bool = False
    show_error: bool = False
    max_time: float | None = None
    output: str | None = None
    write_out: str | None = None
    head: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def parse_curl(words: list[str], ctx: Ctx) -> Command:
    opts, rest = getopt(words, "mowXHcdAnxr", "sSIivfLk1P", "curl", long=_CURL_LONG)
    if not rest:
        raise CommandError("curl: no URL specified!", status=2)
    url = rest[0]
    scheme, sep, remainder = url.partition("://")
    if not sep:
        scheme, remainder = "http", url
    if scheme not in ("http", "https"):
        raise CommandError(f'curl: (1) Protocol "{scheme}" not supported', status=1)
    hostport = remainder.split("/", 1)[0].rsplit("@", 1)[-1]
    host, colon, port_text = hostport.partition(":")
    ip = parse_ipv4(host) if host.count(".") == 3 else None
    if ip is None:
        raise CommandError(f"curl: (6) Could not resolve host: {host}", status=6,
                           hint="netlab has no DNS: use an IP address")
    port = 443 if scheme == "https" else 80
    if colon:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise CommandError("curl: (3) URL rejected: Port number was not a decimal number "
                               "between 0 and 65535", status=3)
        port = int(port_text)
    a = CurlArgs(ip=ip, port=port, silent="s" in opts, show_error="S" in opts,
                 output=opts.get("o"), write_out=opts.get("w"), head="I" in opts)
    if "m" in opts:
        a.max_time = _number(opts["m"], "curl")
    if "c" in opts:
        a.max_time = min(a.max_time or 1e9, _number(opts["c"], "curl"))
    key = ctx.key
    src = None

    def query(world: World) -> Output:
        return run_curl(world, key, a, src)
    return ctx.command(query=query, kind="probe")


def run_curl(world: World, key: str, a: CurlArgs, src: str | None) -> Output:
    tr = run_trace(world, key, a.ip, proto="tcp", dport=a.port, src=src)
    path = main_path(tr)
    log = NeighbourLog(world)
    log.walk(path)
    loud = not a.silent or a.show_error

    def fail(code: int, msg: str) -> Output:
        text = f"curl: ({code}) {msg}"
        out = Output("", code, text, traces=[tr], ops=log.ops())
        if not loud:
            out.error = f"{text} (curl -s prints nothing)"
        return out

    couldnt = (f"Failed to connect to {a.ip} port {a.port} after {{}} ms: "
               "Couldn't connect to server")
    if path is None:
        return fail(7, couldnt.format(0))
    if path.outcome == SUCCESS:
        body = "" if a.output else ("HTTP/1.1 200 OK\n" if a.head else
                                    f"netlab: connected to {a.ip}:{a.port}\n")
        if a.write_out:
            body += a.write_out.replace("%{http_code}", "200").replace("\\n", "\n")
        return Output(body, 0, traces=[tr], ops=log.ops())
    if path.outcome == REFUSED:
        return fail(7, couldnt.format(0))
    slow = failed_arp(path)
    limit = a.max_time if a.max_time is not None else 300.0
    if path.outcome == UNREACHABLE and (not slow or limit > arp_wait(world, path)):
        waited = int(arp_wait(world, path) * 1000) if slow else 0
        return fail(7, couldnt.format(waited))
    if a.max_time is not None:
        return fail(28, f"Connection timed out after {int(a.max_time * 1000)} milliseconds")
    return fail(28, f"Failed to connect to {a.ip} port {a.port} after 130000 ms: "
                    "Couldn't connect to server")


# --- traceroute ----------------------------------------------------------------------------

def parse_traceroute(words: list[str], ctx: Ctx) -> Command:
    opts, rest = getopt(words, "fgiNmpqswtzMOVP", "46dFITUnreA", "traceroute")
    if not rest:
        raise CommandError("Specify \"host\" missing argument.", status=2)
    target = rest[0]
    dst = parse_ipv4(target) if target.count(".") == 3 else None
    if dst is None:
        raise CommandError(f"{target}: Name or service not known\nCannot handle \"host\" "
                           f"cmdline arg `{target}' on position 1 (argc 1)", status=2,
                           hint="netlab has no DNS: use an IP address")
    first = int(_number(opts.get("f", "1"), "traceroute", integer=True))
    max_ttl = int(_number(opts.get("m", "30"), "traceroute", integer=True))
    queries = int(_number(opts.get("q", "3"), "traceroute", integer=True))
    wait = _number(opts.get("w", "5"), "traceroute")
    if not 1 <= first <= max_ttl <= 255 or not 1 <= queries <= 10:
        raise CommandError("traceroute: invalid argument", status=2)
    proto = "icmp" if "I" in opts else ("tcp" if "T" in opts else "udp")
    base = int(_number(opts["p"], "traceroute", integer=True)) if "p" in opts else \
        (80 if proto == "tcp" else 33434)
    numeric = "n" in opts
    key = ctx.key

    def query(world: World) -> Output:
        return run_traceroute(world, key, dst, proto, base, first, max_ttl, queries, wait,
                              numeric)
    return ctx.command(query=query, kind="probe")


def run_traceroute(world: World, key: str, dst: str, proto: str, base: int, first: int,
                   max_ttl: int, queries: int, wait: float, numeric: bool) -> Output:
    ns = world.namespaces[key]
    lines = [f"traceroute to {dst} ({dst}), {max_ttl} hops max, 60 byte packets"]
    traces: list[Trace] = []
    log = NeighbourLog(world)
    why = local_error(world, ns, dst, None, None)
    if why is not None:
        first_trace = run_trace(world, key, dst, proto=proto, ttl=first,
                                dport=base if proto != "icmp" else None)
        text = "\n".join(lines) + "\n"
        return Output(text, 1, f"connect: {why}", traces=[first_trace])
    for ttl in range(first, max_ttl + 1):
        dport = None if proto == "icmp" else (base if proto == "tcp" else base + ttl - 1)
        tr = run_trace(world, key, dst, proto=proto, ttl=ttl, dport=dport)
        traces.append(tr)
        path = main_path(tr)
        log.walk(path)
        label = _hop_label(path, world, wait)
        if label is None:
            lines.append(f"{ttl:2d}  " + " ".join("*" * queries))
            continue
        addr, mark, done = label
        shown = addr if numeric else f"{addr} ({addr})"
        times = "  ".join(f"{rtt(path, q):.3f} ms{mark}" for q in range(queries))  # type: ignore[arg-type]
        lines.append(f"{ttl:2d}  {shown}  {times}")
        if done:
            break
    return Output("\n".join(lines) + "\n", 0, traces=traces, ops=log.ops())


def _hop_label(path: Path | None, world: World, wait: float) -> tuple[str, str, bool] | None:
    """(who answered, !mark, the trace is over) for one probe, or None for ``*``."""
    if path is None:
        return None
    if path.outcome in (SUCCESS, REFUSED):
        return path.packet_out.dst, "", True
    answer = icmp_answer(path)
    if answer is None:
        return None
    (kind, code), who = answer
    if kind == 11:
        return who, "", False
    if failed_arp(path) and wait <= arp_wait(world, path):
        return None
    if (kind, code) == (3, 3):
        return who, "", True
    return who, TRACEROUTE_MARK.get((kind, code), f" !<{code}>"), True
