"""Walking a namespace's iptables tables for one hook, as ipt_do_table does.

Which tables a hook consults, in priority order (raw -300, conntrack -200,
mangle -150, nat DNAT -100, filter 0, nat SNAT 100, conntrack confirm last):

    PREROUTING   raw, conntrack, mangle, nat (DST)
    INPUT        mangle, filter, nat (SRC), confirm
    FORWARD      mangle, filter
    OUTPUT       raw, conntrack, mangle, nat (DST), filter
    POSTROUTING  mangle, nat (SRC), confirm

A table's chain for the hook is walked rule by rule: the built-in matches
(-s -d -p -i -o), then each match in order; a match that answers a
probability p (``-m statistic --mode random``) forks the walk, and the
caller's ``choose(p)`` says which branch this walk takes. Targets end the
table (ACCEPT, a NAT target), the packet (DROP, REJECT), or move in the
chain stack (jump, goto, RETURN); the policy of the built-in chain decides
when nothing else did. One hop per rule that matched, one per deciding policy.

Rules are rule text in the World; each chain is compiled once per state of
the World (rules compiled lazily, cached; a rule of the shape of one compiled
before, kube-proxy's by the thousand, is that rule with its own addresses,
ports, comments and chain: compile_stored), and long chains are indexed by exact
destination: a rule whose only selective conditions are ``-d IP/32`` (with
``-p`` and ``--dport``) sits in a bucket, so a packet looks at the rules of
its own bucket and the rules that cannot be indexed, merged in chain order —
the positions it reports are those of the linear walk.

A walk's outcome is kept on its compiled table (one state of the World), keyed by
everything the rules can read of the packet; a walk that forked keeps the tree of
its branches, and a branch not walked yet is walked from its fork on (``walk``).
"""

from __future__ import annotations

import heapq
import ipaddress
import re
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

from netlab.dataplane.routing import ip_int, lookup_main
from netlab.dataplane.rule_shapes import (
    DOTTED_QUAD, PARSED_BY_SHAPE, filled_matches, filled_target, frozen_from, parse_stored,
    shape_of,
)
from netlab.model import Netns, World
from netlab.model.netfilter import Chain, Table
from netlab.netfilter import matches as _m
from netlab.netfilter import targets as _t
from netlab.netfilter.types import Action, PacketView
from netlab.trace import Hop, Packet

# What each hook does, in priority order: tables, "ct" (the conntrack look-up, after
# raw) and "confirm" (the entry joins the table; the last thing before the packet goes).
HOOK_SEQUENCE: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "ct", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "nat", "confirm"),
    "FORWARD": ("mangle", "filter"),
    "OUTPUT": ("raw", "ct", "mangle", "nat", "filter"),
    "POSTROUTING": ("mangle", "nat", "confirm"),
}
NAT_KINDS = ("dnat", "snat", "masquerade", "redirect")
INDEX_MIN_RULES = 16                # shorter chains are walked as they are
MAX_DEPTH = 64                      # jumps deeper than this: a loop iptables would refuse

# Words in a rule that make the kernel run conntrack in the namespace (nf_ct_netns_get).
_CONNTRACK_WORDS = ("-m conntrack", "-m state", "-m connmark", "-j CONNMARK", "-j CT",
                    "-j NOTRACK", "-m helper", "-m connlimit", "-m connbytes")

PROTO_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "all": None, "0": None}


# --- compiled chains ------------------------------------------------------------------------

_CHAIN_ACTION = Action("jump")    # what a -j CHAIN / -g CHAIN decides, but for its chain


class CompiledRule:
    """A parsed rule with its built-in matches as integer tests (what ip_packet_match
    checks: -s -d with masks, -p, -i -o with ``+``, each with ``!``), and its other
    matches without the ones that always match (``-m comment``)."""

    __slots__ = ("text", "src", "dst", "proto", "iin", "iout", "frag", "matches", "notes",
                 "target", "certain", "jump", "to_chain")

    def __init__(self, parsed, text: str, certain: bool = False):
        self.text = text            # "-A CHAIN body", as hops quote it
        self.jump: CompiledChain | None = None    # the chain a jump/goto leads to, once met
        self.src = _net_test(parsed.src, parsed.src_neg, parsed.src_mask)
        self.dst = _net_test(parsed.dst, parsed.dst_neg, parsed.dst_mask)
        # -f: only non-first fragments, which a traced packet never is
        self.frag = parsed.frag and not parsed.frag_neg
        proto = parsed.proto
        # (name, negated); name None for "all": every protocol
        self.proto = None if proto is None else (PROTO_NAMES.get(proto, proto), parsed.proto_neg)
        self.iin = _iface_test(parsed.in_iface, parsed.in_neg)
        self.iout = _iface_test(parsed.out_iface, parsed.out_neg)
        matches = self.matches = tuple(m for m in parsed.matches if m.module != "comment") \
            if parsed.matches else ()
        # what the model says about matches it approximates (-m limit always matches, …)
        self.notes = tuple(n for n in (m.note for m in matches) if n) if matches else ()
        # -j CHAIN / -g CHAIN: (kind, chain) known without asking the target
        target = self.target = parsed.target
        self.to_chain = None
        if target is not None and target.ext is None:
            self.to_chain = frozen_from(Action, {**_CHAIN_ACTION.__dict__, "chain": target.name,
                                           "kind": "goto" if target.goto else "jump"})
        # A rule of an index bucket met through its bucket: the packet's destination,
        # protocol and port are the bucket's, which is all the rule asks.
        self.certain = certain

    def builtin(self, src: int, dst: int, proto: str, view: PacketView) -> bool:
        t = self.src
        if t is not None and ((src & t[1]) == t[0]) == t[2]:
            return False
        t = self.dst
        if t is not None and ((dst & t[1]) == t[0]) == t[2]:
            return False
        t = self.proto
        if t is not None and (t[0] is None or t[0] == proto) == t[1]:
            return False
        t = self.iin
        if t is not None and _iface_match(t, view.in_dev) == t[2]:
            return False
        t = self.iout
        if t is not None and _iface_match(t, view.out_dev) == t[2]:
            return False
        return not self.frag


def _net_test(net: tuple[int, int] | None, neg: bool,
              mask: int | None = None) -> tuple[int, int, bool] | None:
    """(network, mask, negated); the mask as given (it need not be a prefix)."""
    if net is None:
        return None
    if not mask:
        plen = net[1]
        mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
    if mask == 0 and not neg:
        return None              # 0.0.0.0/0 matches everything
    return net[0] & mask, mask, neg


def _iface_test(name: str | None, neg: bool) -> tuple[str, bool, bool] | None:
    if name is None:
        return None
    return (name[:-1], True, neg) if name.endswith("+") else (name, False, neg)


