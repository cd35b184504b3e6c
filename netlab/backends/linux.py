"""LinuxBackend: applies Ops to a real kernel, in network namespaces netlab creates.

    backend = LinuxBackend("bridge", journal)      # root only
    backend.apply(O.AddNode("host"))               # namespace nl-bridge-host, lo up
    backend.apply_all(ops)                         # one command's Ops
    backend.real_name("host/red")                  # 'nl-bridge-host-red'
    backend.close()

Each lab node is a namespace ``nl-<lab>-<node>``, a namespace a lab creates
inside a node is ``nl-<lab>-<node>-<name>``, a LAN switch is ``nl-<lab>-<switch>``.
Namespaces are made and entered in this process (unshare / setns, as `ip netns
add` does); each keeps a plain rtnetlink socket open (Rtnl: pyroute2's message
classes encode, one send, one ack; ~0.05 ms a request) and, made on first need,
a pyroute2 IPRoute for dumps and `link add`. No process and no helper per step
(``IPRoute(netns=...)`` forks one: ~10 ms a namespace). iptables payloads go to
``ip netns exec REAL iptables-restore`` on stdin; ``ipset`` and ``conntrack -F`` run
inside the namespace (a missing binary: one line naming its Debian package).
AddListener starts netlab.backends.listener in the namespace (a real socket
that logs the peers it sees to ``<run dir>/<lab>.d/``); its pid goes to the
journal, and `down` kills every process left in the lab's namespaces anyway.
The machine's own namespace is only ever re-entered, never changed; every
namespace is written to the journal before it is created.

With ``host=NODE`` (`netlab real up LAB --host`), NODE is the namespace this process
runs in, not a new one: netlab.backends.hostmode.HostGuard sees each Op on it first,
refuses what could not be undone exactly, and journals what undoes the rest.
"""

from __future__ import annotations

import ctypes
import errno as E
import ipaddress
import os
import socket
import struct
import shutil
import subprocess
import sys
import select
import tempfile
import time
from dataclasses import dataclass
from contextlib import contextmanager
from typing import Iterable, Iterator

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netlab import ops as O
from netlab.backends.journal import Journal
from netlab.errors import CommandError
from netlab.model import ROOT, ns_key, split_key
from netlab.model.sysctl import proc_path

PREFIX = "nl-"
NETNS_DIR = "/run/netns"
# With --host, the real "name" of the host node: a path that opens this namespace
# (os.path.join(NETNS_DIR, HOST_REAL) is HOST_REAL itself).
HOST_REAL = "/proc/self/ns/net"
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
    # no ICMP type is rate limited: this also skips the kernel's global ICMP budget
    # (icmp_msgs_per_sec), which busy neighbours on the machine can use up
    ("net.ipv4.icmp_ratemask", "0"),
)
# What the model calls a fresh namespace: a distribution's sysctl.d may have raised these
# on the machine, and new namespaces inherit them (devconf_inherit_init_net). Looked at in
# the first namespace a backend makes; written in every one only when they are not 0.
FRESH_SYSCTLS = (("net.ipv4.conf.all.rp_filter", "0"),
                 ("net.ipv4.conf.default.rp_filter", "0"))
# A new namespace has no neigh/default sysctls (only the first namespace does): the short
# ARP retry is set on each device as it appears (created, or moved in).
ARP_RETRANS_MS = "100"

PROTOS = {"unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "ra": 9,
          "dhcp": 16}
SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
TYPES = {"unicast": 1, "local": 2, "broadcast": 3, "anycast": 4, "multicast": 5,
         "blackhole": 6, "unreachable": 7, "prohibit": 8, "throw": 9, "nat": 10}
RTNH_F_ONLINK = 4                   # rtm_flags
NUD = {"NONE": 0x00, "INCOMPLETE": 0x01, "REACHABLE": 0x02, "STALE": 0x04, "DELAY": 0x08,
       "PROBE": 0x10, "FAILED": 0x20, "NOARP": 0x40, "PERMANENT": 0x80}
MAIN_TABLE = 254

