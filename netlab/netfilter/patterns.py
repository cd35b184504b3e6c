"""Regular expressions that match only the canonical (iptables-save) form of a value.

The iptables-restore fast path (netlab.netfilter.restore) learns the shape of
a canonical rule line once, by parsing it in full, and then accepts other
lines of that shape with one regular expression: literal text where the first
line had fixed words, and one of these patterns where a value varies from
rule to rule (addresses, ports, comments, chain names, probabilities). An
option's ``pattern(first_value)`` gives the regex for values of that option
shaped like the first one, or None when the value must be the same in every
line of the template. A pattern must never match a value iptables-save would
print differently, or one iptables would refuse.
"""

from __future__ import annotations

import re
from typing import Callable

from netlab.netfilter.xt import KNOWN_TARGETS, STANDARD_TARGETS, TARGETS

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IP = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
PORT = r"(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3}|0)"
# xtables_save_string: bare [-_0-9A-Za-z]+, or quoted with " \ ' escaped (and then holding
# at least one character that needed the quotes).
_BARE = r"[-_0-9A-Za-z]+"
# Quoted: holds a character that needs the quotes and, to keep this fast, none that needs
# escaping (those take the slow path); at most 255 characters (a comment's limit).
_QUOTED = r'""|"(?=[^"]*[^-_0-9A-Za-z"])[^"\\\']{1,255}"'
STRING = rf"(?:{_BARE}|{_QUOTED})"
NAME = r"[^\s\"'\\!-][^\s\"'\\]{0,27}"

Pattern = Callable[[str], "str | None"]


def _full(regex: str, text: str) -> bool:
    return re.fullmatch(regex, text) is not None


def cidr(first: str) -> str | None:
    """-s/-d: hosts (``/32``) vary freely; other prefixes stay as first seen."""
    return IP + "/32" if first.endswith("/32") and _full(IP + "/32", first) else None


def ip(first: str) -> str | None:
    return IP if _full(IP, first) else None


def port(first: str) -> str | None:
    return PORT if _full(PORT, first) else None


def string(first: str) -> str | None:
    return STRING


def chain(first: str) -> str | None:
    """A chain name after -j / -g (chain_ok then refuses a target's name)."""
    return NAME


_BUILTIN = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})


def chain_ok(raw: str) -> bool:
    """Not a target, and not a built-in chain (jumping to one is refused by the kernel)."""
    return (raw not in TARGETS and raw not in KNOWN_TARGETS and raw not in STANDARD_TARGETS
            and raw not in _BUILTIN)


def name(first: str) -> str | None:
    return r"[^\s\"'\\]{1,31}" if _full(r"[^\s\"'\\]{1,31}", first) else None


def probability(first: str) -> str | None:
    return r"[01]\.\d{11}"


def nat_range(first: str) -> str | None:
    """``IP`` or ``IP:PORT`` (ranges stay as first seen)."""
    if _full(IP, first):
        return IP
    if _full(rf"{IP}:{PORT}", first):
        return rf"{IP}:{PORT}"
    return None


def set_match(first: str) -> str | None:
    """``NAME FLAGS`` of --match-set: the name varies, the flags stay."""
    set_name, _, flags = first.partition(" ")
    if not _full(r"[^\s\"'\\]{1,31}", set_name) or not _full(r"(?:src|dst)(?:,(?:src|dst)){0,5}",
                                                             flags):
        return None
    return r"[^\s\"'\\]{1,31} " + re.escape(flags)


_PROBABILITIES: dict[str, bool] = {}


def probability_ok(raw: str) -> bool:
    """0.33333333349 is canonical (it is what 1/3 becomes); 0.33333333333 is not."""
    known = _PROBABILITIES.get(raw)
    if known is None:
        from netlab.netfilter.matches import PROB_SCALE, show_probability
        from netlab.netfilter.values import lround
        value = float(raw)
        known = value <= 1.0 and show_probability(lround(PROB_SCALE * value)) == raw
        if len(_PROBABILITIES) < 65536:
            _PROBABILITIES[raw] = known
    return known