def _iface_match(test: tuple[str, bool, bool], dev: str | None) -> bool:
    name, prefix, _ = test
    dev = dev or ""
    return dev.startswith(name) if prefix else dev == name


class CompiledChain:
    """One chain's rules, parsed on first use, with a destination index when long."""

    __slots__ = ("name", "chain", "rules", "count", "_parsed", "_buckets", "_others",
                 "_candidates", "compiled", "_certain")

    def __init__(self, name: str, chain: Chain):
        self.name = name
        self.chain = chain
        self.rules = chain.rules
        self.count = len(chain.rules)
        self._parsed: list = [None] * self.count
        self._buckets: dict[tuple, list[int]] | None = None
        self._others: list[int] = []
        self._candidates: dict[tuple, list[int]] = {}
        self.compiled: list[CompiledRule | None] = [None] * self.count
        self._certain: set[int] = set()
        if self.count >= INDEX_MIN_RULES:
            self._build_index()

    def compile(self, i: int) -> CompiledRule:
        compiled = self.compiled[i]
        if compiled is None:
            compiled = self.compiled[i] = compile_stored(self, i)
        return compiled

    def other_source(self, i: int, src: int) -> bool:
        """Does rule i begin with ``-s`` one address (a dotted quad, as iptables-save
        writes it) other than ``src``? Then it cannot match, and the walk need not compile
        it (kube-proxy's KUBE-SEP chains: the endpoint's own hairpin rule)."""
        body = self.rules[i]
        if not body.startswith("-s ") or i in self._certain:
            return False
        end = body.find(" ", 3)
        addr, _, length = body[3:end if end > 0 else None].partition("/")
        return (length == "32" or not length) and DOTTED_QUAD.fullmatch(addr) is not None \
            and ip_int(addr) != src

    def rule(self, i: int):
        parsed = self._parsed[i]
        if parsed is None:
            parsed = self._parsed[i] = parse_stored(self.rules[i])
        return parsed

    def text(self, i: int) -> str:
        return f"-A {self.name} {self.rules[i]}"

    def _build_index(self) -> None:
        buckets: dict[tuple, list[int]] = {}
        others: list[int] = []
        for i, body in enumerate(self.rules):
            key = quick_index_key(body)
            if key is None and "-d " in body:       # (no -d: not to be parsed for this)
                key = index_key(self.rule(i))
            if key is None:
                others.append(i)
            else:
                buckets.setdefault(key, []).append(i)
                self._certain.add(i)
        self._buckets = buckets
        self._others = others

    def meets(self, pkt: Packet) -> bool:
        """Does the packet meet a bucket of the index (a rule of it may match)?"""
        buckets = self._buckets
        if not buckets:
            return False
        proto = pkt.proto
        dport = pkt.dport if proto in ("tcp", "udp") else None
        dst = ip_int(pkt.dst)
        return (dst, proto, dport) in buckets or (dst, None, None) in buckets or \
            (dport is not None and (dst, proto, None) in buckets)

    def candidates(self, pkt: Packet) -> Sequence[int]:
        """Positions (0-based) a linear walk could match for this packet, in order."""
        if self._buckets is None:
            return range(self.count)
        proto = pkt.proto
        dport = pkt.dport if proto in ("tcp", "udp") else None
        key = (pkt.dst, proto, dport)
        found = self._candidates.get(key)
        if found is not None:
            return found
        dst = ip_int(pkt.dst)
        buckets = self._buckets
        lists = [lst for lst in (buckets.get((dst, proto, dport)),
                                 buckets.get((dst, proto, None)) if dport is not None else None,
                                 buckets.get((dst, None, None)),
                                 self._others) if lst]
        found = lists[0] if len(lists) == 1 else list(heapq.merge(*lists))
        if len(self._candidates) > 4096:
            self._candidates.clear()
        self._candidates[key] = found
        return found


# A rule of a shape compiled before, compiled as that rule with its own values (its parse is
# not made: a CompiledRule keeps what the walk asks, which _compiled_filled fills as
# rule_shapes fills a parse): the shape's CompiledRule and parse.
_COMPILED_BY_SHAPE: dict[tuple, tuple] = {}


def compile_stored(chain: "CompiledChain", i: int) -> "CompiledRule":
    """CompiledRule(chain.rule(i), …), but a rule of the shape of one compiled before is
    that rule with its own values."""
    body = chain.rules[i]
    certain = i in chain._certain
    found = shape_of(body) if chain._parsed[i] is None else None
    if found is not None:
        like = _COMPILED_BY_SHAPE.get(found[0])
        if like is not None:
            compiled = _compiled_filled(*like, chain.text(i), certain, *found[1])
            if compiled is not None:
                return compiled
    parsed = chain.rule(i)
    compiled = CompiledRule(parsed, chain.text(i), certain)
    if found is not None and found[0] in PARSED_BY_SHAPE:
        # as parse_stored: kept when it is what _compiled_filled makes of it
        filled = _compiled_filled(compiled, parsed, compiled.text, certain, *found[1])
        if filled is not None and same_compiled(filled, compiled):
            if len(_COMPILED_BY_SHAPE) >= 4096:
                _COMPILED_BY_SHAPE.clear()
            _COMPILED_BY_SHAPE[found[0]] = (compiled, parsed)
    return compiled


def _compiled_filled(like: "CompiledRule", parsed, text: str, certain: bool,
                     src: str | None, dst: str | None, values: tuple, chain: str | None,
                     to: str | None, port: str | None) -> "CompiledRule | None":
    """``like`` (a CompiledRule of the shape, ``parsed`` its parse) with these values."""
    made = object.__new__(CompiledRule)
    made.text, made.certain, made.jump = text, certain, None
    made.proto, made.iin, made.iout, made.frag = like.proto, like.iin, like.iout, like.frag
    t = like.src        # (a -s that is no value, further in the rule, stays as it is)
    made.src = t if t is None or src is None else (ip_int(src) & t[1], t[1], t[2])
    t = like.dst
    made.dst = t if t is None or dst is None else (ip_int(dst) & t[1], t[1], t[2])
    if any(value.__class__ is int for value in values):      # a --dport: its match changes
        matches = filled_matches(parsed.matches, values)
        if matches is None:
            return None
        made.matches = tuple(m for m in matches if m.module != "comment")
        made.notes = tuple(n for n in (m.note for m in made.matches) if n)
    else:
        made.matches, made.notes = like.matches, like.notes
    made.target = filled_target(like.target, chain, to, port)
    made.to_chain = like.to_chain if chain is None else \
        frozen_from(Action, {**like.to_chain.__dict__, "chain": chain})
    return made


