"""The extension framework: how a match or target declares its options.

Each ``-m NAME`` match and ``-j NAME`` target is one :class:`Ext` subclass,
registered with :func:`match` / :func:`target`. It lists its options the way
libxtables' ``xt_option_entry`` tables do (name, id, whether it may be
inverted, is mandatory, excludes or requires others), parses values, checks
the whole when the rule is read (``x6_fcheck``), prints itself for
iptables-save (``save``) and ``iptables -L`` (``show``), and evaluates a
packet (``evaluate`` / ``apply``). The generic checks and their messages are
the ones of xtables_option_parse / xtables_options_fcheck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from netlab.netfilter.errors import XtError

Parse = Callable[[str, "Ctx"], Any]


@dataclass(frozen=True)
class Opt:
    """One option of an extension (``--dport``), as libxtables declares it."""
    name: str                          # long name, as printed (without "--")
    id: str                            # what it sets; aliases share an id
    parse: Parse | None = None         # value parser; None for an option without argument
    invert: bool = False               # "! --opt" allowed
    mand: bool = False                 # must be given
    multi: bool = False                # may be given more than once
    excl: tuple[str, ...] = ()         # ids it cannot be combined with
    also: tuple[str, ...] = ()         # ids it requires
    # The fast path of iptables-restore (netlab.netfilter.patterns): a regex for canonical
    # values shaped like the first one seen, or None to keep the first value as it is;
    # ``post`` checks what the regex cannot (a comment's length).
    pattern: Callable[[str], str | None] | None = None
    post: Callable[[str], bool] | None = None

    @property
    def takes_arg(self) -> bool:
        return self.parse is not None


@dataclass
class Ctx:
    """What an extension may look at while the rule is being read."""
    proto: int | None = None           # -p as a number (None: not given)
    proto_neg: bool = False
    proto_name: str | None = None      # the name the protocol match would have (tcp, udp, …)
    table: str = "filter"
    notes: list[str] = field(default_factory=list)   # warnings the tool prints (to stderr)


class Ext:
    """A match or target extension. State is a dict of option id -> (value, inverted)."""

    name: str = ""
    options: tuple[Opt, ...] = ()
    kind: str = "match"                # match | target
    # Kernel restrictions (checked when the rule is committed, exit 4 on violation).
    tables: tuple[str, ...] | None = None        # None: any table
    hooks: frozenset[str] | None = None          # None: any hook
    note: str | None = None            # said in a trace hop when the rule is evaluated
    fast_path: bool = True             # iptables-restore may check it by template
    modelled: bool = True

    def __init__(self) -> None:
        self._by_name = {o.name: o for o in self.options}
        self._id_order: list[str] = []
        for o in self.options:
            if o.id not in self._id_order:
                self._id_order.append(o.id)

    # --- reading --------------------------------------------------------------------------
    def new_state(self) -> dict[str, Any]:
        return {}

    def first_of(self, option_id: str) -> Opt:
        """xtables_option_lookup: the first entry with this id names it in messages."""
        for o in self.options:
            if o.id == option_id:
                return o
        raise KeyError(option_id)

    def lookup(self, name: str) -> Opt | None:
        return self._by_name.get(name)

    def parse(self, state: dict[str, Any], opt: Opt, value: str | None, inverted: bool,
              ctx: Ctx) -> None:
        """One option as typed: the generic checks, then the value parser."""
        seen = state.setdefault("_seen", [])
        first = self.first_of(opt.id)
        if opt.id in seen and not opt.multi:
            raise XtError(f'{self.name}: option "--{first.name}" can only be used once.')
        if inverted and not opt.invert:
            raise XtError(f'{self.name}: option "--{first.name}" cannot be inverted.')
        parsed = opt.parse(value, ctx) if opt.parse is not None and value is not None else True
        self.store(state, opt, parsed, inverted, ctx)
        seen.append(opt.id)

    def store(self, state: dict[str, Any], opt: Opt, parsed: Any, inverted: bool,
              ctx: Ctx) -> None:
        state[opt.id] = (parsed, inverted)

    def given(self, state: dict[str, Any], option_id: str) -> bool:
        return option_id in state.get("_seen", ())

    def final(self, state: dict[str, Any], ctx: Ctx) -> None:
        """The extension's own check of the whole (x6_fcheck); runs before check_options."""

    def check_options(self, state: dict[str, Any]) -> None:
        """xtables_options_fcheck: mandatory, exclusive and required options, in table order."""
        seen = set(state.get("_seen", ()))
        firsts = {}
        for o in self.options:
            firsts.setdefault(o.id, o)
        for o in self.options:
            if o.mand and o.id not in seen:
                raise XtError(f'{self.name}: option "--{o.name}" must be specified')
            if o.id not in seen:
                continue
            for other_id in self._id_order:
                if other_id == o.id:
                    continue
                other = firsts[other_id]
                if other_id in o.excl and other_id in seen:
                    raise XtError(f'{self.name}: option "--{o.name}" cannot be used together '
                                  f'with "--{other.name}".')
                if other_id in o.also and other_id not in seen:
                    raise XtError(f'{self.name}: option "--{o.name}" also requires '
                                  f'"--{other.name}".')

    # --- printing ---------------------------------------------------------------------------
    def save(self, state: dict[str, Any]) -> str:
        """The options as iptables-save prints them, each preceded by a space."""
        return ""

    def show(self, state: dict[str, Any], numeric: bool, rule: Any) -> str:
        """The options as ``iptables -L`` prints them, each preceded by a space."""
        return ""

    def save_name(self, state: dict[str, Any]) -> str:
        """The name iptables-save prints after -m / -j."""
        return self.name

    def vanishes(self, state: dict[str, Any]) -> bool:
        """True when iptables-nft drops the whole match from the rule (nothing left to match)."""
        return False

    # --- the packet ---------------------------------------------------------------------------
    def freeze(self, state: dict[str, Any]) -> Any:
        """What evaluate/apply need, from the state (called once per parsed rule)."""
        return {k: v for k, v in state.items() if k != "_seen"}

    def evaluate(self, data: Any, view: Any) -> bool | float:
        """Match units override this; a target is never asked to match."""
        raise TypeError(f"{self.name} is a target, not a match")

    def apply(self, data: Any, view: Any) -> Any:
        """Target units override this; a match is never asked to act."""
        raise TypeError(f"{self.name} is a match, not a target")

    def explain(self, data: Any) -> str | None:
        """A sentence for the trace when this extension is only approximated."""
        return self.note

    def allowed_hooks(self, data: Any) -> frozenset[str] | None:
        """The kernel's static hook mask (xt_target/xt_match .hooks): checked for every base
        chain the rule can be reached from."""
        return self.hooks

    def entry_hooks(self, data: Any) -> frozenset[str] | None:
        """Hooks its checkentry() accepts: enforced only for a rule added to a built-in
        chain (a user chain has no hook mask when the rule is added)."""
        return None


