"""The real-kernel half of the twin tests: a learner's script, run in namespaces of our own.

A scenario's script is written as a learner types it in the root namespace of a
machine called ``host``. On the kernel the machine is a fresh namespace
``nlt-<uid>-host`` and every namespace the learner names (``red``, ``blue``) is
renamed ``nlt<uid>-red``, so nothing touches the real root namespace or another
run's namespaces. Interface names stay as typed: each lives in a namespace of
this run only.

Commands run from argument lists (shlex.split), never through a shell.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


PREFIX = "nlt"
SESSION = secrets.token_hex(2)   # every name this pytest run makes starts nlt<SESSION> or nlt-<SESSION>
COMMAND_TIMEOUT = 10.0
TCP_TIMEOUT = 2.0                        # clear of the kernel's 1 s SYN retry
UDP_TIMEOUT = 1.5
SETTLE_TIMEOUT = 3.0

# Making real runs repeatable (KERNEL_NOTES.md): per namespace, and per device
# before probing (devices created before a write to .default keep their own
# values, and a namespace other than the first has no neigh.default at all).
NAMESPACE_SYSCTLS = {
    "net.ipv4.icmp_ratelimit": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    # What the model calls a fresh namespace: a distribution's sysctl.d may have
    # raised these on the machine, and new namespaces inherit them.
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}
DEVICE_SYSCTLS = {
    "net.ipv4.neigh.{dev}.retrans_time_ms": "100",
    "net.ipv4.conf.{dev}.send_redirects": "0",
    "net.ipv4.conf.{dev}.accept_redirects": "0",
}


def run(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, 124, exc.stdout or "", (exc.stderr or "")
                                           + f"\n[timed out after {timeout} s]")


def namespaces_now() -> list[str]:
    out = run(["ip", "-json", "netns", "list"]).stdout.strip()
    return [entry["name"] for entry in json.loads(out)] if out else []


# --- namespace names ------------------------------------------------------------------

class NetnsNames:
    """The learner's namespace names and the real ones this run uses instead."""

    def __init__(self, uid: str):
        self.uid = uid
        self.host = f"{PREFIX}-{uid}-host"

    def real(self, learner: str) -> str:
        return self.host if learner == "host" else f"{PREFIX}{self.uid}-{learner}"

    def learner(self, real: str) -> str:
        if real == self.host:
            return "host"
        head = f"{PREFIX}{self.uid}-"
        return real[len(head):] if real.startswith(head) else real

    def ours(self, real: str) -> bool:
        return real == self.host or real.startswith(f"{PREFIX}{self.uid}-")


NETNS_VERBS_WITH_NAME = {"add", "del", "delete", "exec", "pids", "set", "attach"}
IP_OPTIONS_WITH_VALUE = {"-f", "-family", "-l", "-loops", "-b", "-batch", "-rc", "-rcvbuf"}


def rename_netns(argv: list[str], real: Callable[[str], str]) -> list[str]:
    """Rewrite the namespace names of one command, token by token.

    ``ip netns add|del|exec NS``, ``ip -n NS``, ``… netns NS`` (link set, link
    add … peer … netns NS); the command after ``ip netns exec NS`` is rewritten
    too. A numeric ``netns`` argument is a PID and stays.
    """
    if not argv or os.path.basename(argv[0]) != "ip":
        return list(argv)
    out, i = [argv[0]], 1
    while i < len(argv) and argv[i].startswith("-"):
        opt = argv[i]
        if opt in ("-n", "-netns", "--netns") and i + 1 < len(argv):
            out += [opt, real(argv[i + 1])]
            i += 2
        elif opt in IP_OPTIONS_WITH_VALUE and i + 1 < len(argv):
            out += argv[i:i + 2]
            i += 2
        else:
            out.append(opt)
            i += 1
    rest = argv[i:]
    if rest[:1] == ["netns"]:
        if len(rest) >= 3 and rest[1] in NETNS_VERBS_WITH_NAME:
            tail = rest[3:]
            if rest[1] == "exec":
                tail = rename_netns(tail, real)
            return out + rest[:2] + [real(rest[2])] + tail
        return out + rest
    renamed = list(rest)
    for j in range(len(renamed) - 1):
        if renamed[j] == "netns" and not renamed[j + 1].isdigit():
            renamed[j + 1] = real(renamed[j + 1])
    return out + renamed