def same_compiled(a: "CompiledRule", b: "CompiledRule") -> bool:
    """Are two CompiledRules alike in every slot (matches and target also in what they
    keep for the packet)?"""
    for name in CompiledRule.__slots__:
        if name not in ("matches", "target") and getattr(a, name) != getattr(b, name):
            return False
    return [(m, m.ext, m.data) for m in a.matches] == [(m, m.ext, m.data) for m in b.matches] \
        and a.target == b.target and (a.target is None or (a.target.ext, a.target.data) ==
                                      (b.target.ext, b.target.data))


# The canonical text of a rule that tests only destination, protocol and port, as
# iptables-save prints kube-proxy's KUBE-SERVICES rules (comments allowed, any target):
# its index key can be read without parsing the rule.
_QUICK = re.compile(r'-d (\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})/32 -p (tcp|udp)'
                    r'(?: -m comment --comment (?:"(?:[^"\\]|\\.)*"|[^\s"]+))*'
                    r' -m (tcp|udp) --dport (\d{1,5})(?: -m comment --comment '
                    r'(?:"(?:[^"\\]|\\.)*"|[^\s"]+))* -[jg] ')


def quick_index_key(body: str) -> tuple | None:
    found = _QUICK.match(body)
    if found is None or found.group(2) != found.group(3):
        return None
    try:
        dst = ip_int(found.group(1))
    except (OSError, ValueError):
        return None
    return dst, found.group(2), int(found.group(4))


def index_key(rule) -> tuple | None:
    """(dst as int, proto, dport) for a rule that can only match that destination, or
    None when the rule must be looked at for every packet."""
    if rule.dst is None or rule.dst_neg or rule.dst[1] != 32:
        return None
    if rule.src is not None or rule.src_neg or rule.in_iface or rule.out_iface:
        return None
    if rule.proto_neg:
        return None
    proto = PROTO_NAMES.get(rule.proto, rule.proto) if rule.proto is not None else None
    dport = None
    for m in rule.matches:
        if m.module == "comment":
            continue
        if m.module != proto or proto not in ("tcp", "udp"):
            return None
        options = rule.match_options(m.module) or {}
        if set(options) - {"dport"}:
            return None
        if "dport" in options:
            value, negated = options["dport"]
            if negated or not str(value).isdigit():
                return None
            dport = int(value)
    if dport is not None and proto is None:
        return None
    return (rule.dst[0], proto, dport)


_CONN_WORDS = ("-m conntrack", "-m state", "-m connmark", "-j CONNMARK", "-m connlimit",
               "-m connbytes", "-m helper")


class Shared:
    """What is derived from a Table's or a Chain's rules alone, for one state of the
    World: namespaces that hold the very same Table (a cluster's nodes share
    kube-proxy's) parse, index and scan its rules once. Entries hold the object they were
    made from, so a key (its id) is only trusted while that object is the one held."""

    __slots__ = ("chains", "words", "walks", "reads")

    def __init__(self):
        self.chains: dict[tuple[int, str], CompiledChain] = {}
        self.words: dict[tuple[int, tuple[str, ...]], tuple[Table, bool]] = {}
        # walk(): the walks whose key says all they read (reads_of), for every namespace
        # that holds the Table
        self.walks: dict[tuple[int, str], tuple[Table, dict]] = {}
        self.reads: dict[tuple[int, str, str],
                         tuple[Table, "frozenset[str] | Indexed | None"]] = {}

    def reads_of(self, table: "CompiledTable", hook: str) -> "frozenset[str] | Indexed | None":
        key = (id(table.table), table.name, hook)
        found = self.reads.get(key)
        if found is None or found[0] is not table.table:
            found = self.reads[key] = (table.table, reads_of(table, hook))
        return found[1]

    def walk_memo(self, name: str, table: Table) -> dict:
        key = (id(table), name)
        found = self.walks.get(key)
        if found is None or found[0] is not table:
            found = self.walks[key] = (table, {})
        return found[1]

    def chain(self, name: str, chain: Chain) -> CompiledChain:
        key = (id(chain), name)
        compiled = self.chains.get(key)
        if compiled is None or compiled.chain is not chain or compiled.count != len(chain.rules):
            compiled = self.chains[key] = CompiledChain(name, chain)
        return compiled

    def any_word(self, table: Table, words: tuple[str, ...]) -> bool:
        key = (id(table), words)
        found = self.words.get(key)
        if found is None or found[0] is not table:
            found = self.words[key] = (table, _any_word(table, words))
        return found[1]


class CompiledTable:
    __slots__ = ("name", "table", "_shared", "_uses_conn", "memo", "reads", "_shared_memo",
                 "addrtype")

    def __init__(self, name: str, table: Table, shared: Shared | None = None,
                 addrtype: Callable[[], Callable] | None = None):
        self.name = name
        self.table = table
        # the namespace's address types (address_types), for walk keys made without a view
        self.addrtype = addrtype
        self._shared = shared if shared is not None else Shared()
        self._uses_conn: bool | None = None
        # walk(): one state of the World, and of this namespace (its addresses count)
        self.memo: dict[tuple, "_Fork | _Leaf"] = {}
        # by hook: what the rules a walk from the hook's chain can meet read (reads_of)
        self.reads: dict[str, "frozenset[str] | Indexed | None"] = {}
        self._shared_memo: dict | None = None

    @property
    def shared_memo(self) -> dict:
        """walk(): the memo of the walks that read nothing of the namespace, shared by
        the namespaces that hold this very Table."""
        if self._shared_memo is None:
            self._shared_memo = self._shared.walk_memo(self.name, self.table)
        return self._shared_memo

    @property
    def uses_conn(self) -> bool:
        """Does any rule of the table look at the packet's connection? (If none does, a
        walk needs no ConnView.)"""
        if self._uses_conn is None:
            self._uses_conn = self._shared.any_word(self.table, _CONN_WORDS)
        return self._uses_conn

    def chain(self, name: str) -> CompiledChain | None:
        chain = self.table.chains.get(name)
        if chain is None:
            return None
        return self._shared.chain(name, chain)