MATCHES: dict[str, Ext] = {}
TARGETS: dict[str, Ext] = {}
STANDARD_TARGETS = ("ACCEPT", "DROP", "RETURN", "QUEUE")

# Extensions this machine's iptables has (/usr/lib/x86_64-linux-gnu/xtables) that netlab
# does not model: asking for one is "not modelled", not "Couldn't load match".
KNOWN_MATCHES = frozenset(
    "ah bpf cgroup cluster comment connbytes connlabel connlimit connmark conntrack cpu dccp "
    "devgroup dscp ecn esp hashlimit helper icmp ipcomp iprange ipvs length limit mac mark "
    "multiport nfacct osf owner physdev pkttype policy quota rateest realm recent rpfilter "
    "sctp set socket state statistic string tcp tcpmss time tos ttl u32 udp addrtype".split())
KNOWN_TARGETS = frozenset(
    "AUDIT CHECKSUM CLASSIFY CLUSTERIP CONNMARK CONNSECMARK CT DNAT DSCP ECN HMARK IDLETIMER "
    "LED LOG MARK MASQUERADE NETMAP NFLOG NFQUEUE NOTRACK RATEEST REDIRECT REJECT SECMARK SET "
    "SNAT SYNPROXY TCPMSS TCPOPTSTRIP TEE TOS TPROXY TRACE TTL ULOG".split())


def match(cls: type[Ext]) -> type[Ext]:
    unit = cls()
    unit.kind = "match"
    MATCHES[unit.name] = unit
    return cls


def target(cls: type[Ext]) -> type[Ext]:
    unit = cls()
    unit.kind = "target"
    TARGETS[unit.name] = unit
    return cls
