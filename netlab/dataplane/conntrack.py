"""Connection tracking, one table per namespace, as nf_conntrack keeps it.

A connection has an original tuple (the first packet as it arrived) and a
reply tuple (what an answer looks like on the wire here); NAT changes the
reply tuple when the connection's first packet crosses a nat chain, and every
later packet of the connection is rewritten from the two tuples alone:

    manip SRC at POSTROUTING / INPUT, manip DST at PREROUTING / OUTPUT;
    a packet in direction D gets manip M when the connection has the NAT of
    that kind for D (SNAT for SRC / DNAT for DST in the original direction,
    the other way round in the reply direction), and the new address is taken
    from the tuple of the other direction (nf_nat_packet / nf_nat_manip_pkt).

An entry joins the table only when its first packet is confirmed (at
POSTROUTING or INPUT): a packet dropped before that leaves no entry. ICMP
errors about a tracked connection are RELATED to it (found through the packet
they quote), and NAT rewrites both their outer and their quoted header
(nf_nat_icmp_reply_translation). Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from netlab.model.netfilter import ConntrackEntry
from netlab.trace import Packet

# ctstate values, as -m conntrack --ctstate names them
NEW, ESTABLISHED, RELATED = "NEW", "ESTABLISHED", "RELATED"
INVALID, UNTRACKED = "INVALID", "UNTRACKED"
ORIGINAL, REPLY = "ORIGINAL", "REPLY"
SRC, DST = "SRC", "DST"            # manip types: source NAT (SNAT/MASQUERADE) or destination NAT

ICMP_ERRORS = {3, 4, 5, 11, 12}    # types that quote the packet they are about
ECHO_REQUEST, ECHO_REPLY = 8, 0


@dataclass(frozen=True)
class IcmpError(Packet):
    """An ICMP error and the header of the packet it is about (what conntrack and NAT
    look at to relate it to a connection)."""
    inner: Packet | None = None


class Tuple(NamedTuple):
    src: str
    sport: int | None
    dst: str
    dport: int | None

    def inverted(self) -> "Tuple":
        return Tuple(self.dst, self.dport, self.src, self.sport)

    def text(self) -> str:
        s = f"{self.src}:{self.sport}" if self.sport is not None else self.src
        d = f"{self.dst}:{self.dport}" if self.dport is not None else self.dst
        return f"{s} → {d}"


def other(direction: str) -> str:
    return REPLY if direction == ORIGINAL else ORIGINAL


def has_ports(proto: str) -> bool:
    return proto in ("tcp", "udp")


def packet_tuple(pkt: Packet) -> Tuple:
    if has_ports(pkt.proto):
        return Tuple(pkt.src or "0.0.0.0", pkt.sport, pkt.dst, pkt.dport)
    return Tuple(pkt.src or "0.0.0.0", None, pkt.dst, None)


def _key(proto: str, t: Tuple, echo: str | None) -> tuple:
    return (proto, t.src, t.sport, t.dst, t.dport, echo)


def _echo_kind(pkt: Packet) -> str | None:
    """ICMP echo tuples carry the type: a request and a reply between the same two
    addresses are different tuples (the reply tuple of a ping is type 0)."""
    if pkt.proto != "icmp":
        return None
    return "reply" if pkt.icmp_type == ECHO_REPLY else "request"


@dataclass(eq=False)
class Conn:
    proto: str
    orig: Tuple
    reply: Tuple
    status: set[str] = field(default_factory=set)   # DNAT SNAT SEEN_REPLY ASSURED CONFIRMED
    tcp_state: str = ""
    mark: int = 0
    nat_done: set[str] = field(default_factory=set)  # manip types whose binding is decided
    closed: bool = False                              # a RST ended it: the entry goes
    touched: bool = False                             # this trace's packets crossed it

    def tuple(self, direction: str) -> Tuple:
        return self.orig if direction == ORIGINAL else self.reply

    @property
    def confirmed(self) -> bool:
        return "CONFIRMED" in self.status

    def keys(self) -> tuple[tuple, tuple]:
        echo = self.proto == "icmp"
        return (_key(self.proto, self.orig, "request" if echo else None),
                _key(self.proto, self.reply, "reply" if echo else None))

    def to_entry(self) -> ConntrackEntry:
        status = [] if "SEEN_REPLY" in self.status else ["UNREPLIED"]
        status += [s for s in ("SEEN_REPLY", "ASSURED", "DNAT", "SNAT") if s in self.status]
        return ConntrackEntry(proto=self.proto,
                              orig=(self.orig.src, self.orig.sport, self.orig.dst, self.orig.dport),
                              reply=(self.reply.src, self.reply.sport, self.reply.dst,
                                     self.reply.dport),
                              state=self.tcp_state, status=status, mark=self.mark)

    @classmethod
    def from_entry(cls, e: ConntrackEntry) -> "Conn":
        status = {s for s in e.status if s != "UNREPLIED"} | {"CONFIRMED"}
        return cls(proto=e.proto, orig=Tuple(*e.orig), reply=Tuple(*e.reply), status=status,
                   tcp_state=e.state, mark=e.mark, nat_done={SRC, DST})


class ConntrackTable:
    """The confirmed connections of one namespace, found by either of their tuples."""

    def __init__(self, entries: list[ConntrackEntry] = ()):
        self.conns: list[Conn] = []
        self._index: dict[tuple, tuple[Conn, str]] = {}
        for e in entries:
            self.insert(Conn.from_entry(e))

    def insert(self, conn: Conn) -> None:
        conn.status.add("CONFIRMED")
        self.conns.append(conn)
        k_orig, k_reply = conn.keys()
        self._index[k_orig] = (conn, ORIGINAL)
        self._index[k_reply] = (conn, REPLY)

    def remove(self, conn: Conn) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
        for k in conn.keys():
            if self._index.get(k, (None,))[0] is conn:
                del self._index[k]

    def find(self, pkt: Packet) -> tuple[Conn, str] | None:
        # _key(proto, packet_tuple(pkt), _echo_kind(pkt)), without the calls (every hook
        # of a tracking namespace asks)
        proto = pkt.proto
        src = pkt.src or "0.0.0.0"
        if proto == "tcp" or proto == "udp":
            key = (proto, src, pkt.sport, pkt.dst, pkt.dport, None)
        else:
            key = (proto, src, None, pkt.dst, None,
                   ("reply" if pkt.icmp_type == ECHO_REPLY else "request") if proto == "icmp"
                   else None)
        return self._index.get(key)

    def find_quoted(self, inner: Packet) -> tuple[Conn, str] | None:
        """The connection an ICMP error is about, and the direction the error travels in:
        the quoted packet's tuple inverted is the tuple of the error's direction."""
        echo = _echo_kind(inner)
        if echo is not None:
            echo = "reply" if echo == "request" else "request"
        return self._index.get(_key(inner.proto, packet_tuple(inner).inverted(), echo))

    def in_use(self, proto: str, t: Tuple, echo: str | None = None) -> bool:
        return _key(proto, t, echo) in self._index

    def entries(self) -> list[ConntrackEntry]:
        return [c.to_entry() for c in self.conns if not c.closed]


# --- the state of a packet ------------------------------------------------------------------

def opens_connection(pkt: Packet) -> bool:
    """Can this packet be the first of a connection? (tcp_new / icmp_new / udp)"""
    if pkt.proto == "tcp":
        flags = pkt.tcp_flags or ""
        # nf_conntrack_tcp_loose=1: a plain ACK is picked up mid-stream; SYN-ACK and RST are not.
        return "R" not in flags and not ("S" in flags and "A" in flags)
    if pkt.proto == "icmp":
        return pkt.icmp_type == ECHO_REQUEST
    return True


def new_conn(pkt: Packet) -> Conn:
    t = packet_tuple(pkt)
    conn = Conn(pkt.proto, t, t.inverted(), set(), "", 0, set(), False, True)   # touched
    if pkt.proto == "tcp":
        conn.tcp_state = "SYN_SENT" if "S" in (pkt.tcp_flags or "") else "ESTABLISHED"
    return conn


def seen(conn: Conn, pkt: Packet, direction: str) -> None:
    """What a packet of the connection changes in it (nf_conntrack_in's l4 handlers)."""
    conn.touched = True
    flags = pkt.tcp_flags or ""
    if direction == REPLY:
        conn.status.add("SEEN_REPLY")
    if pkt.proto != "tcp":
        return
    if "R" in flags:
        conn.closed = True
        conn.tcp_state = "CLOSE"
    elif direction == REPLY and "S" in flags and "A" in flags:
        conn.tcp_state = "SYN_RECV"
    elif direction == ORIGINAL and "S" not in flags and conn.tcp_state == "SYN_RECV":
        conn.tcp_state = "ESTABLISHED"
        conn.status.add("ASSURED")


def reopens(conn: Conn, pkt: Packet, direction: str) -> bool:
    """A SYN for a connection that is over starts a new one (the old entry is killed)."""
    return (pkt.proto == "tcp" and direction == ORIGINAL and (pkt.tcp_flags or "") == "S"
            and conn.tcp_state in ("TIME_WAIT", "CLOSE", "FIN_WAIT", "LAST_ACK", "CLOSE_WAIT"))


# --- NAT ---------------------------------------------------------------------------------------

def status_bit(manip: str, direction: str) -> str:
    bit = "SNAT" if manip == SRC else "DNAT"
    if direction == REPLY:
        bit = "DNAT" if bit == "SNAT" else "SNAT"
    return bit


_STATUS_BITS = {(m, d): status_bit(m, d) for m in (SRC, DST) for d in (ORIGINAL, REPLY)}


def rewrite(pkt: Packet, **changes) -> Packet:
    """pkt.with_(**changes) without dataclasses.replace's cost (Packet has no __post_init__):
    a copy of its fields, changed, as the new packet's own (a frozen dataclass's __dict__
    is set through object's __setattr__)."""
    new = object.__new__(pkt.__class__)
    fields = pkt.__dict__.copy()
    fields.update(changes)
    object.__setattr__(new, "__dict__", fields)
    return new


def manip_packet(pkt: Packet, conn: Conn, direction: str, manip: str) -> Packet:
    """The packet after the connection's NAT for this hook's manip type (may be unchanged)."""
    if _STATUS_BITS[(manip, direction)] not in conn.status:
        return pkt
    t = conn.tuple(other(direction))
    ports = has_ports(pkt.proto)
    if isinstance(pkt, IcmpError) and pkt.inner is not None:
        inner = pkt.inner
        inner_ports = has_ports(inner.proto)
        if manip == SRC:
            inner = rewrite(inner, dst=t.dst, **({"dport": t.dport} if inner_ports else {}))
            return rewrite(pkt, src=t.dst, inner=inner)
        inner = rewrite(inner, src=t.src, **({"sport": t.sport} if inner_ports else {}))
        return rewrite(pkt, dst=t.src, inner=inner)
    if manip == SRC:
        return rewrite(pkt, src=t.dst, **({"sport": t.dport} if ports else {}))
    return rewrite(pkt, dst=t.src, **({"dport": t.sport} if ports else {}))


def bind_dnat(conn: Conn, addr: str, port: int | None) -> None:
    r = conn.reply
    sport = port if port is not None and has_ports(conn.proto) else r.sport
    conn.reply = Tuple(addr, sport, r.dst, r.dport)
    if conn.reply.src != conn.orig.dst or conn.reply.sport != conn.orig.dport:
        conn.status.add("DNAT")


def bind_snat(table: ConntrackTable, conn: Conn, addr: str,
              ports: tuple[int, int] | None) -> None:
    """The reply tuple's destination becomes addr:port, the port kept unless another
    connection already answers to that tuple (then the next free one in the range)."""
    r = conn.reply
    port = r.dport
    if has_ports(conn.proto) and r.dport is not None:
        low, high = ports if ports is not None else _default_range(r.dport)
        port = r.dport if low <= r.dport <= high else low
        span = high - low + 1
        for step in range(span):
            candidate = low + (port - low + step) % span
            if not table.in_use(conn.proto, Tuple(r.src, r.sport, addr, candidate)):
                port = candidate
                break
    conn.reply = Tuple(r.src, r.sport, addr, port)
    if conn.reply.dst != conn.orig.src or conn.reply.dport != conn.orig.sport:
        conn.status.add("SNAT")


def _default_range(port: int) -> tuple[int, int]:
    """nf_nat_l4proto_unique_tuple keeps a port in its class: <512, <1024, the rest."""
    if port < 512:
        return 1, 511
    if port < 1024:
        return 600, 1023
    return 1024, 65535