class NetnsRules:
    """The compiled tables of one namespace, for one state of the World."""

    __slots__ = ("ns", "_tables", "tracks", "_plans", "_addrtype", "_shared")

    def __init__(self, ns: Netns, shared: Shared | None = None):
        self.ns = ns
        self._tables: dict[str, CompiledTable] = {}
        self._shared = shared if shared is not None else Shared()
        self.tracks = needs_conntrack(ns, self._shared)
        self._plans: dict[str, tuple] = {}
        self._addrtype: Callable | None = None

    def plan(self, hook: str) -> tuple[tuple[str, CompiledTable | None], ...]:
        """The steps of HOOK_SEQUENCE that do something here: ("ct"|"confirm", None),
        ("nat", table or None) when conntrack runs, ("walk", table) for a table whose
        chain for the hook has rules or a DROP policy."""
        plan = self._plans.get(hook)
        if plan is None:
            steps = []
            for step in HOOK_SEQUENCE[hook]:
                if step in ("ct", "confirm"):
                    if self.tracks:
                        steps.append((step, None))
                    continue
                table = self.table(step)
                chain = table.table.chains.get(hook) if table is not None else None
                busy = chain is not None and (chain.rules or (chain.policy or "").upper() == "DROP")
                if step == "nat":
                    if self.tracks:
                        steps.append(("nat", table if busy else None))
                elif busy:
                    steps.append(("walk", table))
            plan = self._plans[hook] = tuple(steps)
        return plan

    def addrtype(self) -> Callable[[str, str | None], str]:
        if self._addrtype is None:
            self._addrtype = address_types(self.ns)
        return self._addrtype

    def table(self, name: str) -> CompiledTable | None:
        table = self.ns.tables.get(name)
        if table is None:
            return None
        compiled = self._tables.get(name)
        if compiled is None or compiled.table is not table:
            compiled = self._tables[name] = CompiledTable(name, table, self._shared,
                                                          self.addrtype)
        return compiled

    @property
    def active(self) -> bool:
        return bool(self.ns.tables)


def needs_conntrack(ns: Netns, shared: Shared | None = None) -> bool:
    """The kernel runs conntrack in a namespace once a rule there needs it: any nat
    table, or a match or target that looks at connections."""
    if "nat" in ns.tables:
        return True
    if shared is None:
        return any(_any_word(table, _CONNTRACK_WORDS) for table in ns.tables.values())
    return any(shared.any_word(table, _CONNTRACK_WORDS) for table in ns.tables.values())


def _any_word(table: Table, words: tuple[str, ...]) -> bool:
    """Is one of ``words`` in a rule of ``table``? (The rules searched as one text: no
    word holds a newline, so none is found across two rules.)"""
    text = "\n".join(["\n".join(chain.rules) for chain in table.chains.values()])
    return any(word in text for word in words)


_CACHE: dict[int, tuple[weakref.ref, int, dict[str, NetnsRules], Shared]] = {}


def rules_of(world: World, ns: Netns) -> NetnsRules:
    generation = getattr(world, "_generation", 0)
    cached = _CACHE.get(id(world))
    if cached is None or cached[0]() is not world or cached[1] != generation:
        key = id(world)
        cached = (weakref.ref(world, lambda _r, key=key: _CACHE.pop(key, None)), generation, {},
                  Shared())
        _CACHE[key] = cached
    per_ns = cached[2]
    found = per_ns.get(ns.key)
    if found is None or found.ns is not ns:
        found = per_ns[ns.key] = NetnsRules(ns, cached[3])
    return found


# --- the walk ----------------------------------------------------------------------------------

@dataclass
class Decision:
    """How a table's walk for a hook ended."""
    kind: str                       # accept | drop | reject | dnat | snat | masquerade | redirect
    action: Action | None = None    # the target's answer (None for a policy)
    hop: Hop | None = None          # the hop that says so (None: an empty chain's ACCEPT policy)
    table: str = ""
    chain: str = ""
    rule: str | None = None         # "-A CHAIN body", or None when the policy decided
    position: int | None = None     # 1-based, as iptables -L --line-numbers counts
    notrack: bool = False           # NOTRACK / CT --notrack was hit on the way

    @property
    def by_policy(self) -> bool:
        return self.rule is None


def walk(ns: Netns, table: CompiledTable, hook: str, view: PacketView,
         choose: Callable[[float], bool], hops: list[Hop], key: tuple | None = None
         ) -> Decision:
    """Walk ``table``'s built-in chain for ``hook``; hops for matched rules go to ``hops``.

    A walk is a pure function of what its rules can read (the view's packet, devices,
    physdev, mark, and the connection when the table looks at connections), of the
    namespace's state (its tables, addresses, routes and ipsets: one state of the World,
    which the compiled table belongs to) and of the branches ``choose`` takes at the
    probability forks on the way. So it is memoized on the compiled table: the key is
    everything the rules can read, and a walk that forked is a tree of its branches,
    followed by asking ``choose`` the same questions in the same order. A hit appends
    copies of the hops the walk made and leaves the view's mark and connmark as the walk
    did. A branch the tree does not hold yet is walked from its fork on: each fork keeps
    where the walk stood (_Fork.resume).

    A walk whose rules read no more than reads_of says (``reads`` not None) reads nothing
    of the namespace but the address types its key holds: no set, conntrack table or
    route, only the view's fields its key holds, and the namespace's name and node only to
    label its hops. Such walks are kept once for every namespace that holds the very same
    Table (a cluster's nodes share kube-proxy's), and a namespace other than the one that
    walked gets the hops relabelled with its own node and name. (So a packet to a pod,
    which meets no Service in kube-proxy's KUBE-SERVICES and no LOCAL address in
    ``-m addrtype --dst-type LOCAL``, walks nat PREROUTING once for every node.)
    (``key``: the view's walk_key, when the caller has made it already.)"""
    reads = walk_reads(table, hook)
    if reads.__class__ is Indexed:
        reads = reads.of(view.packet)
    if key is None:
        key = _walk_key(table, hook, view, reads)
    memo = _memo_of(table, reads)
    node = memo.get(key)
    if node.__class__ is _Leaf:
        return node.replay(view, hops, ns)
    fork: _Fork | None = None
    branch = False
    while node is not None and node.__class__ is _Fork:
        fork = node
        branch = choose(node.p)
        node = node.next.get(branch)
    if node is not None:
        return node.replay(view, hops, ns)
    forks: list[tuple] = []
    start = len(hops)
    if fork is None:
        decided = _walk(ns, table, hook, view, choose, hops, forks)
        if len(memo) >= WALK_MEMO_SIZE and key not in memo:
            memo.clear()
    else:
        decided = fork.resume(ns, table, hook, view, choose, hops, forks, branch)
    leaf = _Leaf(ns, decided, hops, start, view, reads, table.uses_conn)
    # the forks met since ``fork`` (or from the start), then the leaf
    for p, answer, state in forks:
        here = _Fork(p, ns, state, hops, start, reads, table.uses_conn)
        if fork is None:
            memo[key] = here
        else:
            fork.next[branch] = here
        fork, branch = here, answer
    if fork is None:
        memo[key] = leaf
    else:
        fork.next[branch] = leaf
    return decided


WALK_MEMO_SIZE = 8192       # walks remembered per compiled table (then it starts again)
SHARE_WALKS = True          # False: every namespace walks for itself (the oracle of tests)


def walk_reads(table: "CompiledTable", hook: str) -> "frozenset[str] | Indexed | None":
    """reads_of(table, hook), kept on the compiled table."""
    try:
        return table.reads[hook]
    except KeyError:
        reads = table.reads[hook] = table._shared.reads_of(table, hook)
        return reads


