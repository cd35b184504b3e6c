"""A minimal rtnetlink client for the bridge plugin's start-up path.

Why not pyroute2 (which netlab uses everywhere else): importing it costs
~135 ms, ten times the reference plugin's whole ADD. The plugin needs a
dozen requests (links, veth with a peer in another namespace, bridge port
flags, addresses, routes); this file encodes exactly those with ``int.to_bytes``
over an AF_NETLINK socket. Errors are OSError with the kernel's errno.
"""


import posix
import sys

_BO = sys.byteorder   # netlink speaks the host's byte order; int.to_bytes needs no _struct (~0.3 ms)

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_PROTINFO, IFLA_TXQLEN, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 13, 16, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_MODE = 4
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP, IFF_PROMISC = 0x1, 0x100
IF_OPER_UP = 6
AF_INET, AF_INET6, AF_BRIDGE = 2, 10, 7
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1

IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS = 29, 1 << 3
HDR_SIZE, IFINFO_SIZE, IFADDR_SIZE, RTMSG_SIZE = 16, 16, 8, 12


def _u16(b: bytes, offset: int) -> int:
    return int.from_bytes(b[offset:offset + 2], _BO)


def _u32(b: bytes, offset: int = 0) -> int:
    return int.from_bytes(b[offset:offset + 4], _BO)


def attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return length.to_bytes(2, _BO) + kind.to_bytes(2, _BO) + data + b"\0" * ((4 - length % 4) % 4)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, value.to_bytes(4, _BO))


def u8(kind: int, value: int) -> bytes:
    return attr(kind, bytes((value,)))