def strip_netns_exec(argv: list[str]) -> tuple[str, list[str]]:
    """``ip netns exec blue nc -l -p 80`` -> ("blue", ["nc", "-l", "-p", "80"]).

    A line without ``ip netns exec`` runs in the machine's root: ("host", argv).
    """
    where = "host"
    while len(argv) >= 4 and os.path.basename(argv[0]) == "ip" and argv[1:3] == ["netns", "exec"]:
        where, argv = argv[3], argv[4:]
    return where, argv


def listener_of(argv: list[str]) -> tuple[str, int] | None:
    """(proto, port) of ``nc -l [-u] [-p] PORT`` (flags may be bundled: -lu, -lkp)."""
    if not argv or os.path.basename(argv[0]) not in ("nc", "netcat", "ncat"):
        return None
    flags, port, i = set(), None, 1
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("-") and len(tok) > 1:
            letters = tok[1:]
            flags |= set(letters)
            if letters.endswith("p") and i + 1 < len(argv):
                port = argv[i + 1]
                i += 1
        elif tok.isdigit():
            port = tok
        i += 1
    if "l" not in flags or port is None or not str(port).isdigit():
        return None
    return ("udp" if "u" in flags else "tcp"), int(port)


def proc_write(argv: list[str]) -> tuple[str, str] | None:
    """``echo 1 > /proc/sys/net/ipv4/ip_forward`` -> ("net.ipv4.ip_forward", "1")."""
    if len(argv) < 3 or argv[0] != "echo":
        return None
    if argv[-2] == ">" and len(argv) >= 4:
        value, path = " ".join(argv[1:-2]), argv[-1]
    elif argv[-1].startswith(">") and len(argv[-1]) > 1:
        value, path = " ".join(argv[1:-1]), argv[-1][1:]
    else:
        return None
    if not path.startswith("/proc/sys/"):
        return None
    return path[len("/proc/sys/"):].replace("/", "."), value


# --- processes in namespaces ----------------------------------------------------------

LISTENER_CODE = r"""
import socket, sys
proto, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
if proto == "tcp":
    s.listen(64)
print("ready", flush=True)
while True:
    if proto == "tcp":
        conn, peer = s.accept()
        print("conn", peer[0], peer[1], flush=True)
        conn.close()
    else:
        data, peer = s.recvfrom(4096)
        print("got", data.decode(errors="replace"), peer[0], peer[1], flush=True)
        s.sendto(data, peer)
"""

PROBE_CODE = r"""
import errno, socket, sys
proto, dst, token = sys.argv[1], sys.argv[2], sys.argv[5]
port, timeout = int(sys.argv[3]), float(sys.argv[4])
names = {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "unreachable",
         errno.ENETUNREACH: "unreachable"}
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(timeout)
step = "connect"
try:
    s.connect((dst, port))
    if proto == "udp":
        step = "send"
        s.send(token.encode())
        step = "recv"
        s.recv(4096)
    print("success", step)
except socket.timeout:
    print("timeout", step)
except OSError as e:
    print(names.get(e.errno, "error"), step, errno.errorcode.get(e.errno, e.errno), e.strerror)
"""