def _memo_of(table: "CompiledTable", reads) -> dict:
    """Where a walk that reads ``reads`` is kept: with the namespace's compiled table, or
    (reading nothing of the namespace) with every namespace holding the same Table."""
    return table.memo if reads is None or not SHARE_WALKS else table.shared_memo


def kept_leaf(table: "CompiledTable", hook: str, p: Packet, where: tuple, mark: int,
              conn: tuple | None) -> "tuple[_Leaf | None, tuple | None]":
    """The kept walk for a packet when it did not fork (walk's memo hit, for a caller that
    has no PacketView yet: it makes one only to walk), else None; and the walk's key (for
    walk). The arguments are those of walk_key (the address types, when the rules read
    some, are the namespace's: what the engine's view has)."""
    reads = walk_reads(table, hook)
    if reads.__class__ is Indexed:
        reads = reads.of(p)
    types = None
    if reads is not None and "addrtype" in reads:
        if table.addrtype is None:
            return None, None       # (walk asks the view)
        types = _types_key(table.addrtype(), p, reads)
    key = walk_key(table, hook, reads, p, where, mark, conn, types)
    node = _memo_of(table, reads).get(key)
    return (node if node.__class__ is _Leaf else None), key


def walk_key(table: "CompiledTable", hook: str, reads: frozenset[str] | None, p: Packet,
             where: tuple, mark: int, conn: tuple | None, types: tuple | None = None) -> tuple:
    """Everything a table's rules can read of the packet (matches and targets read only
    these; a connection only through ``-m conntrack/state/connmark`` and ``-j CONNMARK``,
    which make ``uses_conn``); with ``reads`` (reads_of), only what the rules met from the
    hook's chain read. ``where`` is (in_dev, out_dev, physdev_in, physdev_out, bridged);
    ``conn`` the connection as (state, status, direction, orig, reply, connmark), orig and
    reply as (src, sport, dst, dport) like conntrack.Tuple — None when the table does not
    look at connections, or the packet has no ConnView; ``types`` the address types the
    rules read (_types_key), when they read some. A plain Packet is in the key as its
    fields (what its equality compares: a tuple is hashed and compared without calls into
    Python)."""
    ck = None if conn is None else _conn_key(reads, *conn)
    if types is not None:
        ck = (ck, types)        # the address types read (of this namespace), with the connection
    if reads is not None and "packet" not in reads:
        return ("reads", hook, where[0] if "in_dev" in reads else None,
                where[1] if "out_dev" in reads else None,
                mark if "mark" in reads else None, ck,
                p.src if "src" in reads else None, p.dst if "dst" in reads else None,
                p.proto if "proto" in reads else None)
    if p.__class__ is Packet:
        return (hook, where, mark, ck, p.proto, p.src, p.dst, p.sport, p.dport, p.ttl,
                p.icmp_type, p.icmp_code, p.tcp_flags)
    return (hook, where, mark, ck, p)


def _conn_key(reads: frozenset[str] | None, state: str, status, direction: str, orig: tuple,
              reply: tuple, mark: int) -> tuple:
    """The connection's part of a walk's key: with ``reads``, only what the rules read."""
    if reads is None or "conn" in reads:
        return (state, frozenset(status), direction, orig, reply, mark)
    return ((state, frozenset(status)) if "ct_state" in reads else None,
            direction if "ct_dir" in reads else None,
            (orig, reply) if "ct_tuples" in reads else None,
            mark if "ct_mark" in reads else None)


def _walk_key(table: "CompiledTable", hook: str, view: PacketView,
              reads: frozenset[str] | None) -> tuple:
    """walk_key for a PacketView."""
    c = view.conn
    uses_conn = table._uses_conn
    if uses_conn is None:
        uses_conn = table.uses_conn
    conn = None if c is None or not uses_conn else (
        c.state, c.status, c.direction, (c.orig_src, c.orig_sport, c.orig_dst, c.orig_dport),
        (c.reply_src, c.reply_sport, c.reply_dst, c.reply_dport), c.mark)
    return walk_key(table, hook, reads, view.packet, (view.in_dev, view.out_dev,
                    view.physdev_in, view.physdev_out, view.bridged), view.mark, conn,
                    _types_key(view.addrtype, view.packet, reads)
                    if reads is not None and "addrtype" in reads else None)


def _types_key(types: Callable, p: Packet, reads: frozenset[str]) -> tuple:
    """What -m addrtype matches read (no --limit-iface-*): the source's and destination's
    address types (``types``: address_types), or only whether they are LOCAL when no match
    asks about another type."""
    out = []
    for ip, kind, local in ((p.src, "src_type", "src_local"), (p.dst, "dst_type", "dst_local")):
        if ip is None or kind in reads:
            out.append(types(ip, None) if ip is not None else None)
        elif local in reads:
            is_local = getattr(types, "local", None)
            out.append(is_local(ip) if is_local is not None else types(ip, None) == "LOCAL")
        else:
            out.append(None)
    return tuple(out)


# What the matches and targets whose code reads no more than this read of the packet's view
# ("packet": any field of the packet; "mark": skb->mark; of the connection "ct_state" its
# state and status, "ct_dir" its direction, "ct_tuples" its tuples, "ct_mark" its mark,
# "conn" all of it). Any other match or target may read anything (physdev, addrtype, sets,
# LOG, …).
_MATCH_READS = {_m.Comment: (), _m.Statistic: (), _m.Mark: ("mark",), _m.State: ("ct_state",),
                _m.Connmark: ("ct_mark",), _m.Tcp: ("packet",), _m.Udp: ("packet",)}
_TARGET_READS = {_t.Accept: (), _t.Drop: (), _t.Return: (), _t.Mark: ("mark",),
                 _t.Connmark: ("ct_mark", "mark"), _t.Dnat: (), _t.Snat: (),
                 _t.Masquerade: ()}
# -m conntrack, by option (Conntrack.evaluate): every use reads the state (UNTRACKED
# or not); an option not listed here, all of the connection.
_CONNTRACK_READS = {"ctstate": (), "ctstatus": (), "ctexpire": (), "ctdir": ("ct_dir",),
                    "ctproto": ("proto",),
                    **{name: ("ct_tuples",) for name in ("ctorigsrc", "ctorigdst", "ctreplsrc",
                                                         "ctrepldst", "ctorigsrcport",
                                                         "ctorigdstport", "ctreplsrcport",
                                                         "ctrepldstport")}}