def text(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    """struct ifinfomsg: family, pad, type, index, flags, change."""
    return (bytes((family, 0, 0, 0)) + index.to_bytes(4, _BO, signed=True) + flags.to_bytes(4, _BO)
            + change.to_bytes(4, _BO))


def ifaddr(family: int, plen: int, index: int) -> bytes:
    """struct ifaddrmsg: family, prefixlen, flags, scope, index."""
    return bytes((family, plen, 0, 0)) + index.to_bytes(4, _BO)


def rtmsg(family: int, dst_len: int = 0, table: int = 0, protocol: int = 0, kind: int = 0) -> bytes:
    """struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags."""
    return bytes((family, dst_len, 0, 0, table, protocol, 0, kind, 0, 0, 0, 0))


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    end = len(data)
    while offset + 4 <= end:
        length = int.from_bytes(data[offset:offset + 2], _BO)
        if length < 4:
            break
        out[int.from_bytes(data[offset + 2:offset + 4], _BO) & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def ip_bytes(ip) -> bytes:
    return ip.value.to_bytes(ip.bits // 8, "big")


def mac_text(raw: bytes) -> str:
    return raw.hex(":")


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


# Link lookups leave out the counters (kernels without the flag ignore it): less for
# the kernel to fill in and for parse_attrs to walk.
_SKIP_STATS = u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)


class Link:
    __slots__ = ("index", "name", "kind", "mac", "flags", "master", "oper_up", "mtu")

    def __init__(self, msg: bytes):
        self.index = int.from_bytes(msg[4:8], _BO, signed=True)
        self.flags = _u32(msg, 8)
        attrs = parse_attrs(msg, IFINFO_SIZE)
        self.name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
        self.mac = mac_text(attrs.get(IFLA_ADDRESS, b""))
        self.master = _u32(attrs[IFLA_MASTER]) if IFLA_MASTER in attrs else 0
        self.oper_up = attrs.get(IFLA_OPERSTATE, b"\0")[0] == IF_OPER_UP
        self.mtu = _u32(attrs[IFLA_MTU]) if IFLA_MTU in attrs else 0
        info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
        self.kind = info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode()

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)


class Netlink:
    """One rtnetlink socket, bound to the namespace the process was in when it was made."""

    def __init__(self):
        self.fd = netlink_socket()     # bound (to a port the kernel picks) at the first write
        self.seq = 0

    def close(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def _message(self, kind: int, flags: int, payload: bytes) -> bytes:
        self.seq += 1
        return ((HDR_SIZE + len(payload)).to_bytes(4, _BO) + kind.to_bytes(2, _BO)
                + (flags | NLM_F_REQUEST).to_bytes(2, _BO) + self.seq.to_bytes(4, _BO) + b"\0\0\0\0"
                + payload)

    def _replies(self):
        """(seq, type, body) of each message the kernel sends back, as they come."""
        while True:
            data = posix.read(self.fd, 1 << 16)
            offset = 0
            while offset + HDR_SIZE <= len(data):
                length = _u32(data, offset)
                yield _u32(data, offset + 8), _u16(data, offset + 4), data[offset + HDR_SIZE:offset + length]
                offset += (length + 3) & ~3

    @staticmethod
    def _errno(body: bytes) -> int:
        return -int.from_bytes(body[:4], _BO, signed=True)

    def request(self, kind: int, flags: int, payload: bytes) -> list[bytes]:
        """One request; its reply messages (a dump's, or a get's one) or [] for an ack.
        A get asks for no ack: its reply (or error) is the answer, one read less."""
        get = kind in (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE)
        if not get and flags & NLM_F_DUMP != NLM_F_DUMP:
            flags |= NLM_F_ACK
        posix.write(self.fd, self._message(kind, flags, payload))
        seq = self.seq
        out: list[bytes] = []
        for got, mtype, body in self._replies():
            if got != seq:
                continue
            if mtype == NLMSG_DONE:
                return out
            if mtype == NLMSG_ERROR:
                err = self._errno(body)
                if err:
                    raise OSError(err, posix.strerror(err))
                return out
            out.append(body)
            if get and flags & NLM_F_DUMP != NLM_F_DUMP:
                return out

    def batch(self, requests: list[tuple[int, int, bytes]]) -> list[int]:
        """Several acked requests in one write; the kernel runs them in order. Returns
        each one's errno (0 = done): a failed one does not stop the ones after it, so
        only send together what the caller would undo together."""
        payload = b"".join(self._message(kind, flags | NLM_F_ACK, body) for kind, flags, body in requests)
        first = self.seq - len(requests) + 1
        posix.write(self.fd, payload)
        errors: dict[int, int] = {}
        if requests:
            for got, mtype, body in self._replies():
                if mtype == NLMSG_ERROR and first <= got <= self.seq:
                    errors[got] = self._errno(body)
                    if len(errors) == len(requests):
                        break
        return [errors[first + i] for i in range(len(requests))]

    # --- links -----------------------------------------------------------------------
    def link(self, name: str) -> Link | None:
        try:
            msgs = self.request(RTM_GETLINK, 0, ifinfo() + text(IFLA_IFNAME, name) + _SKIP_STATS)
        except OSError as exc:
            if exc.errno in (19, 2):      # ENODEV, ENOENT
                return None
            raise
        return Link(msgs[0]) if msgs else None

    def links(self) -> list[Link]:
        return [Link(m) for m in self.request(RTM_GETLINK, NLM_F_DUMP, ifinfo() + _SKIP_STATS)]

    def add_bridge(self, name: str, mtu: int = 0, vlan_filtering: bool = False) -> None:
        data = u8(IFLA_BR_VLAN_FILTERING, 1) if vlan_filtering else b""
        info = text(IFLA_INFO_KIND, "bridge") + (attr(IFLA_INFO_DATA, data) if data else b"")
        body = ifinfo() + text(IFLA_IFNAME, name) + (u32(IFLA_MTU, mtu) if mtu else b"")
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body + attr(IFLA_LINKINFO, info))

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int = 0,
                 peer_mac: str | None = None, up: bool = False, master: int = 0) -> None:
        """A veth pair: ``name`` here, ``peer`` in the namespace of ``peer_netns_fd``;
        txqueuelen 0 on both ends, as the reference 1.1.1 makes them. With ``up``, this
        end comes up in the same request (the peer cannot: the kernel makes it before it
        has a peer, and a veth without one refuses to come up); with ``master``, this end
        joins that bridge in it too (after coming up)."""
        common = (u32(IFLA_MTU, mtu) if mtu else b"") + u32(IFLA_TXQLEN, 0)
        flags = (IFF_UP, IFF_UP) if up else (0, 0)
        peer_body = (ifinfo() + text(IFLA_IFNAME, peer) + common
                     + u32(IFLA_NET_NS_FD, peer_netns_fd)
                     + (attr(IFLA_ADDRESS, mac_bytes(peer_mac)) if peer_mac else b""))
        info = text(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_body))
        body = ifinfo(0, *flags) + text(IFLA_IFNAME, name) + common + attr(IFLA_LINKINFO, info)
        if master:
            body += u32(IFLA_MASTER, master)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def up_by_name(self, name: str) -> Link | None:
        """Set link ``name`` up and look it up, both in one write (None: no such link)."""
        body = ifinfo() + text(IFLA_IFNAME, name)
        posix.write(self.fd, self._message(RTM_NEWLINK, NLM_F_ACK, ifinfo(0, IFF_UP, IFF_UP)
                                           + text(IFLA_IFNAME, name))
                    + self._message(RTM_GETLINK, 0, body + _SKIP_STATS))
        set_seq, get_seq = self.seq - 1, self.seq
        failed = 0
        for got, mtype, msg in self._replies():
            if got == set_seq and mtype == NLMSG_ERROR:
                failed = self._errno(msg)
            elif got == get_seq:
                if mtype == NLMSG_ERROR:
                    err = failed or self._errno(msg)
                    if err in (19, 2):         # ENODEV, ENOENT
                        return None
                    raise OSError(err, posix.strerror(err))
                if failed:
                    raise OSError(failed, posix.strerror(failed))
                return Link(msg)

    def set_flags(self, index: int, flags: int, mask: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, flags, mask))

    def set_master(self, index: int, master: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index) + u32(IFLA_MASTER, master))

    def set_mac(self, index: int, mac: str) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index) + attr(IFLA_ADDRESS, mac_bytes(mac)))

    def set_hairpin(self, index: int, on: bool) -> None:
        protinfo = attr(IFLA_PROTINFO | NLA_F_NESTED, u8(IFLA_BRPORT_MODE, int(on)))
        self.request(RTM_SETLINK, 0, ifinfo(index, family=AF_BRIDGE) + protinfo)

    def del_link(self, index: int) -> None:
        self.request(RTM_DELLINK, 0, ifinfo(index))

    # --- addresses ---------------------------------------------------------------------
    def addrs(self, index: int) -> list[tuple[str, int, int]]:
        """(ip, prefixlen, scope) of one link, IPv4 and IPv6."""
        from netlab.cni.ip import IP
        out = []
        for m in self.request(RTM_GETADDR, NLM_F_DUMP, ifaddr(0, 0, 0)):
            if _u32(m, 4) != index:
                continue
            plen, scope = m[1], m[3]
            attrs = parse_attrs(m, IFADDR_SIZE)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.append((str(IP(len(raw) * 8, int.from_bytes(raw, "big"))), plen, scope))
        return out

    @staticmethod
    def addr_message(kind: int, index: int, ip, plen: int) -> tuple[int, int, bytes]:
        """(kind, flags, body) adding (RTM_NEWADDR) or removing (RTM_DELADDR) an address."""
        body = ifaddr(AF_INET if ip.v4 else AF_INET6, plen, index) + attr(IFA_LOCAL, ip_bytes(ip)) \
            + attr(IFA_ADDRESS, ip_bytes(ip))
        if ip.v4 and plen < 31 and kind == RTM_NEWADDR:
            bcast = ip.value | ((1 << (32 - plen)) - 1)
            body += attr(IFA_BROADCAST, bcast.to_bytes(4, "big"))
        return kind, (NLM_F_CREATE | NLM_F_EXCL) if kind == RTM_NEWADDR else 0, body

    def add_addr(self, index: int, ip, plen: int) -> None:
        self.request(*self.addr_message(RTM_NEWADDR, index, ip, plen))

    def del_addr(self, index: int, ip, plen: int) -> None:
        self.request(*self.addr_message(RTM_DELADDR, index, ip, plen))

    # --- routes ------------------------------------------------------------------------
    @staticmethod
    def route_message(dst, gw, index: int) -> tuple[int, int, bytes]:
        """(kind, flags, body) adding a main-table route to ``dst`` through ``index``."""
        body = rtmsg(AF_INET if dst.bits == 32 else AF_INET6, dst.prefixlen, RT_TABLE_MAIN, RTPROT_BOOT,
                     RTN_UNICAST)
        body += attr(RTA_DST, ip_bytes(dst.ip)) + u32(RTA_OIF, index)
        if gw is not None:
            body += attr(RTA_GATEWAY, ip_bytes(gw))
        return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body

    def add_route(self, dst, gw, index: int) -> None:
        self.request(*self.route_message(dst, gw, index))

    def routes(self, index: int) -> list[tuple[str, str | None]]:
        """(dst CIDR, gateway) of the main-table routes through one link."""
        from netlab.cni.ip import IP
        out = []
        for family in (AF_INET, AF_INET6):
            for m in self.request(RTM_GETROUTE, NLM_F_DUMP, rtmsg(family)):
                fam, dlen, table = m[0], m[1], m[4]
                attrs = parse_attrs(m, RTMSG_SIZE)
                if RTA_TABLE in attrs:
                    table = _u32(attrs[RTA_TABLE])
                oif = _u32(attrs[RTA_OIF]) if RTA_OIF in attrs else 0
                if table != RT_TABLE_MAIN or oif != index:
                    continue
                bits = 32 if fam == AF_INET else 128
                dst = IP(bits, int.from_bytes(attrs.get(RTA_DST, bytes(bits // 8)), "big"))
                gw = attrs.get(RTA_GATEWAY)
                out.append((f"{dst}/{dlen}", str(IP(bits, int.from_bytes(gw, "big"))) if gw else None))
        return out


def netlink_socket() -> int:
    """A NETLINK_ROUTE socket's descriptor, read and written with posix.read/write. Before
    Python 3.12 (no posix.setns) the plugin loads _ctypes for setns anyway, and libc's
    socket() through it spares the _socket module (~0.3 ms to load)."""
    if hasattr(posix, "setns"):
        import _socket
        return _socket.socket(16, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, 0).detach()
    from netlab.cni.sysos import libc
    return libc("socket")(16, 3 | 0o2000000, 0)      # AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE


def setns(fd: int) -> None:
    """Move this (single-threaded) process into the network namespace of ``fd``
    (posix.setns from Python 3.12, libc's before)."""
    if hasattr(posix, "setns"):
        posix.setns(fd, posix.CLONE_NEWNET)
        return
    from netlab.cni.sysos import libc
    libc("setns")(fd, 0x40000000)       # CLONE_NEWNET
