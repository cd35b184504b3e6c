"""A minimal rtnetlink client for the bridge plugin's start-up path.

Why not pyroute2 (which netlab uses everywhere else): importing it costs
~135 ms, ten times the reference plugin's whole ADD. The plugin needs a
dozen requests (links, veth with a peer in another namespace, bridge port
flags, addresses, routes); this file encodes exactly those with ``struct``
over an AF_NETLINK socket. Errors are OSError with the kernel's errno.
"""


import posix
import _struct as struct   # the C module: struct.py is one more import for nothing

import _socket   # the C module: socket.py's enums cost ~5 ms at start-up

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
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_HDR = struct.Struct("=IHHII")


def attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def text(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return _IFINFO.pack(family, 0, index, flags, change)


_ATTR_HDR = struct.Struct("=HH").unpack_from    # a Struct: no format-cache look-up per attribute


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    end = len(data)
    while offset + 4 <= end:
        length, kind = _ATTR_HDR(data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def ip_bytes(ip) -> bytes:
    return ip.value.to_bytes(ip.bits // 8, "big")


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


# Link lookups leave out the counters (kernels without the flag ignore it): less for
# the kernel to fill in and for parse_attrs to walk.
_SKIP_STATS = u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)


class Link:
    __slots__ = ("index", "name", "kind", "mac", "flags", "master", "oper_up", "mtu")

    def __init__(self, msg: bytes):
        _, _, self.index, self.flags, _ = _IFINFO.unpack_from(msg, 0)
        attrs = parse_attrs(msg, _IFINFO.size)
        self.name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
        self.mac = mac_text(attrs.get(IFLA_ADDRESS, b""))
        self.master = struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
        self.oper_up = attrs.get(IFLA_OPERSTATE, b"\0")[0] == IF_OPER_UP
        self.mtu = struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
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
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, payload: bytes) -> list[bytes]:
        self.seq += 1
        flags |= NLM_F_REQUEST
        if not flags & NLM_F_DUMP == NLM_F_DUMP:
            flags |= NLM_F_ACK
        self.sock.send(_HDR.pack(_HDR.size + len(payload), kind, flags, self.seq, 0) + payload)
        out: list[bytes] = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, _, seq, _ = _HDR.unpack_from(data, offset)
                body = data[offset + _HDR.size:offset + length]
                offset += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body, 0)[0]
                    if err:
                        raise OSError(err, posix.strerror(err))
                    return out
                out.append(body)

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
                 peer_mac: str | None = None) -> None:
        """A veth pair: ``name`` here, ``peer`` in the namespace of ``peer_netns_fd``;
        txqueuelen 0 on both ends, as the reference 1.1.1 makes them."""
        common = (u32(IFLA_MTU, mtu) if mtu else b"") + u32(IFLA_TXQLEN, 0)
        peer_body = (ifinfo() + text(IFLA_IFNAME, peer) + common + u32(IFLA_NET_NS_FD, peer_netns_fd)
                     + (attr(IFLA_ADDRESS, mac_bytes(peer_mac)) if peer_mac else b""))
        info = text(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_body))
        body = ifinfo() + text(IFLA_IFNAME, name) + common + attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

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
        for m in self.request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(0, 0, 0, 0, 0)):
            family, plen, _, scope, idx = _IFADDR.unpack_from(m, 0)
            if idx != index:
                continue
            attrs = parse_attrs(m, _IFADDR.size)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.append((str(IP(len(raw) * 8, int.from_bytes(raw, "big"))), plen, scope))
        return out

    def _addr(self, kind: int, flags: int, index: int, ip, plen: int) -> None:
        family = AF_INET if ip.v4 else AF_INET6
        body = _IFADDR.pack(family, plen, 0, 0, index) + attr(IFA_LOCAL, ip_bytes(ip)) \
            + attr(IFA_ADDRESS, ip_bytes(ip))
        if ip.v4 and plen < 31 and kind == RTM_NEWADDR:
            from netlab.cni.ip import IP
            bcast = ip.value | ((1 << (32 - plen)) - 1)
            body += attr(IFA_BROADCAST, ip_bytes(IP(32, bcast)))
        self.request(kind, flags, body)

    def add_addr(self, index: int, ip, plen: int) -> None:
        self._addr(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, ip, plen)

    def del_addr(self, index: int, ip, plen: int) -> None:
        self._addr(RTM_DELADDR, 0, index, ip, plen)

    # --- routes ------------------------------------------------------------------------
    def add_route(self, dst, gw, index: int) -> None:
        family = AF_INET if dst.bits == 32 else AF_INET6
        body = _RTMSG.pack(family, dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0,
                           RTN_UNICAST, 0)
        body += attr(RTA_DST, ip_bytes(dst.ip)) + u32(RTA_OIF, index)
        if gw is not None:
            body += attr(RTA_GATEWAY, ip_bytes(gw))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)

    def routes(self, index: int) -> list[tuple[str, str | None]]:
        """(dst CIDR, gateway) of the main-table routes through one link."""
        from netlab.cni.ip import IP
        out = []
        for family in (AF_INET, AF_INET6):
            for m in self.request(RTM_GETROUTE, NLM_F_DUMP, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
                fam, dlen, _, _, table, _, _, _, _ = _RTMSG.unpack_from(m, 0)
                attrs = parse_attrs(m, _RTMSG.size)
                if RTA_TABLE in attrs:
                    table = struct.unpack("=I", attrs[RTA_TABLE])[0]
                oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
                if table != RT_TABLE_MAIN or oif != index:
                    continue
                bits = 32 if fam == AF_INET else 128
                dst = IP(bits, int.from_bytes(attrs.get(RTA_DST, bytes(bits // 8)), "big"))
                gw = attrs.get(RTA_GATEWAY)
                out.append((f"{dst}/{dlen}", str(IP(bits, int.from_bytes(gw, "big"))) if gw else None))
        return out


_setns = None


def setns(fd: int) -> None:
    """Move this (single-threaded) process into the network namespace of ``fd``.

    posix.setns exists from Python 3.12; before that, libc's setns through _ctypes
    alone (the ctypes package costs ~4 ms to import, _ctypes under 1 ms)."""
    global _setns
    if hasattr(posix, "setns"):
        posix.setns(fd, posix.CLONE_NEWNET)
        return
    if _setns is None:
        import _ctypes

        class c_int(_ctypes._SimpleCData):
            _type_ = "i"

        class Libc:
            _handle = _ctypes.dlopen(None, posix.RTLD_NOW)

        class Func(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = c_int

        _setns = (Func(("setns", Libc())), _ctypes.get_errno)
    call, get_errno = _setns
    if call(fd, 0x40000000) != 0:       # CLONE_NEWNET
        err = get_errno()
        raise OSError(err, posix.strerror(err))
