"""LinuxBackend: applies Ops to a real kernel, in network namespaces netlab creates.

    backend = LinuxBackend("bridge", journal)      # root only
    backend.apply(O.AddNode("host"))               # namespace nl-bridge-host, lo up
    backend.apply_all(ops)                         # one command's Ops
    backend.real_name("host/red")                  # 'nl-bridge-host-red'
    backend.close()

Each lab node is a namespace ``nl-<lab>-<node>``, a namespace a lab creates
inside a node is ``nl-<lab>-<node>-<name>``, a LAN switch is ``nl-<lab>-<switch>``.
Namespaces are made and entered in this process (unshare / setns, as `ip netns
add` does) and one rtnetlink socket is kept open per namespace: no process per
step. iptables payloads go to ``ip netns exec REAL iptables-restore`` on stdin.
The machine's own namespace is only ever re-entered, never changed; every
namespace is written to the journal before it is created.
"""

from __future__ import annotations

import ctypes
import errno as E
import os
import shutil
import subprocess
from contextlib import contextmanager
from typing import Iterable, Iterator

from pyroute2.netlink.exceptions import NetlinkError

from netlab import ops as O
from netlab.backends.journal import Journal
from netlab.errors import CommandError
from netlab.model import ROOT, ns_key, split_key
from netlab.model.sysctl import proc_path

PREFIX = "nl-"
NETNS_DIR = "/run/netns"
SWITCH_BRIDGE = "br0"
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED, MNT_DETACH = 4096, 16384, 1 << 20, 2

# Making real runs repeatable (KERNEL_NOTES): set in every namespace netlab creates,
# before any device but lo exists, so each new device inherits the defaults.
REPEATABLE_SYSCTLS = (
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.default.accept_redirects", "0"),
    ("net.ipv4.icmp_ratelimit", "0"),
)
# A new namespace has no neigh/default sysctls (only the first namespace does): the short
# ARP retry is set on each device as it appears (created, or moved in).
ARP_RETRANS_MS = "100"

PROTOS = {"unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "ra": 9,
          "dhcp": 16}
SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
TYPES = {"unicast": 1, "local": 2, "broadcast": 3, "anycast": 4, "multicast": 5,
         "blackhole": 6, "unreachable": 7, "prohibit": 8, "throw": 9, "nat": 10}
RTNH_F_ONLINK = 4
MAIN_TABLE = 254

# Ops after which remembered ifindexes may be wrong (a veth's peer goes too, elsewhere).
FORGET_DEVICES_AFTER = (O.DelLink, O.MoveLink, O.RenameLink, O.DelNetns)

TOOL_PACKAGES = {"ip": "iproute2", "iptables-restore": "iptables", "iptables": "iptables",
                 "iptables-save": "iptables"}

_libc = ctypes.CDLL(None, use_errno=True)


def _os_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def missing_tool(tool: str) -> CommandError:
    package = TOOL_PACKAGES.get(tool, tool)
    return CommandError(f"real mode needs `{tool}`, which is not on PATH "
                        f"(apt-get install {package})", status=2)


def real_netns_names(lab: str, key: str) -> str:
    """The real name of the namespace a lab calls ``node/name``."""
    node, name = split_key(key)
    return f"{PREFIX}{lab}-{node}" if name == ROOT else f"{PREFIX}{lab}-{node}-{name}"


# --- namespaces, made and entered in-process ---------------------------------------------

