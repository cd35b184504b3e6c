"""Rules parsed by their shape: kube-proxy writes thousands of rules that differ only in
a few values (an endpoint's address and port, a comment, the chain jumped to). A rule of
the shape of one parsed before is that parse with its own values put in, which costs a
regular expression match instead of a parse (netfilter.CompiledChain asks parse_stored;
netfilter.compile_stored does the same for the compiled rule).
"""

from __future__ import annotations

import re

from netlab.dataplane.routing import ip_int
from netlab.netfilter.rules import MatchCall, Option, TargetCall, parse_rule
from netlab.netfilter.values import CHAIN_MAX, save_string
from netlab.netfilter.xt import KNOWN_TARGETS, TARGETS

# Rules kube-proxy writes by the thousand differ only in a few values: ``-s EP/32 -m comment
# --comment "ns/svc:port" -j KUBE-MARK-MASQ``, ``-p tcp -m tcp -j DNAT --to-destination
# EP:PORT``, ``-m statistic … -j KUBE-SEP-…``. Where such a value stands the parser keeps
# it as a number or a text it reads nothing else of: the address of a leading ``-s A/M`` or
# ``-d A/M`` (masked), the chain of a final ``-j CHAIN`` (xt_parse_target checks its
# length; a name of a target, or of one netlab does not model, is no chain; "X" is the
# chain spec_of parses a rule in), the address and port of a final ``-j DNAT
# --to-destination A[:P]`` (a NAT range, printed back as given), a ``--comment`` and a
# ``--dport N`` between them. So a rule of the shape of one parsed before, other values in
# those places, is that parse with its own values (_filled). Values in their canonical form
# only (iptables-save's): each text is what the parser would print back.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_QUAD = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_SLOTS = re.compile(rf"(?:((?:! )?-s )({_QUAD})(/[0-9.]+) )?(?:((?:! )?-d )({_QUAD})(/[0-9.]+) )?"
                    rf"(.*?)(?:-j ([A-Za-z0-9][A-Za-z0-9_.-]*)|"
                    rf"-j DNAT --to-destination ({_QUAD})(?::([1-9][0-9]{{0,4}}|0))?)")
# in the words between: a comment (group 1) as save_string prints it, one word of the
# options it is read into (not "!", not "--…"); a port (group 2); any other quoted word
_MIDDLE = re.compile(r'(?<=-m comment --comment )'
                     r'("[^"\\\'!-][^"\\\']*"|[_0-9A-Za-z][-_0-9A-Za-z]*)(?= |$)|'
                     r'(?<=--dport )([1-9][0-9]{0,4}|0)(?= |$)|"(?:[^"\\]|\\.)*"')
PARSED_BY_SHAPE: dict[tuple, object] = {}      # a rule's shape (what is not a value): its parse
DOTTED_QUAD = re.compile(_QUAD)     # a dotted quad as ipaddress.IPv4Address reads one


def parse_stored(body: str):
    """parse_rule(body), but a rule of the shape of one parsed before is that rule with
    its own values."""
    found = shape_of(body)
    if found is None:
        return parse_rule(body)
    shape, values = found
    like = PARSED_BY_SHAPE.get(shape)
    if like is not None:
        return _filled(like, body, *values)
    parsed = parse_rule(body)
    # the shape is kept when its parse is what _filled makes of it with its own values
    filled = _filled(parsed, body, *values)
    if filled is not None and same_parse(filled, parsed):
        if len(PARSED_BY_SHAPE) >= 4096:
            PARSED_BY_SHAPE.clear()
        PARSED_BY_SHAPE[shape] = parsed
    return parsed


def shape_of(body: str) -> tuple[tuple, tuple] | None:
    """A rule's shape (what is not a value) and its values: (src, dst, the comments and
    ports between, chain, to, port); None when the rule has none of these shapes."""
    found = _SLOTS.fullmatch(body)
    if found is None:
        return None
    s_word, src, s_mask, d_word, dst, d_mask, middle, chain, to, port = found.groups()
    if chain is not None and (len(chain) > CHAIN_MAX or chain in TARGETS or
                              chain in KNOWN_TARGETS or chain == "X"):
        return None
    if port is not None and int(port) > 65535:
        return None
    values: tuple = ()
    if "--comment" in middle or "--dport" in middle or '"' in middle:
        cut = _cut(middle)
        if cut is None:
            return None
        middle, values = cut
    return ((s_word, s_mask, d_word, d_mask, middle, chain is None, port is None),
            (src, dst, values, chain, to, port))