class Listener:
    def __init__(self, netns: str, proto: str, port: int):
        self.netns, self.proto, self.port = netns, proto, port
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-u", "-c", LISTENER_CODE, proto,
             str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.startswith("ready"):
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 3.0) -> tuple[bool, str]:
        self._ready.wait(timeout)
        if self.proc.poll() is not None:
            return False, self.proc.stderr.read()
        return "ready" in self.lines, ""

    def got(self, token: str) -> bool:
        return any(line.startswith(f"got {token} ") for line in list(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(2)


# --- the real host -------------------------------------------------------------------

@dataclass
class LineResult:
    cmd: str
    ok: bool
    output: str
    error: str
    status: int = 0
    argv: list[str] = field(default_factory=list)


@dataclass
class ProbeResult:
    outcome: str
    raw: str


def ping_outcome(returncode: int, output: str) -> str:
    if returncode == 0:
        return "success"
    if "Destination Port Unreachable" in output:
        return "refused"
    for words in ("Destination Host Unreachable", "Destination Net Unreachable",
                  "Network is unreachable", "No route to host", "Time to live exceeded"):
        if words in output:
            return "unreachable"
    if returncode == 1:
        return "timeout"
    return "error"


class RealHost:
    """One scenario's machine on the real kernel: namespaces, listeners, probes."""

    def __init__(self, uid: str):
        self.names = NetnsNames(uid)
        self.created: list[str] = []      # real namespace names, in creation order
        self.listeners: list[Listener] = []
        self.log: list[str] = []

    # --- lifetime --------------------------------------------------------------------
    def start(self) -> None:
        host = self.names.host
        self._checked(["ip", "netns", "add", host])
        self.created.append(host)
        self._prepare_netns(host)
        # The model's machine is booted: lo is up in its root namespace.
        self._checked(["ip", "-n", host, "link", "set", "lo", "up"])

    def close(self) -> None:
        for listener in self.listeners:
            listener.stop()
        leftovers = [n for n in namespaces_now() if self.names.ours(n)]
        for name in dict.fromkeys(self.created + leftovers):
            if name in namespaces_now():
                run(["ip", "netns", "del", name])

    def _checked(self, argv: list[str]) -> None:
        r = run(argv)
        if r.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed: {r.stderr.strip()}")

    def _prepare_netns(self, real: str) -> None:
        args = [f"{k}={v}" for k, v in NAMESPACE_SYSCTLS.items()]
        self._checked(["ip", "netns", "exec", real, "sysctl", "-q", "-w", *args])

    # --- running a learner's line ------------------------------------------------------
    def run(self, line: str) -> LineResult:
        argv = shlex.split(line)
        if argv[-1:] == ["&"]:              # listeners run in the background anyway
            argv = argv[:-1]
        where, inner = strip_netns_exec(argv)
        prefix = argv[:len(argv) - len(inner)]
        if inner[:1] in (["sh"], ["bash"]) and inner[1:2] == ["-c"] and len(inner) == 3:
            inner = shlex.split(inner[2])
            if proc_write(inner) is None:
                return self._refuse(line, "the harness runs `sh -c` only for echo > /proc/sys/…")
        write = proc_write(inner)
        if write is not None:               # the shell's redirection, done by sysctl instead
            inner = ["sysctl", "-w", f"{write[0]}={write[1]}"]
            argv = prefix + inner
        listen = listener_of(inner)
        if listen is not None:
            return self._listen(line, where, *listen)
        real_argv = rename_netns(argv, self.names.real)
        if real_argv[:2] != ["ip", "netns"]:
            # `ip netns add` must run outside: made inside `ip netns exec`, its bind
            # mount stays in that command's private mount namespace and the new
            # namespace is gone when it exits. Everything else acts on the
            # namespace it runs in: the machine's root.
            real_argv = ["ip", "netns", "exec", self.names.host, *real_argv]
        r = run(real_argv)
        result = LineResult(line, r.returncode == 0, r.stdout, r.stderr.strip(), r.returncode,
                            real_argv)
        self.log.append(f"$ {line}\n  [{shlex.join(real_argv)}] exit {r.returncode}"
                        + (f"\n  {result.error}" if result.error else ""))
        self._track(real_argv, result.ok)
        return result

    def _refuse(self, line: str, why: str) -> LineResult:
        self.log.append(f"$ {line}\n  [not run: {why}]")
        return LineResult(line, False, "", f"[harness] {why}", 127)

    def _track(self, argv: list[str], ok: bool) -> None:
        if argv[:3] == ["ip", "netns", "add"] and ok:
            self.created.append(argv[3])
            self._prepare_netns(argv[3])

    def _listen(self, line: str, where: str, proto: str, port: int) -> LineResult:
        listener = Listener(self.names.real(where), proto, port)
        self.listeners.append(listener)
        ok, err = listener.wait_ready()
        self.log.append(f"$ {line}\n  [listener {proto}/{port} in {listener.netns}] "
                        + ("ready" if ok else f"failed: {err.strip()}"))
        return LineResult(line, ok, "", err.strip(), 0 if ok else 1)

    # --- before probing --------------------------------------------------------------
    def our_namespaces(self) -> list[str]:
        return [n for n in namespaces_now() if self.names.ours(n)]

    def links(self, real: str) -> list[dict]:
        out = run(["ip", "-json", "-details", "-n", real, "link", "show"]).stdout.strip()
        return json.loads(out) if out else []

    def prepare_for_probes(self) -> None:
        """Short ARP retries and no redirects on every device; wait for carrier to settle."""
        for real in self.our_namespaces():
            args = [f"{k.format(dev=l['ifname'])}={v}" for l in self.links(real)
                    for k, v in DEVICE_SYSCTLS.items()]
            run(["ip", "netns", "exec", real, "sysctl", "-q", "-w", *args])
        self.settle()

    def settle(self) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            unsettled = [f"{real}:{l['ifname']}" for real in self.our_namespaces()
                         for l in self.links(real) if not link_settled(l)]
            if not unsettled:
                return
            time.sleep(0.05)
        self.log.append(f"[links not settled after {SETTLE_TIMEOUT} s: {unsettled}]")

    # --- probes ----------------------------------------------------------------------
    def ping(self, src: str, dst: str, ttl: int | None = None) -> ProbeResult:
        argv = ["ip", "netns", "exec", self.names.real(src), "ping", "-c1", "-W1"]
        argv += ["-t", str(ttl)] if ttl is not None else []
        r = run(argv + [dst])
        raw = f"$ {shlex.join(argv + [dst])}  [exit {r.returncode}]\n{r.stdout}{r.stderr}"
        return ProbeResult(ping_outcome(r.returncode, r.stdout + r.stderr), raw)

    def connect(self, src: str, dst: str, proto: str, port: int) -> ProbeResult:
        token = secrets.token_hex(4)
        timeout = TCP_TIMEOUT if proto == "tcp" else UDP_TIMEOUT
        argv = ["ip", "netns", "exec", self.names.real(src), sys.executable, "-c", PROBE_CODE,
                proto, dst, str(port), str(timeout), token]
        r = run(argv)
        words = r.stdout.split()
        outcome = words[0] if words else "error"
        note = ""
        if proto == "udp" and outcome == "timeout" and any(l.got(token) for l in self.listeners):
            outcome, note = "success", "  (no answer, but the listener got the datagram)"
        raw = (f"$ {proto} probe {src}({self.names.real(src)}) -> {dst}:{port}  "
               f"[exit {r.returncode}] {r.stdout.strip()}{note}{r.stderr.strip()}")
        return ProbeResult(outcome, raw)

    def routes(self, learner: str) -> set[tuple[str, str | None]]:
        out = run(["ip", "-json", "-n", self.names.real(learner), "route", "show"]).stdout.strip()
        return {(normal_dst(r["dst"]), r.get("dev")) for r in (json.loads(out) if out else [])}


    def carrier(self, learner: str, dev: str) -> bool | None:
        out = run(["ip", "-json", "-n", self.names.real(learner), "link", "show", "dev", dev])
        if out.returncode != 0:
            return None
        flags = json.loads(out.stdout)[0].get("flags", [])
        return "UP" in flags and "LOWER_UP" in flags


def normal_dst(dst: str) -> str:
    if dst == "default":
        return dst
    return dst if "/" in dst else f"{dst}/32"


def link_settled(link: dict) -> bool:
    """The operational state has caught up with admin state and carrier (linkwatch ran)."""
    flags = link.get("flags", [])
    if "UP" not in flags:
        return True
    state = link.get("operstate")
    if "LOWER_UP" in flags:
        if state not in ("UP", "UNKNOWN") or link.get("qdisc") == "noop":
            return False
        info = link.get("linkinfo", {})
        if info.get("info_slave_kind") == "bridge":
            return info.get("info_slave_data", {}).get("state") == "forwarding"
        return True
    return state != "UP"


# --- additions for the netfilter twins (test_netfilter_twins.py) ----------------------
# What a listener saw (the peer address after SNAT / MASQUERADE), probes from a fixed
# source port (KERNEL_NOTES: distinct source ports, so NAT never picks a new one), and
# the kernel's own tables read back with iptables-save / conntrack.

SPORT_PROBE_CODE = r"""
import errno, socket, sys
proto, dst, token = sys.argv[1], sys.argv[2], sys.argv[5]
port, timeout, sport = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[6])
names = {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "unreachable",
         errno.ENETUNREACH: "unreachable"}
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(timeout)
step = "bind"
try:
    s.bind(("0.0.0.0", sport))
    step = "connect"
    s.connect((dst, port))
    if proto == "udp":
        step = "send"
        s.send(token.encode())
        step = "recv"
        s.recv(4096)
    print("success", step)
except socket.timeout:
    print("timeout", step)
except OSError as e:
    print(names.get(e.errno, "error"), step, errno.errorcode.get(e.errno, e.errno), e.strerror)
"""


def listener_peers(lines: list[str]) -> list[tuple[str, int]]:
    """(address, port) of every connection or datagram a Listener logged, in order."""
    out = []
    for line in lines:
        words = line.split()
        if words[:1] == ["conn"] and len(words) == 3:
            out.append((words[1], int(words[2])))
        elif words[:1] == ["got"] and len(words) >= 4:
            out.append((words[-2], int(words[-1])))
    return out


def listener_count(host: "RealHost") -> dict[int, int]:
    """How many lines each listener of the host has logged so far (by list index)."""
    return {i: len(l.lines) for i, l in enumerate(host.listeners)}


def new_peers(host: "RealHost", before: dict[int, int], wait: float = 0.5
              ) -> list[tuple[str, str, int, str, int]]:
    """(learner netns, proto, port, peer address, peer port) logged since ``before``."""
    deadline = time.monotonic() + wait
    while True:
        seen = []
        for i, listener in enumerate(host.listeners):
            fresh = list(listener.lines)[before.get(i, 0):]
            for addr, port in listener_peers(fresh):
                seen.append((host.names.learner(listener.netns), listener.proto, listener.port,
                             addr, port))
        if seen or time.monotonic() >= deadline:
            return seen
        time.sleep(0.05)


def connect_from(host: "RealHost", src: str, dst: str, proto: str, port: int, sport: int
                 ) -> ProbeResult:
    """A TCP connect or a UDP datagram from ``src`` bound to source port ``sport``."""
    token = secrets.token_hex(4)
    timeout = TCP_TIMEOUT if proto == "tcp" else UDP_TIMEOUT
    argv = ["ip", "netns", "exec", host.names.real(src), sys.executable, "-c", SPORT_PROBE_CODE,
            proto, dst, str(port), str(timeout), token, str(sport)]
    r = run(argv)
    words = r.stdout.split()
    outcome = words[0] if words else "error"
    note = ""
    if proto == "udp" and outcome == "timeout" and any(l.got(token) for l in host.listeners):
        outcome, note = "success", "  (no answer, but the listener got the datagram)"
    raw = (f"$ {proto} probe {src}({host.names.real(src)}):{sport} -> {dst}:{port}  "
           f"[exit {r.returncode}] {r.stdout.strip()}{note}{r.stderr.strip()}")
    return ProbeResult(outcome, raw)


def read_back(host: "RealHost", learner: str, argv: list[str]) -> str:
    """Run a read-only tool (iptables-save, conntrack -L) in one of the host's namespaces."""
    r = run(["ip", "netns", "exec", host.names.real(learner), *argv])
    return r.stdout + (r.stderr if r.returncode else "")
