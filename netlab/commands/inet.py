"""Addresses, prefixes and MACs read the way iproute2's lib/utils.c reads them.

``10.1.1.1`` is a /32 (no prefix length typed), ``10/8`` is 10.0.0.0/8,
``10.0.0.0/255.0.0.0`` is a /8; errors are iproute2's own sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.errors import CommandError


@dataclass(frozen=True)
class Prefix:
    ip: str                 # dotted quad as typed (host bits kept)
    prefixlen: int
    typed_len: bool         # a prefix length was written
    is_default: bool = False

    @property
    def value(self) -> int:
        return ip_int(self.ip)

    @property
    def network(self) -> str:
        """Normalised CIDR of the network (``default`` stays ``default``)."""
        if self.is_default:
            return "default"
        return f"{int_ip(self.value & mask(self.prefixlen))}/{self.prefixlen}"

    @property
    def host_bits_set(self) -> bool:
        return bool(self.value & ~mask(self.prefixlen) & 0xFFFFFFFF)


def mask(prefixlen: int) -> int:
    return (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF if prefixlen else 0


def ip_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def int_ip(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def parse_ipv4(text: str) -> str | None:
    """get_addr_ipv4: up to four dotted decimal parts, missing ones are zero."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    out = []
    for part in parts:
        if not part.isdigit() or len(part) > 3:
            return None
        n = int(part)
        if n > 255:
            return None
        out.append(n)
    out += [0] * (4 - len(out))
    return ".".join(str(n) for n in out)


def family_word(family: str | None) -> str:
    return "inet" if family == "inet" else "any valid"


def get_prefix(text: str, family: str | None = None, *, allow_default: bool = False) -> Prefix:
    """A prefix (``10.0.0.0/24``, ``10.1.1.1``, ``default``) or iproute2's error."""
    if allow_default and text in ("default", "any", "all"):
        return Prefix("0.0.0.0", 0, True, is_default=True)
    bad = CommandError(f'Error: {family_word(family)} prefix is expected rather than "{text}".',
                       status=1)
    ip_text, slash, len_text = text.partition("/")
    ip = parse_ipv4(ip_text)
    if ip is None:
        if ":" in ip_text:
            raise _no_ipv6()
        raise bad
    if not slash:
        return Prefix(ip, 32, False)
    if len_text.isdigit():
        plen = int(len_text)
        if plen > 32:
            raise bad
        return Prefix(ip, plen, True)
    netmask = parse_ipv4(len_text)
    if netmask is None:
        raise bad
    value = ip_int(netmask)
    plen = bin(value).count("1")
    if value != mask(plen):
        raise bad
    return Prefix(ip, plen, True)


def get_addr(text: str, family: str | None = None) -> str:
    """An address (``via 10.0.0.1``) or iproute2's error."""
    ip = parse_ipv4(text) if "/" not in text else None
    if ip is None:
        if ":" in text:
            raise _no_ipv6()
        raise CommandError(
            f'Error: {family_word(family)} address is expected rather than "{text}".', status=1)
    return ip


def _no_ipv6() -> CommandError:
    from netlab.commands.base import unsupported_feature
    return unsupported_feature("IPv6 addresses and routes")


def parse_lladdr(text: str) -> str:
    """ll_addr_a2n: colon-separated hex bytes; iproute2 names the bad part."""
    parts = text.split(":")
    out = []
    for part in parts:
        digits = part[2:] if part[:2].lower() == "0x" else part
        hexlen = 0
        while hexlen < len(digits) and digits[hexlen] in "0123456789abcdefABCDEF":
            hexlen += 1
        if hexlen == 0:
            raise CommandError(f'"{part}" is invalid lladdr.', status=1)
        value = int(digits[:hexlen], 16)
        if value > 255:
            raise CommandError(f'"{part}" is invalid lladdr.', status=1)
        out.append(value)
        if len(out) == 32:
            break
    if len(out) != 6:
        raise CommandError(f"Invalid address length {len(out)} - must be 6 bytes", status=1)
    return ":".join(f"{b:02x}" for b in out)


def valid_ifname(name: str, limit: int = 16) -> bool:
    """check_ifname / check_altifname: not empty, no '/' or blank, under the limit."""
    if not name or len(name) >= limit:
        return False
    return not any(c == "/" or c.isspace() for c in name)