def _cut(middle: str) -> tuple[str, tuple] | None:
    """The words between with their comments and ports cut out (NUL where they stood), and
    those values in order; None for a comment or port not in its canonical form."""
    parts = []
    values: list = []
    last = 0
    for found in _MIDDLE.finditer(middle):
        text, port = found.groups()
        if text is not None:
            if text[0] == '"':
                text = text[1:-1]
            if len(text) > 255 or save_string(text) != found.group(1):
                return None
            values.append(text)
        elif port is not None:
            if int(port) > 65535:
                return None
            values.append(int(port))
        else:
            continue
        parts.append(middle[last:found.start()])
        last = found.end()
    parts.append(middle[last:])
    return "\0".join(parts), tuple(values)


def _filled(like, body: str, src: str | None, dst: str | None, values: tuple,
            chain: str | None, to: str | None, port: str | None):
    """``like`` (a parse of the shape of ``body``) with the values of ``body``; None when
    the values do not sit in its matches as _cut found them."""
    fields = like.__dict__.copy()
    fields["text"] = body
    if src is not None and like.src is not None:
        fields["src"] = (ip_int(src) & like.src_mask, like.src[1])
    if dst is not None and like.dst is not None:
        fields["dst"] = (ip_int(dst) & like.dst_mask, like.dst[1])
    if values:
        matches = filled_matches(like.matches, values)
        if matches is None:
            return None
        fields["matches"] = matches
    fields["target"] = filled_target(like.target, chain, to, port)
    return frozen_from(like.__class__, fields)


def filled_target(target, chain: str | None, to: str | None, port: str | None):
    """The -j CHAIN, or the DNAT target, with its values."""
    if chain is not None:
        return frozen_from(TargetCall, {"name": chain, "options": (), "goto": False, "ext": None,
                                  "data": None})
    if target is None or not target.options:
        return target
    addr = ip_int(to)
    return frozen_from(TargetCall, {
        "name": target.name, "goto": False, "ext": target.ext,
        "options": (Option(target.options[0].name, to if port is None else f"{to}:{port}",
                           False),),
        "data": {"to": (((addr, addr), None if port is None else (int(port), int(port))),
                        False)}})


def filled_matches(matches: tuple, values: tuple) -> tuple | None:
    """The comment matches and the --dport of tcp/udp matches with ``values``, in order."""
    out = []
    left = iter(values)
    for m in matches:
        if m.module == "comment":
            text = next(left, None)
            if text.__class__ is not str:
                return None
            m = frozen_from(MatchCall, {"module": "comment", "ext": m.ext,
                                  "options": (Option("comment", text, False),),
                                  "data": {"comment": (text, False)}})
        elif (m.module == "tcp" or m.module == "udp") and "dport" in m.data:
            port = next(left, None)
            if port.__class__ is not int:
                return None
            negated = m.data["dport"][1]
            m = frozen_from(MatchCall, {
                "module": m.module, "ext": m.ext,
                "options": tuple(Option("dport", str(port), negated) if o.name == "dport"
                                 else o for o in m.options),
                "data": {**m.data, "dport": ((port, port), negated)}})
        out.append(m)
    if next(left, None) is not None:
        return None
    return tuple(out)


def frozen_from(cls, fields: dict):
    """A frozen dataclass from all its fields, without its __init__ (a frozen dataclass's
    fields are its instance dict; dataclasses.replace looks at every field)."""
    made = object.__new__(cls)
    object.__setattr__(made, "__dict__", fields)
    return made


def same_parse(a, b) -> bool:
    """Are two ParsedRules alike, also in what their matches and target keep for the
    packet (which their equality does not compare)?"""
    return a == b and [(m.ext, m.data) for m in a.matches] == \
        [(m.ext, m.data) for m in b.matches] and \
        (a.target is None or (a.target.ext, a.target.data) == (b.target.ext, b.target.data))