def _match_reads(m) -> tuple[str, ...] | None:
    if type(m.ext) is _m.Addrtype:
        if "in" in m.data or "out" in m.data:
            return None         # the types on a device
        return ("addrtype",) + tuple(
            f"{side}_local" if m.data[side][0] == {"LOCAL"} else f"{side}_type"
            for side in ("src", "dst") if side in m.data)
    if type(m.ext) is _m.Conntrack:
        out = ["ct_state"]
        for option in m.data or ():
            found = _CONNTRACK_READS.get(option)
            if found is None:
                return ("conn",)
            out.extend(found)
        return tuple(out)
    return _MATCH_READS.get(type(m.ext))
READS_BUDGET = 64       # rules looked at for reads_of (more: the walk may read anything)


def reads_of(table: "CompiledTable", hook: str) -> "frozenset[str] | Indexed | None":
    """What the rules a walk from ``hook``'s chain can meet read of the packet's view:
    "src", "dst", "proto", "in_dev", "out_dev" (the built-in matches), and those of
    _MATCH_READS and _TARGET_READS; None when one of them may read anything, or there are
    too many. Of an indexed chain only the rules outside its index are looked at, and the
    answer is an Indexed: what a packet that meets none of the buckets reads."""
    reads: set[str] = set()
    todo = [table.chain(hook)]
    seen: set[str] = set()
    indexed: list[CompiledChain] = []
    budget = READS_BUDGET
    while todo:
        chain = todo.pop()
        if chain is None or chain.name in seen:
            continue
        seen.add(chain.name)
        if chain._buckets is None:
            positions: Sequence[int] = range(chain.count)
        else:
            positions = chain._others
            indexed.append(chain)
        budget -= len(positions)
        if budget < 0:
            return None
        for i in positions:
            try:
                rule = chain.compile(i)
            except Exception:       # noqa: BLE001 — a rule a walk may never meet
                return None
            for test, name in ((rule.src, "src"), (rule.dst, "dst"), (rule.proto, "proto"),
                               (rule.iin, "in_dev"), (rule.iout, "out_dev")):
                if test is not None:
                    reads.add(name)
            for m in rule.matches:
                found = _match_reads(m)
                if found is None:
                    return None
                reads.update(found)
            if rule.to_chain is not None:
                todo.append(table.chain(rule.to_chain.chain or ""))
            elif rule.target is not None:
                found = _TARGET_READS.get(type(rule.target.ext))
                if found is None:
                    return None
                reads.update(found)
    if indexed:
        return Indexed(tuple(indexed), frozenset(reads))
    return frozenset(reads)


class Indexed:
    """reads_of for walks that meet indexed chains (kube-proxy's KUBE-SERVICES): a packet
    that meets none of their buckets (no Service has its destination and port) meets only
    the rules outside them, which read ``reads``; one that meets a bucket may read
    anything."""

    __slots__ = ("chains", "reads")

    def __init__(self, chains: tuple[CompiledChain, ...], reads: frozenset[str]):
        self.chains = chains
        self.reads = reads

    def of(self, pkt: Packet) -> frozenset[str] | None:
        for chain in self.chains:
            if chain.meets(pkt):
                return None
        return self.reads


class _Fork:
    """A probability fork of a memoized walk: the probability asked, what follows each
    answer, and where the walk stood when it asked (its chain stack, the rule and the
    match that forked, the marks, the hops made so far), to walk on from there."""

    __slots__ = ("p", "next", "state", "hops", "labels", "mark", "connmark")

    def __init__(self, p: float, ns: Netns, state: tuple, hops: list[Hop], start: int,
                 reads: frozenset[str] | None, uses_conn: bool):
        self.p = p
        self.next: dict[bool, "_Fork | _Leaf"] = {}
        mark, connmark, made = state[-3:]
        self.state = state[:-3]
        self.hops = hops[start:made]
        self.labels = (ns.node, ns.name)
        # as _Leaf: the marks where the walk may have changed them (then they are in its key)
        self.mark = mark if reads is None or "mark" in reads else None
        self.connmark = connmark if uses_conn and (
            reads is None or "conn" in reads or "ct_mark" in reads) else None

    def resume(self, ns: Netns, table: "CompiledTable", hook: str, view: PacketView,
               choose: Callable[[float], bool], hops: list[Hop], forks: list[tuple],
               branch: bool) -> "Decision":
        """The walk from this fork on, the fork answered ``branch``: what _walk does from
        the start, asking ``choose`` the same questions after this one."""
        labels = (ns.node, ns.name)
        hops.extend(self.hops if labels == self.labels
                    else [relabel_hop(hop, *labels) for hop in self.hops])
        if self.mark is not None:
            view.mark = self.mark
        if self.connmark is not None and view.conn is not None:
            view.conn.mark = self.connmark
        return _walk(ns, table, hook, view, choose, hops, forks, (self.p, branch) + self.state)


def copy_hop(hop: Hop) -> Hop:
    new = object.__new__(Hop)
    state = hop.__dict__.copy()
    if state["extra"] is not None:
        state["extra"] = dict(state["extra"])
    new.__dict__ = state
    return new


def relabel_hop(hop: Hop, node: str, netns: str) -> Hop:
    """A netfilter hop as another namespace makes it (a walk's hops name nothing else of
    their namespace): a copy that shares ``extra``, as the hops a kept walk replays do (the
    engine adds only to a deciding hop, which replay_hops copies first)."""
    new = object.__new__(Hop)
    new.__dict__ = {**hop.__dict__, "node": node, "netns": netns}
    return new


