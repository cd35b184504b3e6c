"""The value syntaxes of the iptables command line, parsed and printed as iptables does.

Each parser takes the text as typed and returns a Python value or raises
XtError with iptables' words; each ``show_*`` prints the value the way
iptables-save prints it. Addresses are IPv4 as ints.
"""

from __future__ import annotations

import math
import re

from netlab.netfilter import netdb
from netlab.netfilter.errors import XtError

IFNAMSIZ = 16
CHAIN_MAX = 28              # XT_EXTENSION_MAXNAMELEN - 1
U32 = 0xFFFFFFFF

# --- numbers --------------------------------------------------------------------------------

_NUM = re.compile(r"\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def strtoul(text: str) -> tuple[int, str] | None:
    """C strtoul(text, &end, 0): the number and what is left, or None if no digits."""
    m = _NUM.match(text)
    if m is None:
        return None
    digits = m.group(1)
    if digits[:2] in ("0x", "0X"):
        value = int(digits[2:], 16)
    elif digits.startswith("0") and len(digits) > 1:
        value = int(digits[1:], 8)
    else:
        value = int(digits)
    return value, text[m.end():]


def strtoui(text: str, low: int, high: int) -> int | None:
    """xtables_strtoui: the whole text is one number in [low, high]."""
    if text.lstrip().startswith("-"):
        return None
    parsed = strtoul(text)
    if parsed is None or parsed[1] != "":
        return None
    value = parsed[0]
    return value if low <= value <= high else None


# --- addresses ------------------------------------------------------------------------------

def ip_to_int(ip: str) -> int:
    a, b, c, d = ip.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def int_to_ip(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def prefix_mask(bits: int) -> int:
    return (U32 << (32 - bits)) & U32 if bits else 0


def mask_bits(mask: int) -> int | None:
    """The prefix length of a contiguous mask, or None."""
    if mask == 0:
        return 0
    inverted = ~mask & U32
    if inverted & (inverted + 1):
        return None
    return 32 - inverted.bit_length()


_QUAD = re.compile(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\."
                   r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def numeric_ip(text: str) -> int | None:
    """xtables_numeric_to_ipaddr: 1 to 4 dotted parts, each strtoul base 0, <= 255;
    missing parts are 0 (``1.2.3`` is 1.2.3.0)."""
    m = _QUAD.fullmatch(text)
    if m is not None:
        a, b, c, d = m.groups()
        return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    value = 0
    for i, part in enumerate(parts):
        parsed = strtoul(part)
        if parsed is None or parsed[1] != "" or parsed[0] > 255 or part.lstrip().startswith("-"):
            return None
        value |= parsed[0] << (24 - 8 * i)
    return value


def host_ip(text: str) -> int | None:
    """An address as xtables_ipparse_multiple resolves it: numeric, or a host name
    the machine knows (only ``localhost`` in the model)."""
    value = numeric_ip(text)
    if value is not None:
        return value
    if text == "localhost":
        return 0x7F000001
    return None


def parse_mask(text: str) -> int:
    if "." in text:
        value = numeric_ip(text)
        if value is None:
            raise XtError(f"host/network `{text}' not found")
        return value
    bits = strtoui(text, 0, 32)
    if bits is None:
        raise XtError(f"invalid mask `{text}' specified")
    return prefix_mask(bits)


def parse_addresses(text: str) -> list[tuple[int, int]]:
    """``-s``/``-d``: a comma-separated list of ``addr[/mask]``; each (network, mask)."""
    if text == "0.0.0.0/0":
        return [(0, 0)]
    out = []
    for item in text.split(","):
        addr, slash, mask_text = item.rpartition("/")
        if not slash:
            addr, mask = item, U32
        else:
            mask = parse_mask(mask_text)
        value = host_ip(addr)
        if value is None:
            raise XtError(f"host/network `{addr}' not found")
        if mask == 0:
            value = 0
        out.append((value & mask, mask))
    return out


def show_mask(mask: int) -> str:
    """xtables_ipmask_to_numeric: ``/24``, ``/255.0.255.0`` for a non-contiguous mask."""
    bits = mask_bits(mask)
    if bits is None:
        return "/" + int_to_ip(mask)
    return f"/{bits}"


def show_network(network: int, mask: int) -> str:
    return int_to_ip(network) + show_mask(mask)


def show_host_or_network(addr: int, mask: int) -> str:
    """As libxt_conntrack prints: no ``/32`` for a host, the address as given otherwise."""
    if mask == U32:
        return int_to_ip(addr)
    return int_to_ip(addr) + show_mask(mask)


def address_name(addr: int, numeric: bool) -> str:
    """xtables_ipaddr_to_anyname: a host name, a network name, or the number."""
    text = int_to_ip(addr)
    if numeric:
        return text
    return netdb.HOST_NAMES.get(text) or netdb.NETWORK_NAMES.get(text) or text


def parse_ip_exact(text: str) -> int | None:
    """inet_pton-style dotted quad (NAT targets, iprange)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part.isdigit() or len(part) > 3 or int(part) > 255:
            return None
        value = (value << 8) | int(part)
    return value


# --- ports ------------------------------------------------------------------------------------

def service_port(name: str, proto: str | None) -> int | None:
    """getservbyname(name, proto)."""
    table = netdb.SERVICE_PORTS.get(proto or "tcp")
    if table is None:
        return None
    return table.get(name)


def parse_port(text: str, proto: str | None) -> int:
    """xtables_parse_port: a number 0-65535 or a service name."""
    value = strtoui(text, 0, 65535)
    if value is not None:
        return value
    port = service_port(text, proto)
    if port is not None:
        return port
    raise XtError(f"invalid port/service `{text}' specified")


def parse_port_range(text: str, proto: str | None) -> tuple[int, int]:
    """``--dport a[:b]`` (``:b`` is ``0:b``, ``a:`` is ``a:65535``)."""
    low_text, colon, high_text = text.partition(":")
    if not colon:
        port = parse_port(text, proto)
        return port, port
    low = parse_port(low_text, proto) if low_text else 0
    high = parse_port(high_text, proto) if high_text else 65535
    if low > high:
        raise XtError("invalid portrange (min > max)")
    return low, high


def show_port_range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}:{high}"


def port_name(port: int, proto: str | None, numeric: bool) -> str:
    if numeric:
        return str(port)
    table = netdb.SERVICE_NAMES.get(proto or "tcp", {})
    return table.get(port, str(port))


# --- marks ------------------------------------------------------------------------------------

def parse_u32(text: str) -> int | None:
    return strtoui(text, 0, U32)


def parse_mark(text: str, ext: str, option: str) -> tuple[int, int]:
    """``value[/mask]`` for -m mark, MARK, CONNMARK (mask defaults to 0xffffffff)."""
    value_text, slash, mask_text = text.partition("/")
    value = parse_u32(value_text)
    mask = parse_u32(mask_text) if slash else U32
    if value is None or mask is None:
        raise XtError(f'{ext}: bad integer value for option "--{option}", or out of range.')
    return value, mask


# --- interfaces and chains -------------------------------------------------------------------

def parse_iface(text: str) -> str:
    if len(text) >= IFNAMSIZ:
        raise XtError(f"interface name `{text}' must be shorter than IFNAMSIZ ({IFNAMSIZ - 1})")
    if text == "":
        raise XtError("Empty interface is likely to be undesired")
    return text


def iface_matches(pattern: str, dev: str | None) -> bool:
    """``eth+`` matches every name starting with ``eth``; ``+`` alone matches any device."""
    if dev is None:
        return False
    if pattern.endswith("+"):
        return dev.startswith(pattern[:-1])
    return dev == pattern


# --- strings: iptables-save quoting ------------------------------------------------------------

_NO_QUOTE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def save_string(value: str) -> str:
    """xtables_save_string: bare when only [-_0-9A-Za-z], else double-quoted with
    ``"``, ``\\`` and ``'`` escaped."""
    if value and _NO_QUOTE.issuperset(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{escaped}"'


# --- probability -----------------------------------------------------------------------------

def parse_double(text: str) -> float | None:
    """strtod over the whole text (decimal, hex floats, inf, nan)."""
    stripped = text.lstrip()
    if not stripped or "_" in stripped:
        return None
    try:
        return float(stripped)
    except ValueError:
        pass
    try:
        return float.fromhex(stripped)
    except (ValueError, OverflowError):
        return None


def lround(value: float) -> int:
    if math.isnan(value) or math.isinf(value):
        return 0
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))
