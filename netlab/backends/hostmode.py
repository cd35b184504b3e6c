"""`netlab real up LAB --host`: the lab's first node is the namespace netlab runs in.

    guard = HostGuard(backend, "host/root")   # reads what this namespace holds already
    guard.before(op)     # refuses what `down` could not undo; journals what undoes the op
    guard.after(op)      # what was learnt once it was made (a new link's ifindex)
    undo_host(journal)   # `down`: the journal's host entries, last first

Every change to this namespace is journalled (kind ``host``) before it is made, with
what undoes it, and `down` undoes each one only when it is still there to undo:

- a link the lab made (also a veth's peer, a bridge, a VXLAN device) is deleted,
  by name and, once known, ifindex; an address it added is deleted; a route it added
  is deleted when a route with exactly that destination, metric, device and gateway
  is still in table main; a neighbour entry it added is deleted;
- a sysctl gets its previous value back (``ip_forward`` also resets every device's
  ``forwarding`` and ``all.accept_redirects``: those are saved first and restored
  after it);
- an existing link the lab only changed (up, MTU, MAC, master) gets the old value back;
- iptables: never a table saved and restored. Each rule the lab adds to a chain is
  deleted again by its specification (``-D CHAIN RULE``), a chain it creates is
  flushed and deleted, a policy it sets goes back; rules and chains the lab did not
  make are never flushed. A table that did not exist before is deleted (``nft delete
  table``) when it is empty again.

What could not be undone exactly is refused before anything is journalled or made
(one line, exit status 2): deleting, renaming, moving or setting down a link this
namespace had, setting up one that was never up (its qdisc), adding ports to its bridges
(their MAC address and carrier follow the ports); deleting its addresses, routes or permanent neighbours; replacing its
routes; `iptables` -F/-X/-Z/-R/-E or -D on what the lab did not make; a rule the
host has already (its copy and the lab's could not be told apart); a whole-table
iptables-restore; ipset; conntrack -F.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import subprocess
from typing import Any, Callable

from netlab import ops as O
from netlab.errors import CommandError, LabError
from netlab.model import split_key
from netlab.model.sysctl import proc_path

MAIN_TABLE = 254
NUD_PERMANENT = 0x80
FORWARDING_KEYS = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")
BUILTIN = {"raw": ("PREROUTING", "OUTPUT"),
           "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
           "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
           "filter": ("INPUT", "FORWARD", "OUTPUT")}


def refuse(what: str) -> CommandError:
    return CommandError(f"--host: {what}", status=2)


def this_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def _dst(msg) -> str:  # type: ignore[no-untyped-def]
    if not msg["dst_len"]:
        return "default"
    return f"{msg.get_attr('RTA_DST')}/{msg['dst_len']}"


def _norm_dst(dst: str) -> str:
    if dst == "default":
        return dst
    return str(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))


class HostGuard:
    """Stands between LinuxBackend and the namespace it runs in (see the module)."""

    def __init__(self, backend, key: str):  # type: ignore[no-untyped-def]
        self.backend = backend
        self.key = key
        self.journal = backend.journal
        ipr = backend._ipr(key)
        self.links0 = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
        self.addrs0 = {(m["index"], m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"),
                        m["prefixlen"]) for m in ipr.get_addr(family=2)}
        self.routes0 = {self._route_id(m) for m in ipr.get_routes(family=2, table=MAIN_TABLE)}
        self.neigh0 = {(m.get_attr("NDA_DST"), m["ifindex"]) for m in
                       ipr.get_neighbours(family=2) if m["state"] & NUD_PERMANENT}
        self.lab_links: set[int] = set()          # ifindexes of the links the lab made
        self.sysctls: set[str] = set()            # paths whose old value is journalled
        self.linkattrs: set[tuple[int, str]] = set()
        self._tables: dict[str, dict[str, list[str]]] | None = None   # iptables before
        self.lab_chains: set[tuple[str, str]] = set()
        self.lab_rules: dict[tuple[str, str, str], int] = {}
        self.new_tables: set[str] = set()
        self._pending: list[tuple[str, str]] = []  # links to learn the ifindex of

    # --- journal -------------------------------------------------------------------
    def _record(self, what: str, **data: Any) -> None:
        if self.journal is not None:
            data["n"] = len(self.journal.entries)      # two equal rules: two entries
            self.journal.record("host", what, None, data)

    @staticmethod
    def _route_id(msg) -> tuple:  # type: ignore[no-untyped-def]
        return (_dst(msg), msg.get_attr("RTA_PRIORITY") or 0, msg.get_attr("RTA_OIF"),
                msg.get_attr("RTA_GATEWAY"), msg["type"])

    # --- what this namespace holds now ---------------------------------------------
    def _link(self, name: str):  # type: ignore[no-untyped-def]
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            found = self.backend._ipr(self.key).get_links(ifname=name) if name else []
        except NetlinkError:
            return None
        return found[0] if found else None

    def _index(self, name: str) -> int | None:
        msg = self._link(name)
        return None if msg is None else msg["index"]

    def _theirs(self, name: str) -> bool:
        """A link this namespace had before the lab (not one the lab made)."""
        index = self._index(name)
        return index is not None and index in self.links0 and index not in self.lab_links

    def _mine(self, name: str) -> bool:
        index = self._index(name)
        return index is not None and index in self.lab_links

    # --- the guard -------------------------------------------------------------------
    def touches(self, op: O.Op) -> bool:
        keys = [getattr(op, f, None) for f in ("netns", "peer_netns", "to_netns")]
        if getattr(op, "node", None) is not None and not isinstance(op, (O.AddNetns, O.DelNetns,
                                                                          O.WriteFile)):
            keys.append(f"{op.node}/root")       # type: ignore[attr-defined]
        return self.key in keys

    def before(self, op: O.Op) -> None:
        if not self.touches(op):
            return
        handler: Callable[[Any], None] | None = getattr(self, "_" + type(op).__name__, None)
        if handler is None:
            raise refuse(f"{type(op).__name__} cannot be undone exactly on this machine's "
                         f"namespace; run the lab without --host")
        handler(op)

    def after(self, op: O.Op) -> None:
        for name, what in self._pending:
            index = self._index(name)
            if index is not None:
                self.lab_links.add(index)
                if self.journal is not None:
                    for entry in reversed(self.journal.entries):
                        if entry.kind == "host" and entry.name == what and entry.data \
                                and entry.data.get("dev") == name:
                            data = dict(entry.data, ifindex=index)
                            self.journal.amend(entry, type(entry)("host", what, None, data))
                            break
        self._pending.clear()

    def adopt(self) -> None:
        """AddNode for the host node: lo up (if it is not), nothing else changes."""
        lo = self._link("lo")
        if lo is not None and not lo["flags"] & 1:
            self._SetLinkUp(O.SetLinkUp(self.key, "lo", True))

    # links
    def _new_link(self, name: str | None) -> None:
        if not name or self._index(name) is not None:
            return                  # the kernel refuses it (File exists): nothing to undo
        self._record("link", dev=name, ifindex=None)
        self._pending.append((name, "link"))

    def _AddLink(self, op: O.AddLink) -> None:
        if op.netns == self.key:
            self._new_link(op.name)
        if op.kind == "veth" and (op.peer_netns or op.netns) == self.key:
            self._new_link(op.peer)

    def _AddVxlan(self, op: O.AddVxlan) -> None:
        self._new_link(op.name)

    def _AttachToSwitch(self, op: O.AttachToSwitch) -> None:
        self._new_link(op.dev)

    def _only_mine(self, name: str, what: str) -> None:
        if self._theirs(name):
            raise refuse(f"{what} {name}, a link this machine had before the lab: `down` "
                         f"could not bring it back")

    def _DelLink(self, op: O.DelLink) -> None:
        self._only_mine(op.name, "will not delete")

    def _RenameLink(self, op: O.RenameLink) -> None:
        self._only_mine(op.name, "will not rename")
        if self._index(op.new_name) is None and self._index(op.name) is not None:
            self._record("link", dev=op.new_name, ifindex=self._index(op.name))

    def _MoveLink(self, op: O.MoveLink) -> None:
        if op.netns == self.key:
            self._only_mine(op.name, "will not move")
        elif op.to_netns == self.key:
            self._new_link(op.name)

    def _link_attr(self, name: str, attr: str) -> None:
        """An existing link's old value of ``attr``, journalled the first time."""
        msg = self._link(name)
        if msg is None or msg["index"] in self.lab_links or msg["index"] not in self.links0:
            return
        if (msg["index"], attr) in self.linkattrs:
            return
        value: Any
        if attr == "up":
            value = bool(msg["flags"] & 1)
        elif attr == "mtu":
            value = msg.get_attr("IFLA_MTU")
        elif attr == "address":
            value = msg.get_attr("IFLA_ADDRESS")
        else:
            value = msg.get_attr("IFLA_MASTER") or 0
        self.linkattrs.add((msg["index"], attr))
        self._record("linkattr", dev=name, ifindex=msg["index"], attr=attr, value=value)

    def _SetLinkUp(self, op: O.SetLinkUp) -> None:
        msg = self._link(op.name)
        if not op.up and msg is not None and msg["flags"] & 1 and self._theirs(op.name):
            raise refuse(f"will not set {op.name} down, a link this machine had before the "
                         f"lab: that deletes its routes, which `down` could not bring back")
        if op.up and msg is not None and not msg["flags"] & 1 and self._theirs(op.name) \
                and msg.get_attr("IFLA_QDISC") == "noop":
            raise refuse(f"will not set {op.name} up: it has never been up, and the kernel "
                         f"would give it a queue (qdisc) that `down` could not take away")
        self._link_attr(op.name, "up")

    def _SetLinkMtu(self, op: O.SetLinkMtu) -> None:
        self._link_attr(op.name, "mtu")

    def _SetLinkAddress(self, op: O.SetLinkAddress) -> None:
        self._link_attr(op.name, "address")

    def _SetLinkMaster(self, op: O.SetLinkMaster) -> None:
        if op.master is not None and self._theirs(op.master):
            raise refuse(f"will not add ports to {op.master}, a link this machine had before "
                         f"the lab: a bridge's MAC address and carrier follow its ports, and "
                         f"would not come back")
        self._link_attr(op.name, "master")

    def _AddFdb(self, op: O.AddFdb) -> None:
        if not self._mine(op.dev):
            raise refuse(f"will not add FDB entries to {op.dev}, a link this machine had "
                         f"before the lab")

    # addresses
    def _AddAddress(self, op: O.AddAddress) -> None:
        index = self._index(op.dev)
        if index is None:
            return                                  # the kernel says: Cannot find device
        ipr = self.backend._ipr(self.key)
        have = {(m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                for m in ipr.get_addr(family=2, index=index)}
        if (op.ip, op.prefixlen) in have:
            return                                  # File exists
        self._record("addr", dev=op.dev, ifindex=index, ip=op.ip, prefixlen=op.prefixlen)

    def _DelAddress(self, op: O.DelAddress) -> None:
        index = self._index(op.dev)
        plen = 32 if op.prefixlen is None else op.prefixlen
        if index is not None and (index, op.ip, plen) in self.addrs0:
            raise refuse(f"will not delete {op.ip}/{plen} from {op.dev}: the machine had it "
                         f"before the lab (and routes that depend on it)")

    def _FlushAddresses(self, op: O.FlushAddresses) -> None:
        index = self._index(op.dev)
        if index is not None and any(a[0] == index for a in self.addrs0):
            raise refuse(f"will not flush the addresses of {op.dev}: the machine had some of "
                         f"them before the lab")

    # routes
    def _route_exists(self, dst: str, metric: int) -> tuple | None:
        for msg in self.backend._ipr(self.key).get_routes(family=2, table=MAIN_TABLE):
            rid = self._route_id(msg)
            if rid[0] == dst and rid[1] == metric:
                return rid
        return None

    def _AddRoute(self, op: O.AddRoute) -> None:
        dst = _norm_dst(op.dst)
        found = self._route_exists(dst, op.metric)
        if found is not None:
            if not op.replace:
                return                              # File exists
            if found in self.routes0:
                raise refuse(f"will not replace the route to {op.dst}: the machine had it "
                             f"before the lab")
        self._record("route", dst=dst, metric=op.metric, dev=op.dev, gateway=op.gateway)

    def _AddRoutes(self, op: O.AddRoutes) -> None:
        for dst, gateway in op.routes:
            self._AddRoute(O.AddRoute(op.netns, dst, dev=op.dev, gateway=gateway))

    def _DelRoute(self, op: O.DelRoute) -> None:
        dst = _norm_dst(op.dst)
        oif = None if op.dev is None else self._index(op.dev)
        for rid in self.routes0:
            if rid[0] == dst and (op.metric is None or rid[1] == op.metric) and \
                    (oif is None or rid[2] == oif) and \
                    (op.gateway is None or rid[3] == op.gateway):
                raise refuse(f"will not delete the route to {op.dst}: the machine had it "
                             f"before the lab")

    # neighbours
    def _AddNeighbour(self, op: O.AddNeighbour) -> None:
        index = self._index(op.dev)
        if index is None:
            return
        if (op.ip, index) in self.neigh0:
            raise refuse(f"will not replace the permanent neighbour {op.ip} on {op.dev}: "
                         f"the machine had it before the lab")
        self._record("neigh", dev=op.dev, ifindex=index, ip=op.ip)

    def _FlushNeighbours(self, op: O.FlushNeighbours) -> None:
        if not op.permanent:
            return                                  # the ARP cache: it fills again
        index = None if op.dev is None else self._index(op.dev)
        if any((op.ip is None or ip == op.ip) and (index is None or i == index)
               for ip, i in self.neigh0):
            raise refuse("will not delete permanent neighbours the machine had before the lab")

    # sysctls
    def _save_sysctl(self, path: str) -> None:
        if path in self.sysctls:
            return
        try:
            with open(path, encoding="ascii") as f:
                value = f.read().strip()
        except OSError:
            return                                  # the kernel says so when it is written
        self.sysctls.add(path)
        self._record("sysctl", path=path, value=value)

    def _SetSysctl(self, op: O.SetSysctl) -> None:
        if op.key in FORWARDING_KEYS:
            # Writing it sets every device's forwarding and all.accept_redirects
            # (inet_forward_change): those are journalled first, so that `down` writes
            # ip_forward back first and then each of them.
            conf = "/proc/sys/net/ipv4/conf"
            for dev in sorted(os.listdir(conf)):
                if dev != "all":
                    self._save_sysctl(os.path.join(conf, dev, "forwarding"))
            self._save_sysctl(os.path.join(conf, "all", "accept_redirects"))
            self._save_sysctl(proc_path(FORWARDING_KEYS[0]))
            self.sysctls.add(proc_path(FORWARDING_KEYS[1]))      # the same variable
            return
        self._save_sysctl(proc_path(op.key))

    # listeners and files live under the run dir / die with `down`
    def _AddListener(self, op: O.AddListener) -> None:
        return

    def _WriteFile(self, op: O.WriteFile) -> None:
        return

    def _Ipset(self, op: O.Ipset) -> None:
        raise refuse("ipset sets on this machine's namespace are not undone by `down`; "
                     "run the lab without --host")

    def _FlushConntrack(self, op: O.FlushConntrack) -> None:
        raise refuse("conntrack -F empties this machine's connection table, which `down` "
                     "could not bring back")

    # --- iptables ----------------------------------------------------------------------
    def tables(self) -> dict[str, dict[str, list[str]]]:
        """What ``iptables-save`` printed before the lab's first change: table -> chain ->
        its rules as saved (``-A`` lines without the chain); policies as ``:POLICY``."""
        if self._tables is None:
            self._tables = parse_save(_iptables_save())
        return self._tables

    def _live_rules(self, table: str, chain: str) -> list[str]:
        done = _iptables(["-t", table, "-S", chain])
        if done.returncode != 0:
            return []
        return [line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
                for line in done.stdout.splitlines() if line.startswith("-A ")]

    def _chain_exists(self, table: str, chain: str) -> bool:
        return _iptables(["-t", table, "-S", chain]).returncode == 0

    def _lab_rule(self, table: str, chain: str, n: int) -> bool:
        """Rule number ``n`` of the chain is not one the chain had before the lab."""
        rules = self._live_rules(table, chain)
        if not 1 <= n <= len(rules):
            return True                             # the kernel refuses it
        return rules[n - 1] not in self.tables().get(table, {}).get(chain, [])

    def _IptablesRestore(self, op: O.IptablesRestore) -> None:
        if not op.noflush:
            raise refuse("iptables-restore without --noflush replaces this machine's tables; "
                         "use --noflush (or run the lab without --host)")
        undo: list[tuple[str, str, str]] = []       # (what, table, line)
        before = self.tables()
        table = ""
        made: set[tuple[str, str]] = set()          # chains this payload creates
        counted: list[tuple[str, str, str, int]] = []
        for raw in op.payload.splitlines():
            line = raw.strip()
            if not line or line.startswith("#") or line == "COMMIT":
                continue
            if line.startswith("*"):
                table = line[1:].strip()
                if table not in before and table not in self.new_tables:
                    undo.append(("table", table, ""))
                continue
            if line.startswith("["):                 # [pkts:bytes] -A ...
                line = line.split("]", 1)[1].strip()
            words = shlex.split(line)
            if words[0].startswith(":"):
                chain, policy = words[0][1:], words[1] if len(words) > 1 else "-"
                if chain in BUILTIN.get(table, ()):
                    if policy != "-":
                        undo.append(("policy", table, f"-P {chain} {self._policy(table, chain)}"))
                elif self._chain_exists(table, chain):
                    if (table, chain) not in self.lab_chains:
                        raise refuse(f"will not flush the chain {chain} of table {table}: "
                                     f"the machine had it before the lab")
                else:
                    made.add((table, chain))
                    undo.append(("chain", table, chain))
                continue
            flag, chain, rest = words[0], (words[1] if len(words) > 1 else ""), words[2:]
            mine = (table, chain) in self.lab_chains or (table, chain) in made
            spec = shlex.join(rest)
            if flag in ("-A", "-I"):
                if flag == "-I" and rest and rest[0].isdigit():
                    spec = shlex.join(rest[1:])
                if mine:
                    continue
                if _iptables(["-t", table, "-C", chain, *shlex.split(spec)]).returncode == 0 \
                        and not self.lab_rules.get((table, chain, spec)):
                    raise refuse(f"{chain} in table {table} has this rule already (`{spec}`): "
                                 f"`down` could not tell the lab's copy from the machine's")
                counted.append((table, chain, spec, 1))
                undo.append(("rule", table, f"-D {chain} {spec}"))
            elif flag == "-N":
                if self._chain_exists(table, chain):
                    # the kernel refuses this table's lines (Chain already exists): their
                    # undos find nothing to undo; other tables' lines are journalled as usual
                    continue
                made.add((table, chain))
                undo.append(("chain", table, chain))
            elif flag == "-P":
                undo.append(("policy", table, f"-P {chain} {self._policy(table, chain)}"))
            elif flag == "-D":
                if mine:
                    continue
                if len(rest) == 1 and rest[0].isdigit():
                    if not self._lab_rule(table, chain, int(rest[0])):
                        raise refuse(f"will not delete rule {rest[0]} of {chain} in table "
                                     f"{table}: the machine had it before the lab")
                elif self.lab_rules.get((table, chain, spec)):
                    counted.append((table, chain, spec, -1))
                else:
                    raise refuse(f"will not delete `{spec}` from {chain} in table {table}: "
                                 f"the lab did not add it")
            elif flag == "-R":
                if mine:
                    continue
                number, spec = rest[0], shlex.join(rest[1:])
                if not number.isdigit() or not self._lab_rule(table, chain, int(number)):
                    raise refuse(f"will not replace rule {number} of {chain} in table {table}: "
                                 f"the machine had it before the lab")
                counted.append((table, chain, spec, 1))
                undo.append(("rule", table, f"-D {chain} {spec}"))
            elif flag in ("-F", "-X", "-Z", "-E"):
                if not chain or not mine:
                    what = {"-F": "flush", "-X": "delete", "-Z": "zero", "-E": "rename"}[flag]
                    target = f"the chain {chain}" if chain else "every chain"
                    raise refuse(f"will not {what} {target} of table {table}: only chains the "
                                 f"lab made can be, on this machine's namespace")
                if flag == "-E" and rest:
                    made.add((table, rest[0]))
                    undo.append(("chain", table, rest[0]))
            else:
                raise refuse(f"cannot undo `{line}` on this machine's namespace")
        for what, table_, line in undo:
            if what == "table":
                self.new_tables.add(table_)
                self._record("iptables-table", table=table_)
            elif what == "chain":
                self._record("iptables-chain", table=table_, chain=line)
            else:
                self._record("iptables", table=table_, line=line)
        self.lab_chains |= made
        for table_, chain, spec, step in counted:
            key = (table_, chain, spec)
            self.lab_rules[key] = self.lab_rules.get(key, 0) + step

    def _policy(self, table: str, chain: str) -> str:
        done = _iptables(["-t", table, "-S", chain])
        for line in done.stdout.splitlines():
            if line.startswith(f"-P {chain} "):
                return line.split()[2]
        return "ACCEPT"


def parse_save(text: str) -> dict[str, dict[str, list[str]]]:
    """``iptables-save`` -> table -> chain -> rules (``-A CHAIN`` taken off)."""
    out: dict[str, dict[str, list[str]]] = {}
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("*"):
            table = out.setdefault(line[1:].strip(), {})
        elif line.startswith(":"):
            table.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            parts = line.split(" ", 2)
            table.setdefault(parts[1], []).append(parts[2] if len(parts) > 2 else "")
    return out


def _iptables(args: list[str]) -> subprocess.CompletedProcess:
    tool = shutil.which("iptables")
    if tool is None:
        raise CommandError("real mode needs `iptables`, which is not on PATH "
                           "(apt-get install iptables)", status=2)
    return subprocess.run([tool, "-w", *args], capture_output=True, text=True, check=False,
                          timeout=30)


def _iptables_save() -> str:
    tool = shutil.which("iptables-save")
    if tool is None:
        raise CommandError("real mode needs `iptables-save`, which is not on PATH "
                           "(apt-get install iptables)", status=2)
    done = subprocess.run([tool], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise CommandError(f"iptables-save: {done.stderr.strip()}", status=2)
    return done.stdout


# --- down ------------------------------------------------------------------------------------

def host_entry(journal):  # type: ignore[no-untyped-def]
    """The journal's entry for the host node (kind host, name netns), or None."""
    for entry in journal.entries:
        if entry.kind == "host" and entry.name == "netns":
            return entry
    return None


def find_netns(inode: int) -> str | None:
    """A path that opens the network namespace with this inode: this one, one in
    /run/netns, or a process's. None when it is gone (and everything in it with it)."""
    candidates = ["/proc/thread-self/ns/net"]
    try:
        candidates += [os.path.join("/run/netns", n) for n in sorted(os.listdir("/run/netns"))]
    except FileNotFoundError:
        pass
    candidates += [f"/proc/{p}/ns/net" for p in os.listdir("/proc") if p.isdigit()]
    for path in candidates:
        try:
            if os.stat(path).st_ino == inode:
                return path
        except OSError:
            continue
    return None


def undo_host(journal) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    """Undo the journal's host entries, last first, in the namespace they were made in.
    (changes undone, problems); the entries that could not be undone stay in the journal."""
    from netlab.backends.linux import CLONE_NEWNET, _libc

    ident = host_entry(journal)
    entries = [e for e in journal.entries if e.kind == "host" and e.name != "netns"]
    if ident is None or not entries:
        return 0, []
    path = find_netns(int((ident.data or {}).get("inode", 0)))
    if path is None:
        return 0, []                    # the namespace is gone, and the changes with it
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    failed = []
    problems: list[str] = []
    done = 0
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise LabError(f"cannot enter the namespace of lab {journal.lab}'s host ({path})")
        try:
            from pyroute2 import IPRoute

            with IPRoute() as ipr:
                for entry in reversed(entries):
                    try:
                        if _undo_one(ipr, entry.name, entry.data or {}):
                            done += 1
                    except Exception as exc:         # noqa: BLE001 - reported, kept
                        failed.append(entry)
                        problems.append(f"{entry.name} {entry.data}: {exc}")
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise SystemExit("netlab: cannot return to the original network namespace")
    finally:
        os.close(target)
        os.close(home)
    if failed:
        journal.entries = [e for e in journal.entries if e.kind != "host" or e is ident
                           or e in failed]
        journal._write()
    return done, problems


def _undo_one(ipr, what: str, d: dict[str, Any]) -> bool:  # type: ignore[no-untyped-def]
    """Undo one change if it is still there; True when something was undone."""
    from pyroute2.netlink.exceptions import NetlinkError

    def link(name: str, index: int | None):  # type: ignore[no-untyped-def]
        found = ipr.get_links(ifname=name) if index is None else \
            [m for m in ipr.get_links() if m["index"] == index]
        if not found or (index is not None and found[0].get_attr("IFLA_IFNAME") != name
                         and what != "linkattr"):
            return None
        return found[0]

    try:
        if what == "link":
            msg = link(d["dev"], d.get("ifindex"))
            if msg is None:
                return False
            ipr.link("del", index=msg["index"])
        elif what == "addr":
            msg = link(d["dev"], d.get("ifindex"))
            if msg is None:
                return False
            have = {(m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                    for m in ipr.get_addr(family=2, index=msg["index"])}
            if (d["ip"], d["prefixlen"]) not in have:
                return False
            ipr.addr("del", index=msg["index"], address=d["ip"], prefixlen=d["prefixlen"])
        elif what == "route":
            return _undo_route(ipr, d)
        elif what == "neigh":
            msg = link(d["dev"], d.get("ifindex"))
            if msg is None:
                return False
            ipr.neigh("del", dst=d["ip"], ifindex=msg["index"], family=2)
        elif what == "sysctl":
            try:
                with open(d["path"], encoding="ascii") as f:
                    if f.read().strip() == d["value"]:
                        return False
                with open(d["path"], "w", encoding="ascii") as f:
                    f.write(d["value"])
            except FileNotFoundError:
                return False                         # a device the lab made, gone
        elif what == "linkattr":
            msg = link(d["dev"], d.get("ifindex"))
            if msg is None:
                return False
            index, attr, value = msg["index"], d["attr"], d["value"]
            if attr == "up":
                ipr.link("set", index=index, state="up" if value else "down")
            elif attr == "mtu":
                ipr.link("set", index=index, mtu=value)
            elif attr == "address":
                ipr.link("set", index=index, address=value)
            else:
                ipr.link("set", index=index, master=value)
        elif what in ("iptables", "iptables-chain", "iptables-table"):
            return _undo_iptables(what, d)
        else:
            raise LabError(f"unknown host change {what!r} in the journal")
    except NetlinkError as exc:
        if exc.code in (2, 3, 19, 99):          # ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL: gone
            return False
        raise
    return True


def _undo_route(ipr, d: dict[str, Any]) -> bool:  # type: ignore[no-untyped-def]
    """Delete the route only when one with exactly this destination, metric, device and
    gateway is in table main (a metric of 0 would match any metric otherwise)."""
    from netlab.backends.linux import RTM_DELROUTE, Rtnl
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    oif = None
    if d.get("dev"):
        found = ipr.get_links(ifname=d["dev"])
        if not found:
            return False
        oif = found[0]["index"]
    for msg in ipr.get_routes(family=2, table=MAIN_TABLE):
        if _dst(msg) != d["dst"] or (msg.get_attr("RTA_PRIORITY") or 0) != d["metric"]:
            continue
        if oif is not None and msg.get_attr("RTA_OIF") != oif:
            continue
        if d.get("gateway") and msg.get_attr("RTA_GATEWAY") != d["gateway"]:
            continue
        out = rtmsg()
        out["family"], out["table"], out["scope"] = 2, MAIN_TABLE, 255
        out["dst_len"] = msg["dst_len"]
        if msg["dst_len"]:
            out["attrs"].append(("RTA_DST", msg.get_attr("RTA_DST")))
        for name in ("RTA_OIF", "RTA_GATEWAY", "RTA_PRIORITY"):
            if msg.get_attr(name) is not None:
                out["attrs"].append((name, msg.get_attr(name)))
        sock = Rtnl()
        try:
            sock.request(out, RTM_DELROUTE)
        finally:
            sock.close()
        return True
    return False


def _undo_iptables(what: str, d: dict[str, Any]) -> bool:
    table = d["table"]
    if what == "iptables-chain":
        chain = d["chain"]
        if _iptables(["-t", table, "-S", chain]).returncode != 0:
            return False
        _checked(["-t", table, "-F", chain])
        _checked(["-t", table, "-X", chain])
        return True
    if what == "iptables-table":
        return _drop_empty_table(table)
    words = shlex.split(d["line"])
    if words[0] == "-D":
        if _iptables(["-t", table, "-C", *words[1:]]).returncode != 0:
            return False                        # not there (never made, or deleted since)
        _checked(["-t", table, *words])
        return True
    if words[0] == "-P":
        _checked(["-t", table, *words])
        return True
    raise LabError(f"unknown iptables undo {d['line']!r}")


def _checked(args: list[str]) -> None:
    done = _iptables(args)
    if done.returncode != 0:
        raise LabError(f"iptables {' '.join(args)}: {(done.stderr or done.stdout).strip()}")


def _drop_empty_table(table: str) -> bool:
    """A table the lab's first rule created (nf_tables): deleted when it holds no rule, no
    chain of its own and every policy is ACCEPT again (iptables-legacy: it stays)."""
    text = _iptables(["-t", table, "-S"]).stdout
    if any(not (line.startswith("-P ") and line.endswith(" ACCEPT"))
           for line in text.splitlines() if line.strip()):
        return False
    nft = shutil.which("nft")
    version = _iptables(["-V"]).stdout
    if nft is None or "nf_tables" not in version:
        return False
    done = subprocess.run([nft, "delete", "table", "ip", table], capture_output=True,
                          text=True, check=False, timeout=30)
    return done.returncode == 0