class _Leaf:
    """How a walk ended: its hops, its Decision (with the index of its hop among them) and
    the marks it left. The hops are those the walk made, shared (hops are not changed once
    made), but for the deciding one of a NAT, DROP or REJECT, which the engine may add to:
    a copy of it as it was when the walk ended."""

    __slots__ = ("hops", "decided", "index", "accepted", "mark", "connmark", "origin", "labels",
                 "relabelled")

    def __init__(self, ns: Netns, decided: Decision, hops: list[Hop], start: int,
                 view: PacketView, reads: frozenset[str] | None = None, uses_conn: bool = True):
        self.hops = made = hops[start:]
        # the namespace that walked, as its hops name it; others' hops, made on first use
        self.origin = ns
        self.labels = (ns.node, ns.name)
        self.relabelled: dict[tuple[str, str], tuple[list[Hop], Decision]] | None = None
        self.index = None
        hop = decided.hop
        self.accepted = None        # an ACCEPT's hop: where it is among the walk's hops
        if hop is not None and decided.kind == "accept":
            self.accepted = next(i for i in range(len(made) - 1, -1, -1) if made[i] is hop)
        elif hop is not None:
            # the engine adds to the hop of a NAT, DROP or REJECT only
            self.index = next(i for i in range(len(made) - 1, -1, -1) if made[i] is hop)
            hop = made[self.index] = copy_hop(hop)
        self.decided = Decision(decided.kind, decided.action, hop, decided.table,
                                decided.chain, decided.rule, decided.position, decided.notrack)
        # The marks as the walk left them, where it can change them (MARK, CONNMARK): then
        # they are in its key too. Elsewhere a replay leaves the view's marks alone.
        self.mark = view.mark if reads is None or "mark" in reads else None
        self.connmark = view.conn.mark if view.conn is not None and uses_conn and (
            reads is None or "conn" in reads or "ct_mark" in reads) else None

    def replay(self, view: PacketView, hops: list[Hop], ns: Netns) -> Decision:
        """The walk again, in ``ns``: its hops shared, but for the deciding one (a copy)."""
        if self.mark is not None:
            view.mark = self.mark
        if self.connmark is not None and view.conn is not None:
            view.conn.mark = self.connmark
        return self.replay_hops(hops, ns)

    def replay_hops(self, hops: list[Hop], ns: Netns) -> Decision:
        """The walk's hops and Decision again, in ``ns`` (the marks it left are the
        caller's: ``mark`` and ``connmark``, None where it leaves them alone)."""
        made, d = (self.hops, self.decided) if ns is self.origin else self._relabelled(ns)
        start = len(hops)
        hops.extend(made)
        if self.index is None:
            return d
        hop = hops[start + self.index] = copy_hop(made[self.index])
        return Decision(d.kind, d.action, hop, d.table, d.chain, d.rule, d.position, d.notrack)

    def _relabelled(self, ns: Netns) -> tuple[list[Hop], Decision]:
        """The walk's hops as ``ns`` makes them, and its Decision with them (an ACCEPT's hop
        is among them); made on first use."""
        labels = (ns.node, ns.name)
        if labels == self.labels:
            return self.hops, self.decided
        found = self.relabelled.get(labels) if self.relabelled is not None else None
        if found is None:
            if self.relabelled is None:
                self.relabelled = {}
            made = [relabel_hop(hop, *labels) for hop in self.hops]
            d = self.decided
            if self.index is None and d.hop is not None:
                d = Decision(d.kind, d.action, made[self.accepted], d.table, d.chain, d.rule,
                             d.position, d.notrack)
            found = self.relabelled[labels] = (made, d)
        return found


def _walk(ns: Netns, table: CompiledTable, hook: str, view: PacketView,
          choose: Callable[[float], bool], hops: list[Hop], forks: list[tuple] | None = None,
          resume: tuple | None = None) -> Decision:
    """The walk itself. Each probability fork is logged to ``forks``: (p, the branch
    taken, where the walk stood: what _Fork keeps); ``resume`` is (p, branch) and such a
    state, to walk on from that fork."""
    tname = table.name
    base = table.chain(hook)
    if base is None:
        return Decision("accept", table=tname, chain=hook)
    if base.count == 0:
        return _policy(ns, tname, base, hops, notrack=False)
    pkt = view.packet
    src_i = ip_int(pkt.src) if pkt.src else 0
    dst_i = ip_int(pkt.dst)
    proto = pkt.proto
    pending = None          # (the first match to evaluate, chance): a rule half matched
    if resume is None:
        chain = base
        cands = chain.candidates(pkt)
        i = 0
        stack: list[tuple[CompiledChain, Sequence[int], int]] = []
        notrack = False
    else:
        p, branch, chain, cands, i, stack, notrack, pos, rule, k, chance = resume
        stack = list(stack)
        if branch:
            pending = (k + 1, chance * p)
    compiled = chain.compiled
    end = len(cands)
    while True:
        if pending is None:
            if i >= end:
                if stack:
                    chain, cands, i = stack.pop()
                    compiled, end = chain.compiled, len(cands)
                    continue
                return _policy(ns, tname, base, hops, notrack)
            pos = cands[i]
            i += 1
            rule = compiled[pos]
            if rule is None:
                if chain.other_source(pos, src_i):
                    continue        # what its -s matches: not compiled for that
                rule = chain.compile(pos)
            chance = 1.0            # the probability of the branch where this rule matches
            if rule.certain:
                first = None
            elif not rule.builtin(src_i, dst_i, proto, view):
                continue
            else:
                first = 0 if rule.matches else None
        else:
            first, chance = pending
            pending = None
        if first is not None:
            matched = True
            matches = rule.matches
            for k in range(first, len(matches)):
                r = matches[k].evaluate(view)
                if r is True:
                    continue
                if r is False or r is None:
                    matched = False
                    break
                p = float(r)
                if p >= 1.0:
                    continue
                if p <= 0.0:
                    matched = False
                    break
                branch = choose(p)
                if forks is not None:
                    conn = view.conn
                    forks.append((p, branch, (chain, cands, i, tuple(stack), notrack, pos, rule,
                                              k, chance, view.mark,
                                              conn.mark if conn is not None else None,
                                              len(hops))))
                if not branch:
                    matched = False
                    break
                chance *= p
            if not matched:
                continue
        target = rule.target
        if target is None:
            hops.append(_hop(ns, tname, chain, pos, chance, "count",
                             "matched (no target: counted)"))
            continue
        mark_before = view.mark
        action = rule.to_chain or target.apply(view)
        kind = action.kind
        if kind == "jump" or kind == "goto":
            sub = rule.jump
            if sub is None or sub.chain is not table.table.chains.get(sub.name):
                sub = rule.jump = table.chain(action.chain or "")
            verb = "jump to" if kind == "jump" else "goto"
            if sub is None:
                hops.append(_hop(ns, tname, chain, pos, chance, kind,
                                 f"{verb} {action.chain}: no such chain, the rule is skipped"))
                continue
            if len(stack) >= MAX_DEPTH:
                hop = _hop(ns, tname, chain, pos, chance, "drop",
                           f"{verb} {action.chain}: chains nested deeper than {MAX_DEPTH}")
                hops.append(hop)
                return Decision("drop", action, hop, tname, chain.name, rule.text, pos + 1,
                                notrack)
            hops.append(_hop(ns, tname, chain, pos, chance, kind, f"{verb} {sub.name}"
                             + (f" ({action.note})" if action.note else "")))
            if kind == "jump":
                stack.append((chain, cands, i))
            chain, i = sub, 0
            compiled, cands = chain.compiled, chain.candidates(pkt)
            end = len(cands)
            continue
        if kind == "continue":
            detail = _continue_detail(target.name, action, mark_before, view)
            hops.append(_hop(ns, tname, chain, pos, chance, target.name.lower(), detail))
            continue
        if kind == "return":
            hops.append(_hop(ns, tname, chain, pos, chance, "return",
                             f"RETURN to {stack[-1][0].name}" if stack
                             else "RETURN from the built-in chain: its policy decides"))
            if stack:
                chain, cands, i = stack.pop()
                compiled, end = chain.compiled, len(cands)
                continue
            return _policy(ns, tname, base, hops, notrack)
        if kind == "notrack":
            notrack = True
            hops.append(_hop(ns, tname, chain, pos, chance, "notrack",
                             "NOTRACK: conntrack leaves this packet alone (state UNTRACKED)"))
            continue
        hop = _hop(ns, tname, chain, pos, chance, kind, _terminal_detail(kind, action))
        hops.append(hop)
        return Decision(kind, action, hop, tname, chain.name, rule.text, pos + 1, notrack)