def _share_netns_dir() -> None:
    """What `ip netns add` does first: /run/netns a shared mount, so bind mounts made
    here are seen by every mount namespace."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    done = False
    while _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        if done or _libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none",
                               MS_BIND | MS_REC, None) != 0:
            raise _os_error(f"mount --make-shared {NETNS_DIR}")
        done = True


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def remove_netns(name: str) -> bool:
    """`ip netns del NAME`; False when it was not there. The kernel frees the
    namespace, and everything in it, once nothing holds it any more."""
    path = os.path.join(NETNS_DIR, name)
    if not os.path.exists(path):
        return False
    _libc.umount2(path.encode(), MNT_DETACH)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class LinuxBackend:
    def __init__(self, lab: str, journal: Journal | None = None):
        self.lab = lab
        self.journal = journal
        self._sockets: dict[str, object] = {}      # real name -> IPRoute bound to it
        self._fds: dict[str, int] = {}             # real name -> open namespace fd
        self._names: dict[str, str] = {}           # ns key -> real name
        self._ifindex: dict[tuple[str, str], int] = {}   # (ns key, device) -> ifindex
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        self._iptables_restore = shutil.which("iptables-restore")
        self._ip = shutil.which("ip")

    # --- the mapping -----------------------------------------------------------------
    def real_name(self, ns_key_: str) -> str:
        """The real namespace for a lab's ``node/name`` (``name`` may be ``root``)."""
        real = self._names.get(ns_key_)
        if real is None:
            raise CommandError(f'Cannot open network namespace "{split_key(ns_key_)[1]}": '
                               f"No such file or directory", status=1)
        return real

    @property
    def names(self) -> dict[str, str]:
        return dict(self._names)

    # --- entry points --------------------------------------------------------------------
    def apply_all(self, ops: Iterable[O.Op]) -> None:
        """A command's Ops in order. The kernel has no transactions: a refusal part-way
        leaves what came before it (the namespaces are journalled, so `down` cleans)."""
        for op in ops:
            self.apply(op)

    def apply(self, op: O.Op) -> None:
        handler = getattr(self, "_" + type(op).__name__, None)
        if handler is None:
            raise CommandError(f"real mode cannot apply {type(op).__name__} yet", status=2)
        try:
            handler(op)
        except CommandError:
            raise
        except (OSError, NetlinkError) as exc:
            raise CommandError(_netlink_words(exc, op), status=2) from None
        finally:
            if isinstance(op, FORGET_DEVICES_AFTER):
                self._forget_devices()

    def close(self) -> None:
        for ipr in self._sockets.values():
            try:
                ipr.close()  # type: ignore[attr-defined]
            except Exception:
                pass
        self._sockets.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._home >= 0:
            os.close(self._home)
            self._home = -1

    def __enter__(self) -> "LinuxBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- namespaces ---------------------------------------------------------------------
    @contextmanager
    def _inside(self, real: str) -> Iterator[None]:
        """This thread in namespace ``real`` for the block; back home afterwards."""
        if _libc.setns(self._fds[real], CLONE_NEWNET) != 0:
            raise _os_error(f"setns {real}")
        try:
            yield
        finally:
            if _libc.setns(self._home, CLONE_NEWNET) != 0:   # cannot happen; never go on
                raise SystemExit("netlab: cannot return to the original network namespace")

    def _create_netns(self, key: str) -> str:
        real = real_netns_names(self.lab, key)
        if len(real) > 200:
            raise CommandError(f"namespace name too long: {real}")
        if key in self._names or netns_exists(real):
            raise CommandError(f'Cannot create namespace file "{NETNS_DIR}/{real}": File exists',
                               status=1)
        if self.journal is not None:
            self.journal.record("netns", real, key)           # on disk before it exists
        _share_netns_dir()
        path = os.path.join(NETNS_DIR, real)
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        from pyroute2 import IPRoute

        if _libc.unshare(CLONE_NEWNET) != 0:
            raise _os_error("unshare")
        try:
            if _libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND,
                           None) != 0:
                raise _os_error(f"mount {path}")
            self._fds[real] = os.open(path, os.O_RDONLY)
            ipr = IPRoute()
            ipr.link_lookup(ifname="lo")                  # the socket is bound here, now
            self._sockets[real] = ipr
            for k, v in REPEATABLE_SYSCTLS:
                _write_sysctl(k, v)
        finally:
            if _libc.setns(self._home, CLONE_NEWNET) != 0:
                raise SystemExit("netlab: cannot return to the original network namespace")
        self._names[key] = real
        return real

    def _ipr(self, key: str):  # type: ignore[no-untyped-def]
        return self._sockets[self.real_name(key)]

    def _index(self, key: str, name: str) -> int:
        """The device's ifindex, remembered until a link is deleted, moved or renamed
        anywhere (a lookup costs as much as the change itself)."""
        index = self._ifindex.get((key, name))
        if index is None:
            found = self._ipr(key).link_lookup(ifname=name)
            if not found:
                raise CommandError(f'Cannot find device "{name}"', status=1)
            index = self._ifindex[(key, name)] = found[0]
        return index

    def _forget_devices(self) -> None:
        self._ifindex.clear()

    def _sysctl(self, key: str, name: str, value: str) -> None:
        with self._inside(self.real_name(key)):
            _write_sysctl(name, value)

    def _AddNode(self, op: O.AddNode) -> None:
        key = ns_key(op.node)
        self._create_netns(key)
        self._ipr(key).link("set", index=self._index(key, "lo"), state="up")
        self._sysctl_if_present(key, "net.bridge.bridge-nf-call-iptables", "1")

    def _sysctl_if_present(self, key: str, name: str, value: str) -> None:
        with self._inside(self.real_name(key)):
            if os.path.exists(proc_path(name)):
                _write_sysctl(name, value)

    def _AddNetns(self, op: O.AddNetns) -> None:
        key = ns_key(op.node, op.name)
        if key in self._names:
            raise CommandError(f'Cannot create namespace file "/var/run/netns/{op.name}": '
                               f"File exists", status=1)
        self._create_netns(key)

    def _DelNetns(self, op: O.DelNetns) -> None:
        key = ns_key(op.node, op.name)
        real = self._names.get(key)
        if real is None or op.name == ROOT:
            raise CommandError(f'Cannot remove namespace file "/var/run/netns/{op.name}": '
                               f"No such file or directory", status=1)
        self._sockets.pop(real).close()  # type: ignore[attr-defined]
        os.close(self._fds.pop(real))
        del self._names[key]
        remove_netns(real)

    def _AddSwitch(self, op: O.AddSwitch) -> None:
        key = ns_key(op.name)
        self._create_netns(key)
        ipr = self._ipr(key)
        ipr.link("set", index=self._index(key, "lo"), state="up")
        for leaf in ("iptables", "ip6tables", "arptables"):
            self._sysctl_if_present(key, f"net.bridge.bridge-nf-call-{leaf}", "0")
        ipr.link("add", ifname=SWITCH_BRIDGE, kind="bridge")
        ipr.link("set", index=self._index(key, SWITCH_BRIDGE), state="up")

    def _AttachToSwitch(self, op: O.AttachToSwitch) -> None:
        switch, node = ns_key(op.switch), ns_key(op.node)
        self._AddLink(O.AddLink(netns=node, name=op.dev, kind="veth", peer=op.node,
                                peer_netns=switch))
        sw = self._ipr(switch)
        port = self._index(switch, op.node)
        sw.link("set", index=port, master=self._index(switch, SWITCH_BRIDGE))
        sw.link("set", index=port, state="up")
        self._ipr(node).link("set", index=self._index(node, op.dev), state="up")

    # --- links ---------------------------------------------------------------------------
    def _AddLink(self, op: O.AddLink) -> None:
        ipr = self._ipr(op.netns)
        args: dict[str, object] = {"ifname": op.name, "kind": op.kind}
        if op.mtu is not None:
            args["mtu"] = op.mtu
        if op.address is not None:
            args["address"] = op.address
        if op.kind == "veth":
            peer: dict[str, object] = {}
            if op.peer is not None:
                peer["ifname"] = op.peer
            if op.mtu is not None:
                peer["mtu"] = op.mtu
            if op.peer_netns is not None and op.peer_netns != op.netns:
                peer["net_ns_fd"] = self._fds[self.real_name(op.peer_netns)]
            args["peer"] = peer
        ipr.link("add", **args)
        self._short_arp_retry(op.netns, op.name)
        if op.kind == "veth" and op.peer is not None:
            self._short_arp_retry(op.peer_netns or op.netns, op.peer)

    def _short_arp_retry(self, key: str, dev: str) -> None:
        path = f"/proc/sys/net/ipv4/neigh/{dev}/retrans_time_ms"
        with self._inside(self.real_name(key)):
            if os.path.exists(path):
                with open(path, "w", encoding="ascii") as f:
                    f.write(ARP_RETRANS_MS)

    def _DelLink(self, op: O.DelLink) -> None:
        self._ipr(op.netns).link("del", index=self._index(op.netns, op.name))

    def _SetLinkUp(self, op: O.SetLinkUp) -> None:
        self._ipr(op.netns).link("set", index=self._index(op.netns, op.name),
                                 state="up" if op.up else "down")

    def _SetLinkMtu(self, op: O.SetLinkMtu) -> None:
        self._ipr(op.netns).link("set", index=self._index(op.netns, op.name), mtu=op.mtu)

    def _SetLinkAddress(self, op: O.SetLinkAddress) -> None:
        self._ipr(op.netns).link("set", index=self._index(op.netns, op.name),
                                 address=op.address)

    def _SetLinkMaster(self, op: O.SetLinkMaster) -> None:
        index = self._index(op.netns, op.name)
        master = 0 if op.master is None else self._index(op.netns, op.master)
        self._ipr(op.netns).link("set", index=index, master=master)

    def _MoveLink(self, op: O.MoveLink) -> None:
        index = self._index(op.netns, op.name)
        target = self._fds[self.real_name(op.to_netns)]
        self._ipr(op.netns).link("set", index=index, net_ns_fd=target)
        self._short_arp_retry(op.to_netns, op.name)

    def _RenameLink(self, op: O.RenameLink) -> None:
        self._ipr(op.netns).link("set", index=self._index(op.netns, op.name),
                                 ifname=op.new_name)

    # --- addresses -----------------------------------------------------------------------
    def _AddAddress(self, op: O.AddAddress) -> None:
        args: dict[str, object] = {}
        if op.broadcast is not None:
            args["broadcast"] = op.broadcast
        self._ipr(op.netns).addr("add", index=self._index(op.netns, op.dev), address=op.ip,
                                 prefixlen=op.prefixlen, **args)

    def _DelAddress(self, op: O.DelAddress) -> None:
        prefixlen = 32 if op.prefixlen is None else op.prefixlen
        self._ipr(op.netns).addr("del", index=self._index(op.netns, op.dev), address=op.ip,
                                 prefixlen=prefixlen)

    def _FlushAddresses(self, op: O.FlushAddresses) -> None:
        ipr = self._ipr(op.netns)
        index = self._index(op.netns, op.dev)
        for msg in ipr.get_addr(family=2, index=index):
            ipr.addr("del", index=index, address=msg.get_attr("IFA_ADDRESS"),
                     prefixlen=msg["prefixlen"])

    # --- routes ---------------------------------------------------------------------------
    def _route_args(self, op: O.AddRoute | O.DelRoute) -> dict[str, object]:
        args: dict[str, object] = {"dst": "0.0.0.0/0" if op.dst == "default" else op.dst,
                                   "table": MAIN_TABLE, "family": 2}
        if "/" not in str(args["dst"]):
            args["dst"] = f"{args['dst']}/32"
        if op.dev is not None:
            args["oif"] = self._index(op.netns, op.dev)
        if op.gateway is not None:
            args["gateway"] = op.gateway
        if op.metric:
            args["priority"] = op.metric
        return args

    def _AddRoute(self, op: O.AddRoute) -> None:
        args = self._route_args(op)
        rtype = TYPES.get(op.type)
        proto = PROTOS.get(op.proto, int(op.proto) if str(op.proto).isdigit() else None)
        if rtype is None or proto is None:
            raise CommandError(f'Error: argument "{op.type if rtype is None else op.proto}" '
                               f"is wrong: invalid route type", status=255)
        args["type"], args["proto"] = rtype, proto
        args["scope"] = SCOPES[op.scope] if op.scope is not None else _default_scope(op)
        if op.src is not None:
            args["prefsrc"] = op.src
        if op.onlink:
            args["flags"] = RTNH_F_ONLINK
        pass

    def _DelRoute(self, op: O.DelRoute) -> None:
        self._ipr(op.netns).route("del", **self._route_args(op))

    # --- sysctls and iptables ------------------------------------------------------------
    def _SetSysctl(self, op: O.SetSysctl) -> None:
        try:
            self._sysctl(op.netns, op.key, op.value)
        except FileNotFoundError:
            raise CommandError(f"sysctl: cannot stat {proc_path(op.key)}: No such file or "
                               f"directory", status=255) from None
        except OSError as exc:
            raise CommandError(f'sysctl: setting key "{op.key}": {os.strerror(exc.errno or 0)}',
                               status=1) from None

    def _IptablesRestore(self, op: O.IptablesRestore) -> None:
        if self._ip is None:
            raise missing_tool("ip")
        if self._iptables_restore is None:
            raise missing_tool("iptables-restore")
        argv = [self._ip, "netns", "exec", self.real_name(op.netns), "iptables-restore", "-w"]
        if op.noflush:
            argv.append("--noflush")
        done = subprocess.run(argv, input=op.payload, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip().splitlines()
            raise CommandError(words[0] if words else f"iptables-restore: exit status "
                               f"{done.returncode}", status=done.returncode)


def _default_scope(op: O.AddRoute) -> int:
    """iproute2's choice when `scope` is not typed."""
    if op.type in ("local", "nat"):
        return SCOPES["host"]
    if op.type in ("broadcast", "multicast", "anycast"):
        return SCOPES["link"]
    if op.type == "unicast" and op.gateway is None:
        return SCOPES["link"]
    return SCOPES["global"]


def _write_sysctl(key: str, value: str) -> None:
    """Write /proc/sys/KEY in the namespace this thread is in."""
    with open(proc_path(key), "w", encoding="ascii") as f:
        f.write(value)


_IPROUTE2_WORDS = {
    E.EEXIST: "RTNETLINK answers: File exists",
    E.ESRCH: "RTNETLINK answers: No such process",
    E.ENETUNREACH: "Error: Nexthop has invalid gateway.",
    E.EADDRNOTAVAIL: "RTNETLINK answers: Cannot assign requested address",
    E.EINVAL: "RTNETLINK answers: Invalid argument",
    E.EPERM: "RTNETLINK answers: Operation not permitted",
    E.EBUSY: "RTNETLINK answers: Device or resource busy",
    E.ENOTSUP: "Error: Unknown device type.",
}


def _netlink_words(exc: Exception, op: O.Op) -> str:
    """The kernel's refusal as iproute2 prints it: the extack text where the kernel gave
    one (pyroute2 passes it as the message), otherwise iproute2's RTNETLINK line."""
    code = getattr(exc, "code", None) or getattr(exc, "errno", None) or 0
    text = str(exc.args[1]) if len(exc.args) > 1 else ""
    if code == E.ENODEV and hasattr(op, "name"):
        return f'Cannot find device "{getattr(op, "name")}"'
    if text and text != os.strerror(code) and not text.startswith(("setns", "mount", "unshare")):
        return f"Error: {text.rstrip('.')}."
    if text.startswith(("setns", "mount", "unshare")):
        return text
    return _IPROUTE2_WORDS.get(code, f"RTNETLINK answers: {os.strerror(code)}")
