"""IP addresses as (family bits, int): parse and print like Go's net package.

The plugins' start-up path cannot afford ``ipaddress`` (it pulls in re and
functools); this is all they need: parse, print (RFC 5952, as Go prints),
networks, masks.
"""



class IP:
    __slots__ = ("bits", "value")

    def __init__(self, bits: int, value: int):
        self.bits = bits          # 32 or 128
        self.value = value

    def __eq__(self, other) -> bool:
        return isinstance(other, IP) and self.bits == other.bits and self.value == other.value

    def __hash__(self) -> int:
        return hash((self.bits, self.value))

    def __lt__(self, other: "IP") -> bool:
        return (self.bits, self.value) < (other.bits, other.value)

    def __str__(self) -> str:
        return format_ip(self.bits, self.value)

    __repr__ = __str__

    @property
    def v4(self) -> bool:
        return self.bits == 32

    def next(self) -> "IP":
        return IP(self.bits, (self.value + 1) % (1 << self.bits))


def parse_ip(text: str) -> IP | None:
    """An address, or None when Go's net.ParseIP would return nil."""
    if not isinstance(text, str) or not text:
        return None
    if ":" not in text:
        v = _parse_v4(text)
        return None if v is None else IP(32, v)
    v = _parse_v6(text)
    if v is None:
        return None
    if v >> 32 == 0xFFFF:         # ::ffff:a.b.c.d is an IPv4 address to Go
        return IP(32, v & 0xFFFFFFFF)
    return IP(128, v)


def _parse_v4(text: str) -> int | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for p in parts:
        if not p.isdigit() or not p.isascii() or len(p) > 3 or (len(p) > 1 and p[0] == "0"):
            return None
        n = int(p)
        if n > 255:
            return None
        value = value << 8 | n
    return value


def _parse_v6(text: str) -> int | None:
    if "." in text:
        head, _, v4 = text.rpartition(":")
        n = _parse_v4(v4)
        if n is None:
            return None
        text = head + ":" + format(n >> 16, "x") + ":" + format(n & 0xFFFF, "x")
    if text.count("::") > 1:
        return None
    if "::" in text:
        left, right = text.split("::")
        lg = left.split(":") if left else []
        rg = right.split(":") if right else []
        if len(lg) + len(rg) > 7:
            return None
        groups = lg + ["0"] * (8 - len(lg) - len(rg)) + rg
    else:
        groups = text.split(":")
        if len(groups) != 8:
            return None
    value = 0
    for g in groups:
        if not 1 <= len(g) <= 4 or any(c not in "0123456789abcdefABCDEF" for c in g):
            return None
        value = value << 16 | int(g, 16)
    return value


def format_ip(bits: int, value: int) -> str:
    if bits == 32:
        return ".".join(str(value >> s & 0xFF) for s in (24, 16, 8, 0))
    groups = [value >> (112 - 16 * i) & 0xFFFF for i in range(8)]
    best, best_len, i = -1, 1, 0
    while i < 8:
        if groups[i] == 0:
            j = i
            while j < 8 and groups[j] == 0:
                j += 1
            if j - i > best_len:
                best, best_len = i, j - i
            i = j
        else:
            i += 1
    if best < 0:
        return ":".join(format(g, "x") for g in groups)
    left = ":".join(format(g, "x") for g in groups[:best])
    right = ":".join(format(g, "x") for g in groups[best + best_len:])
    return left + "::" + right


class Net:
    """A prefix as typed (``ip`` may have host bits): Go's net.IPNet."""
    __slots__ = ("ip", "prefixlen")

    def __init__(self, ip: IP, prefixlen: int):
        self.ip = ip
        self.prefixlen = prefixlen

    @property
    def bits(self) -> int:
        return self.ip.bits

    @property
    def mask(self) -> int:
        b = self.ip.bits
        return ((1 << b) - 1) ^ ((1 << (b - self.prefixlen)) - 1)

    @property
    def network(self) -> IP:
        return IP(self.bits, self.ip.value & self.mask)

    @property
    def last(self) -> IP:
        return IP(self.bits, self.network.value | ((1 << (self.bits - self.prefixlen)) - 1))

    def contains(self, ip: IP) -> bool:
        return ip.bits == self.bits and (ip.value & self.mask) == self.network.value

    def __str__(self) -> str:
        return f"{self.ip}/{self.prefixlen}"

    __repr__ = __str__

    def mask_hex(self) -> str:
        return format(self.mask, "0%dx" % (self.bits // 4))


def parse_cidr(text: str) -> Net | None:
    if not isinstance(text, str) or "/" not in text:
        return None
    addr, _, plen = text.partition("/")
    ip = None
    if ":" in addr:
        v = _parse_v6(addr)
        ip = None if v is None else IP(128, v)
    else:
        v = _parse_v4(addr)
        ip = None if v is None else IP(32, v)
    if ip is None or not plen.isdigit() or not plen.isascii() or (len(plen) > 1 and plen[0] == "0"):
        return None
    n = int(plen)
    if n > ip.bits:
        return None
    return Net(ip, n)


def go_ipnet(net: Net) -> str:
    """How Go's %v prints a net.IPNet value: ``{10.0.0.0 ffff0000}``."""
    return "{%s %s}" % (net.ip, net.mask_hex())