def _policy(ns: Netns, table: str, chain: CompiledChain, hops: list[Hop],
            notrack: bool) -> Decision:
    policy = (chain.chain.policy or "ACCEPT").upper()
    kind = "drop" if policy == "DROP" else "accept"
    hop = None
    if chain.count or kind == "drop":
        why = ("no rule accepts this packet" if kind == "drop"
               else "no rule decided: the packet goes on")
        hop = Hop(node=ns.node, netns=ns.name, event="netfilter",
                  detail=f"{table} {chain.name}: policy {policy} — {why}", table=table,
                  chain=chain.name, rule=f"-P {chain.name} {policy}", action=kind,
                  extra={"policy": policy})
        hops.append(hop)
    return Decision(kind, None, hop, table, chain.name, None, None, notrack)


def _hop(ns: Netns, table: str, chain: CompiledChain, pos: int, chance: float, action: str,
         detail: str) -> Hop:
    compiled = chain.compiled[pos] or chain.compile(pos)
    if compiled.notes or chance < 1.0:
        notes = list(compiled.notes)
        if chance < 1.0:
            notes.append(f"matched with probability {chance:.4g} on this path")
        detail = f"{detail} ({'; '.join(notes)})"
    return Hop(ns.node, ns.name, "netfilter", detail, None, table, chain.name, compiled.text,
               action, {"position": pos + 1})


def _continue_detail(name: str, action: Action, mark_before: int, view: PacketView) -> str:
    parts = []
    if action.log:
        parts.append(f"{name}: {action.log}")
    if view.mark != mark_before:
        parts.append(f"mark {mark_before:#x} → {view.mark:#x}")
    if action.note:
        parts.append(action.note)
    return "; ".join(parts) or f"{name}: the walk goes on"


def _terminal_detail(kind: str, action: Action) -> str:
    if kind == "reject":
        return f"REJECT --reject-with {action.reject_with or 'icmp-port-unreachable'}"
    text = kind.upper()
    if action.note:
        text += f" ({action.note})"
    return text


# --- what matches ask of the namespace -----------------------------------------------------------

def ipset_contains(ns: Netns, name: str, values: tuple[str, ...]) -> bool:
    """Membership for -m set: hash:ip, hash:net, hash:ip,port, hash:net,port, bitmap:port
    and list:set, as ipset compares (members as ``ipset add`` stored them)."""
    import ipaddress

    ipset = ns.ipsets.get(name)
    if ipset is None or not values:
        return False
    kinds = ipset.type.partition(":")[2].split(",")
    if ipset.type == "list:set":
        return any(ipset_contains(ns, member, values) for member in ipset.members)
    for member in ipset.members:
        parts = member.split(",")
        if len(parts) != len(kinds) or len(values) < len(kinds):
            continue
        ok = True
        for kind, part, value in zip(kinds, parts, values):
            if kind == "ip":
                ok = part == value or ("/" in part and _in_net(ipaddress, value, part))
            elif kind == "net":
                ok = _in_net(ipaddress, value, part if "/" in part else part + "/32")
            elif kind == "port":
                ok = _port_match(part, value)
            else:
                ok = part == value
            if not ok:
                break
        if ok:
            return True
    return False


def _in_net(ipaddress, ip: str, cidr: str) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return False


def _port_match(member: str, value: str) -> bool:
    """``tcp:80`` against ``tcp:80`` (or a bare port against a bare port)."""
    m_proto, _, m_port = member.rpartition(":")
    v_proto, _, v_port = value.rpartition(":")
    if m_proto and v_proto and m_proto != v_proto:
        return False
    if "-" in m_port:
        low, _, high = m_port.partition("-")
        return low.isdigit() and high.isdigit() and v_port.isdigit() and \
            int(low) <= int(v_port) <= int(high)
    return m_port == v_port


def address_types(ns: Netns) -> Callable[[str, str | None], str]:
    """-m addrtype: the type the namespace's routing tables give an address (LOCAL for its
    own addresses and lo's 127.0.0.0/8, BROADCAST for subnet broadcasts, MULTICAST,
    BLACKHOLE / UNREACHABLE / PROHIBIT routes, else UNICAST). ``addrtype.local(ip)`` is
    ``addrtype(ip) == "LOCAL"``, told from the addresses alone (walk keys ask it)."""
    local: dict[str, set[str]] = {}
    loopback: list[tuple[int, int]] = []        # lo's networks: (network, mask)
    subnets = []
    for link in ns.links.values():
        for a in link.addresses:
            local.setdefault(a.ip, set()).add(link.name)
            if link.kind == "loopback":
                net = a.network
                loopback.append((int(net.network_address), int(net.netmask)))
            if a.prefixlen < 31:
                subnets.append(a)
    broadcast: set[str] = set()         # made when first asked

    memo: dict[tuple[str, str | None], str] = {}
    on_lo_memo: dict[str, bool] = {}

    def addrtype(ip: str, dev: str | None = None) -> str:
        found = memo.get((ip, dev))
        if found is None:
            found = memo[(ip, dev)] = _addrtype(ip, dev)
        return found

    def on_lo(ip: str) -> bool:
        if not loopback:
            return False
        found = on_lo_memo.get(ip)
        if found is None:
            if DOTTED_QUAD.fullmatch(ip) is None:      # what IPv4Address refuses
                return False
            value = ip_int(ip)
            found = on_lo_memo[ip] = any(value & mask == net for net, mask in loopback)
        return found

    def is_local(ip: str) -> bool:
        return ip in local or on_lo(ip)

    def _addrtype(ip: str, dev: str | None) -> str:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return "UNSPEC"
        devs = local.get(ip)
        lo = on_lo(ip)
        if dev is None and (devs or lo):
            return "LOCAL"
        if dev is not None and ((devs and dev in devs) or (lo and dev == "lo")):
            return "LOCAL"
        if addr.is_multicast:
            return "MULTICAST"
        if not broadcast:
            broadcast.update(["255.255.255.255", "0.0.0.0"] +
                             [str(a.network.broadcast_address) for a in subnets])
        if ip in broadcast:
            return "BROADCAST"
        route = lookup_main(ns, ip)
        if route is not None and route.type in ("blackhole", "unreachable", "prohibit"):
            return route.type.upper()
        return "UNICAST"
    addrtype.local = is_local       # type: ignore[attr-defined]
    return addrtype