# Ops after which remembered ifindexes may be wrong (a veth's peer goes too, elsewhere).
FORGET_DEVICES_AFTER = (O.DelLink, O.MoveLink, O.RenameLink, O.DelNetns)

TOOL_PACKAGES = {"ip": "iproute2", "iptables-restore": "iptables", "iptables": "iptables",
                 "iptables-save": "iptables", "ipset": "ipset", "conntrack": "conntrack"}
LISTENER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "listener.py")
LISTENER_READY_TIMEOUT = 5.0

_libc = ctypes.CDLL(None, use_errno=True)

# rtnetlink, for the requests sent on a plain socket (pyroute2's classes encode them)
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
NLMSG_ERROR, NLM_F_CAPPED, NLM_F_ACK_TLVS, NLMSGERR_ATTR_MSG = 2, 0x100, 0x200, 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = \
    16, 18, 20, 21, 24, 25
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000


class Rtnl:
    """A plain rtnetlink socket in the namespace it was made in: one request, one ack, no
    event loop (pyroute2's IPRoute costs ~0.4 ms a request; this ~0.05 ms). A refusal is
    a NetlinkError carrying the kernel's extack text where it gave one."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg, mtype: int, flags: int = 0) -> bytes | None:  # type: ignore[no-untyped-def]
        """Send ``msg``; the reply message (for a GET) or None once the kernel acks."""
        self.seq += 1
        header = msg["header"]
        header["type"], header["flags"] = mtype, NLM_F_REQUEST | NLM_F_ACK | flags
        header["sequence_number"], header["pid"] = self.seq, 0
        msg.encode()
        self.sock.send(msg.data)
        reply = None
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind, got_flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                if length < 16:
                    break
                if seq == self.seq:
                    if kind != NLMSG_ERROR:
                        reply = data[off:off + length]
                    else:
                        (code,) = struct.unpack_from("=i", data, off + 16)
                        if code == 0:
                            return reply
                        text = _extack(data[off:off + length], got_flags)
                        raise NetlinkError(-code, text or os.strerror(-code))
                off += (length + 3) & ~3

    def link_index(self, name: str) -> int | None:
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            data = self.request(msg, RTM_GETLINK)
        except NetlinkError as exc:
            if exc.code == E.ENODEV:
                return None
            raise
        if data is None:
            return None
        return struct.unpack_from("=i", data, 16 + 4)[0]   # ifinfomsg: family, type, index


def _extack(msg: bytes, flags: int) -> str | None:
    """NLMSGERR_ATTR_MSG of an error message, if the kernel attached one."""
    if not flags & NLM_F_ACK_TLVS:
        return None
    echoed = 16 if flags & NLM_F_CAPPED else struct.unpack_from("=I", msg, 20)[0]
    off = 16 + 4 + echoed
    while off + 4 <= len(msg):
        size, kind = struct.unpack_from("=HH", msg, off)
        if size < 4:
            break
        if kind == NLMSGERR_ATTR_MSG:
            return msg[off + 4:off + size].rstrip(b"\0").decode(errors="replace")
        off += (size + 3) & ~3
    return None


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


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(os.path.join(NETNS_DIR, name)).st_ino
    except FileNotFoundError:
        return None


def pids_in(inodes: set[int]) -> list[int]:
    """Every process whose network namespace is one of ``inodes`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(int(entry))
        except OSError:
            continue                                # gone, or a zombie
    return found


def kill_all(pids: list[int], wait: float = 3.0) -> None:
    """SIGKILL each; reap our own children; wait until /proc no longer lists them."""
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    left = list(pids)
    while left and time.monotonic() < deadline:
        still = []
        for pid in left:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    state = f.read().rsplit(")", 1)[-1].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if state not in ("Z", "X"):
                still.append(pid)
        left = still
        if left:
            time.sleep(0.01)


@dataclass(frozen=True)
class RealListener:
    key: str                  # the namespace as the lab names it
    proto: str
    port: int
    addr: str
    record: str               # its log file
    pid: int


class LinuxBackend:
    def __init__(self, lab: str, journal: Journal | None = None, host: str | None = None):
        self.lab = lab
        self.journal = journal
        self.host = host                            # the node that is this namespace
        self.guard = None                           # its HostGuard, once AddNode made it
        self._sockets: dict[str, object] = {}      # real name -> IPRoute (dumps, link add)
        self._rtnl: dict[str, Rtnl] = {}            # real name -> plain rtnetlink socket
        self._fds: dict[str, int] = {}             # real name -> open namespace fd
        self._names: dict[str, str] = {}           # ns key -> real name
        self._ifindex: dict[tuple[str, str], int] = {}   # (ns key, device) -> ifindex
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        self._iptables_restore = shutil.which("iptables-restore")
        self._ip = shutil.which("ip")
        self.listeners: list[RealListener] = []
        self._procs: list[subprocess.Popen] = []
        self._state_dir: str | None = None
        self._inherits_sysctls: bool | None = None     # see FRESH_SYSCTLS

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
        guard = self.guard
        try:
            if guard is not None:
                guard.before(op)
            handler(op)
        except CommandError:
            raise
        except (OSError, NetlinkError) as exc:
            raise CommandError(_netlink_words(exc, op), status=2) from None
        finally:
            if isinstance(op, FORGET_DEVICES_AFTER):
                self._forget_devices()
            if guard is not None:
                guard.after(op)

    def close(self) -> None:
        for proc in self._procs:                  # they run on; close our ends of the pipes
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        self._procs.clear()
        for ipr in self._sockets.values():
            try:
                ipr.close()  # type: ignore[attr-defined]
            except Exception:
                pass
        self._sockets.clear()
        for sock in self._rtnl.values():
            sock.close()
        self._rtnl.clear()
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
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        except FileExistsError:               # someone else's since we looked: not ours
            if self.journal is not None:
                self.journal.forget("netns", real, key)
            raise CommandError(f'Cannot create namespace file "{NETNS_DIR}/{real}": '
                               f"File exists", status=1) from None
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise _os_error("unshare")
        try:
            if _libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND,
                           None) != 0:
                raise _os_error(f"mount {path}")
            self._fds[real] = os.open(path, os.O_RDONLY)
            self._rtnl[real] = Rtnl()                     # bound to this namespace, now
            for k, v in REPEATABLE_SYSCTLS:
                _write_sysctl(k, v)
            if self._inherits_sysctls is None:
                self._inherits_sysctls = any(_read_sysctl(k) != v for k, v in FRESH_SYSCTLS)
            if self._inherits_sysctls:
                for k, v in FRESH_SYSCTLS:
                    _write_sysctl(k, v)
        finally:
            if _libc.setns(self._home, CLONE_NEWNET) != 0:
                raise SystemExit("netlab: cannot return to the original network namespace")
        self._names[key] = real
        return real

    def _ipr(self, key: str):  # type: ignore[no-untyped-def]
        """pyroute2's IPRoute in the namespace (made on first use, inside it): for dumps
        and for `link add`, whose nested attributes it knows how to build."""
        real = self.real_name(key)
        ipr = self._sockets.get(real)
        if ipr is None:
            from pyroute2 import IPRoute

            with self._inside(real):
                ipr = IPRoute()
                ipr.link_lookup(ifname="lo")              # the socket is bound here, now
            self._sockets[real] = ipr
        return ipr

    def _nl(self, key: str) -> Rtnl:
        return self._rtnl[self.real_name(key)]

    def _set_link(self, key: str, name: str, *, up: bool | None = None,
                  attrs: list[tuple[str, object]] | None = None) -> None:
        """One RTM_NEWLINK on an existing device, as `ip link set` sends it."""
        msg = ifinfmsg()
        msg["index"] = self._index(key, name)
        if up is not None:
            msg["change"] = IFF_UP
            msg["flags"] = IFF_UP if up else 0
        msg["attrs"] = attrs or []
        self._nl(key).request(msg, RTM_NEWLINK)

    def _index(self, key: str, name: str) -> int:
        """The device's ifindex, remembered until a link is deleted, moved or renamed
        anywhere (a lookup costs as much as the change itself)."""
        index = self._ifindex.get((key, name))
        if index is None:
            found = self._nl(key).link_index(name)
            if found is None:
                raise CommandError(f'Cannot find device "{name}"', status=1)
            index = self._ifindex[(key, name)] = found
        return index

    def _forget_devices(self) -> None:
        self._ifindex.clear()

    def _sysctl(self, key: str, name: str, value: str) -> None:
        with self._inside(self.real_name(key)):
            _write_sysctl(name, value)

    def _AddNode(self, op: O.AddNode) -> None:
        key = ns_key(op.node)
        if op.node == self.host and self.guard is None:
            self._adopt_host(key)
            return
        self._create_netns(key)
        self._set_link(key, "lo", up=True)
        self._sysctl_if_present(key, "net.bridge.bridge-nf-call-iptables", "1")

    def _adopt_host(self, key: str) -> None:
        """The host node is this namespace: journalled (by its inode, so `down` finds it
        from elsewhere too), lo up if it is not; no sysctl is changed."""
        from netlab.backends.hostmode import HostGuard

        if self.journal is not None:
            self.journal.record("host", "netns", key,
                                {"inode": os.fstat(self._home).st_ino, "path": HOST_REAL})
        self._fds[HOST_REAL] = os.dup(self._home)
        self._rtnl[HOST_REAL] = Rtnl()
        self._names[key] = HOST_REAL
        guard = HostGuard(self, key)
        guard.adopt()                              # journals lo's state if it must change
        if not self._ipr(key).get_links(ifname="lo")[0]["flags"] & IFF_UP:
            self._set_link(key, "lo", up=True)
        self.guard = guard

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
        ipr = self._sockets.pop(real, None)
        if ipr is not None:
            ipr.close()  # type: ignore[attr-defined]
        inode = netns_inode(real)            # its listeners go with it, as in the model
        if inode is not None:
            kill_all(pids_in({inode}))
        self.listeners = [l for l in self.listeners if l.key != key]
        self._rtnl.pop(real).close()
        os.close(self._fds.pop(real))
        del self._names[key]
        remove_netns(real)

    def _AddSwitch(self, op: O.AddSwitch) -> None:
        key = ns_key(op.name)
        self._create_netns(key)
        self._set_link(key, "lo", up=True)
        for leaf in ("iptables", "ip6tables", "arptables"):
            self._sysctl_if_present(key, f"net.bridge.bridge-nf-call-{leaf}", "0")
        self._ipr(key).link("add", ifname=SWITCH_BRIDGE, kind="bridge")
        self._set_link(key, SWITCH_BRIDGE, up=True)

    def _AttachToSwitch(self, op: O.AttachToSwitch) -> None:
        switch, node = ns_key(op.switch), ns_key(op.node)
        self._AddLink(O.AddLink(netns=node, name=op.dev, kind="veth", peer=op.node,
                                peer_netns=switch))
        self._set_link(switch, op.node, attrs=[("IFLA_MASTER", self._index(switch, SWITCH_BRIDGE))])
        self._set_link(switch, op.node, up=True)
        self._set_link(node, op.dev, up=True)

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
        self._set_link(op.netns, op.name, up=op.up)

    def _SetLinkMtu(self, op: O.SetLinkMtu) -> None:
        self._set_link(op.netns, op.name, attrs=[("IFLA_MTU", op.mtu)])

    def _SetLinkAddress(self, op: O.SetLinkAddress) -> None:
        self._set_link(op.netns, op.name, attrs=[("IFLA_ADDRESS", op.address)])

    def _SetLinkMaster(self, op: O.SetLinkMaster) -> None:
        master = 0 if op.master is None else self._index(op.netns, op.master)
        self._set_link(op.netns, op.name, attrs=[("IFLA_MASTER", master)])

    def _MoveLink(self, op: O.MoveLink) -> None:
        target = self._fds[self.real_name(op.to_netns)]
        self._set_link(op.netns, op.name, attrs=[("IFLA_NET_NS_FD", target)])
        self._short_arp_retry(op.to_netns, op.name)

    def _RenameLink(self, op: O.RenameLink) -> None:
        self._set_link(op.netns, op.name, attrs=[("IFLA_IFNAME", op.new_name)])

    # --- addresses -----------------------------------------------------------------------
    def _AddAddress(self, op: O.AddAddress) -> None:
        self._address(op.netns, op.dev, op.ip, op.prefixlen, op.broadcast, RTM_NEWADDR,
                      NLM_F_CREATE | NLM_F_EXCL)

    def _DelAddress(self, op: O.DelAddress) -> None:
        prefixlen = 32 if op.prefixlen is None else op.prefixlen
        self._address(op.netns, op.dev, op.ip, prefixlen, None, RTM_DELADDR, 0)

    def _address(self, key: str, dev: str, ip: str, prefixlen: int, broadcast: str | None,
                 mtype: int, flags: int) -> None:
        msg = ifaddrmsg()
        msg["family"], msg["prefixlen"] = 2, prefixlen
        msg["index"] = self._index(key, dev)
        msg["attrs"] = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
        if broadcast is not None:
            msg["attrs"].append(("IFA_BROADCAST", broadcast))
        self._nl(key).request(msg, mtype, flags)

    def _FlushAddresses(self, op: O.FlushAddresses) -> None:
        ipr = self._ipr(op.netns)
        index = self._index(op.netns, op.dev)
        for msg in ipr.get_addr(family=2, index=index):
            ipr.addr("del", index=index, address=msg.get_attr("IFA_ADDRESS"),
                     prefixlen=msg["prefixlen"])

    # --- routes ---------------------------------------------------------------------------
    def _route_msg(self, op: O.AddRoute | O.DelRoute) -> rtmsg:
        msg = rtmsg()
        msg["family"], msg["table"] = 2, MAIN_TABLE
        if op.dst != "default":
            net = ipaddress.ip_network(op.dst if "/" in op.dst else f"{op.dst}/32", strict=False)
            msg["dst_len"] = net.prefixlen
            msg["attrs"].append(("RTA_DST", str(net.network_address)))
        if op.dev is not None:
            msg["attrs"].append(("RTA_OIF", self._index(op.netns, op.dev)))
        if op.gateway is not None:
            msg["attrs"].append(("RTA_GATEWAY", op.gateway))
        if op.metric:
            msg["attrs"].append(("RTA_PRIORITY", op.metric))
        return msg

    def _AddRoute(self, op: O.AddRoute) -> None:
        rtype = TYPES.get(op.type)
        proto = PROTOS.get(op.proto, int(op.proto) if str(op.proto).isdigit() else None)
        if rtype is None or proto is None:
            raise CommandError(f'Error: argument "{op.type if rtype is None else op.proto}" '
                               f"is wrong: invalid route type", status=255)
        msg = self._route_msg(op)
        msg["type"], msg["proto"] = rtype, proto
        msg["scope"] = SCOPES[op.scope] if op.scope is not None else _default_scope(op)
        if op.src is not None:
            msg["attrs"].append(("RTA_PREFSRC", op.src))
        if op.onlink:
            msg["flags"] = RTNH_F_ONLINK
        flags = NLM_F_CREATE | (NLM_F_REPLACE if op.replace else NLM_F_EXCL)
        self._nl(op.netns).request(msg, RTM_NEWROUTE, flags)

    def _AddRoutes(self, op: O.AddRoutes) -> None:
        for dst, gateway in op.routes:
            self._AddRoute(O.AddRoute(op.netns, dst, dev=op.dev, gateway=gateway))

    def _DelRoute(self, op: O.DelRoute) -> None:
        msg = self._route_msg(op)          # as `ip route del` sends it: any type, any scope
        msg["scope"] = SCOPES["nowhere"]
        self._nl(op.netns).request(msg, RTM_DELROUTE)

    # --- neighbours ------------------------------------------------------------------------
    def _AddNeighbour(self, op: O.AddNeighbour) -> None:
        """`ip neigh add|replace` (the command checks "File exists" before; replace here)."""
        args: dict[str, object] = {"dst": op.ip, "ifindex": self._index(op.netns, op.dev),
                                   "state": NUD.get(op.state, NUD["PERMANENT"]), "family": 2}
        if op.mac is not None:
            args["lladdr"] = op.mac
        self._ipr(op.netns).neigh("replace", **args)

    def _FlushNeighbours(self, op: O.FlushNeighbours) -> None:
        """`ip neigh flush|del`: entries that are not PERMANENT or NOARP, or all of them
        with ``permanent`` (``nud all``, and `ip neigh del`)."""
        ipr = self._ipr(op.netns)
        query: dict[str, object] = {"family": 2}
        if op.dev is not None:
            query["ifindex"] = self._index(op.netns, op.dev)
        keep = 0 if op.permanent else NUD["PERMANENT"] | NUD["NOARP"]
        for msg in ipr.get_neighbours(**query):
            dst = msg.get_attr("NDA_DST")
            if (op.ip is not None and dst != op.ip) or msg["state"] & keep:
                continue
            ipr.neigh("del", dst=dst, ifindex=msg["ifindex"], family=2)

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
        real = self.real_name(op.netns)
        argv = [self._ip, "netns", "exec", real, "iptables-restore", "-w"]
        if real == HOST_REAL:
            argv = [self._iptables_restore, "-w"]
        if op.noflush:
            argv.append("--noflush")
        done = subprocess.run(argv, input=op.payload, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip().splitlines()
            raise CommandError(words[0] if words else f"iptables-restore: exit status "
                               f"{done.returncode}", status=done.returncode)


    def _in_netns(self, key: str, tool: str, args: list[str]) -> None:
        """``tool args`` inside the namespace; the tool's first line when it refuses."""
        if shutil.which(tool) is None:
            raise missing_tool(tool)
        fd = self._fds[self.real_name(key)]

        def enter() -> None:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                os._exit(126)
        done = subprocess.run([tool, *args], capture_output=True, text=True, check=False,
                              preexec_fn=enter, timeout=30)
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip().splitlines()
            raise CommandError(words[0] if words else f"{tool}: exit status {done.returncode}",
                               status=done.returncode)

    def _Ipset(self, op: O.Ipset) -> None:
        self._in_netns(op.netns, "ipset", list(op.args))

    def _FlushConntrack(self, op: O.FlushConntrack) -> None:
        self._in_netns(op.netns, "conntrack", ["-F"])

    # --- before probing ----------------------------------------------------------------------
    def unsettled(self) -> list[str]:
        """Links whose operational state has not caught up with admin state and carrier
        yet (linkwatch runs late), and bridge ports not forwarding: ``real:dev`` each."""
        out = []
        for key, real in self._names.items():
            for msg in self._ipr(key).get_links():
                if not msg["flags"] & IFF_UP:
                    continue
                name, state = msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_OPERSTATE")
                if msg["flags"] & IFF_LOWER_UP:
                    ok = state in ("UP", "UNKNOWN") and msg.get_attr("IFLA_QDISC") != "noop"
                    info = msg.get_attr("IFLA_LINKINFO")
                    if ok and info is not None and info.get_attr("IFLA_INFO_SLAVE_KIND") == "bridge":
                        data = info.get_attr("IFLA_INFO_SLAVE_DATA")
                        ok = data is None or data.get_attr("IFLA_BRPORT_STATE") in (None, 3)
                else:
                    ok = state != "UP"
                if not ok:
                    out.append(f"{real}:{name}")
        return out

    def settle(self, timeout: float = 3.0) -> list[str]:
        """Wait until every link has settled (KERNEL_NOTES); what has not, after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.unsettled()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.02)

    # --- listeners -------------------------------------------------------------------------
    def state_dir(self) -> str:
        """Where the lab's listeners log: ``<run dir>/<lab>.d`` (journalled before made)."""
        if self._state_dir is None:
            if self.journal is not None:
                path = self.journal.path[:-len(".json")] + ".d"
                self.journal.record("dir", path)
                os.makedirs(path, exist_ok=True)
            else:
                path = tempfile.mkdtemp(prefix=f"netlab-{self.lab}-")
            self._state_dir = path
        return self._state_dir

    def _AddListener(self, op: O.AddListener) -> None:
        real = self.real_name(op.netns)
        label = "host-netns" if real == HOST_REAL else real
        record = os.path.join(self.state_dir(), f"{label}-{op.proto}-{op.port}.jsonl")
        fd = self._fds[real]

        def enter() -> None:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                os._exit(126)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", LISTENER_SCRIPT, op.proto, str(op.port), op.addr, record],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=enter, start_new_session=True)
        self._procs.append(proc)
        if self.journal is not None:       # `down` finds it by its namespace anyway
            self.journal.record("listener", str(proc.pid), f"{op.netns} {op.proto}/{op.port}")
        ready, _, _ = select.select([proc.stdout], [], [], LISTENER_READY_TIMEOUT)
        line = proc.stdout.readline() if ready else b""  # type: ignore[union-attr]
        if line.strip() != b"ready":
            proc.kill()
            err = proc.stderr.read().decode(errors="replace").strip() \
                if proc.wait(5) is not None else ""  # type: ignore[union-attr]
            raise CommandError(err.splitlines()[-1] if err else
                               f"nc: the listener on {op.proto}/{op.port} did not start",
                               status=1)
        self.listeners.append(RealListener(op.netns, op.proto, op.port, op.addr, record,
                                           proc.pid))

    # --- VXLAN, FDB, a lab's files (the cluster and CNI layers' Ops) ----------------------
    def _AddVxlan(self, op: O.AddVxlan) -> None:
        """`ip link add NAME type vxlan id VNI [local] [remote] dstport PORT dev DEV
        [nolearning]`: IFLA_VXLAN_* as iproute2 sends them (remote is the GROUP attribute;
        the kernel makes its all-zeros FDB entry)."""
        args: dict[str, object] = {"ifname": op.name, "kind": "vxlan", "vxlan_id": op.vni,
                                   "vxlan_port": op.dstport,
                                   "vxlan_learning": 1 if op.learning else 0}
        if op.dev is not None:
            args["vxlan_link"] = self._index(op.netns, op.dev)
        if op.local is not None:
            args["vxlan_local"] = op.local
        if op.remote is not None:
            args["vxlan_group"] = op.remote
        if op.mtu is not None:
            args["mtu"] = op.mtu
        if op.address is not None:
            args["address"] = op.address
        self._ipr(op.netns).link("add", **args)
        self._short_arp_retry(op.netns, op.name)

    def _AddFdb(self, op: O.AddFdb) -> None:
        """`bridge fdb append MAC dev DEV dst IP`: RTM_NEWNEIGH, AF_BRIDGE, NLM_F_APPEND,
        NTF_SELF, NUD_PERMANENT|NUD_NOARP (what `bridge` assumes without a state)."""
        self._ipr(op.netns).fdb("append", ifindex=self._index(op.netns, op.dev),
                                lladdr=op.mac.lower(), dst=op.dst)

    def file_path(self, node: str, path: str) -> str:
        """Where the node's file ``path`` lives in real mode: under the lab's run dir
        (``<run dir>/<lab>.d/files/<node>/<path>``), never at the real path."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not path.startswith("/") or ".." in parts or "/" in node or node in ("", ".", ".."):
            raise CommandError(f"a lab file needs an absolute path without '..': {path!r}",
                               status=2)
        return os.path.join(self.state_dir(), "files", node, *parts)

    def _WriteFile(self, op: O.WriteFile) -> None:
        """A lab's file (or host-local's), written under the run dir; None removes it.
        The run dir is journalled (state_dir), so `down` removes the files with it."""
        real = self.file_path(op.node, op.path)
        if op.content is None:
            try:
                os.unlink(real)
            except FileNotFoundError:
                pass
            return
        os.makedirs(os.path.dirname(real), exist_ok=True)
        with open(real, "w", encoding="utf-8") as f:
            f.write(op.content)


def _default_scope(op: O.AddRoute) -> int:
    """iproute2's choice when `scope` is not typed."""
    if op.type in ("local", "nat"):
        return SCOPES["host"]
    if op.type in ("broadcast", "multicast", "anycast"):
        return SCOPES["link"]
    if op.type == "unicast" and op.gateway is None:
        return SCOPES["link"]
    return SCOPES["global"]


def _read_sysctl(key: str) -> str:
    with open(proc_path(key), encoding="ascii") as f:
        return f.read().strip()


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
