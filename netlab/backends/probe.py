"""Real traffic between a lab's namespaces: ICMP echo, TCP connect, UDP datagram.

    with Prober(records) as prober:                       # records: the lab's listener files
        seen = prober.probe(KernelProbe("nl-veth-host-red", "192.168.15.2", "icmp"))
        seen.outcome            # success | refused | unreachable | timeout | error
        many = prober.probe_all([...])                    # concurrently, results in order

Each probe runs in a thread of this process that enters the source namespace
(setns) only to make its socket, so probes are cheap and can run side by side.
The outcome uses netlab.trace's vocabulary, read as ping or nc would report it:
an echo reply or an accepted connection or a datagram the listener logged is
``success``; an ICMP port-unreachable or a RST is ``refused``; any other ICMP
error coming back, or the local stack's own ENETUNREACH / EHOSTUNREACH /
EINVAL / EACCES, is ``unreachable``; nothing before the deadline is
``timeout``; EPERM from send() on UDP or TCP (an OUTPUT DROP) is ``error``
(ping just sees no reply: ``timeout``). TCP and UDP probes carry a token; the
listener (netlab.backends.listener) that logs it tells which namespace got it
and the addresses it saw, i.e. the packet after every DNAT and SNAT.

``run_tool`` runs a lab's own probe command (ping, curl, nc, traceroute) inside
a namespace, from an argument list.
"""

from __future__ import annotations

import ctypes
import errno as E
import json
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from netlab.errors import CommandError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
ICMP_TIMEOUT = 1.0            # above 3 ARP retries of 100 ms, clear of TCP's 1 s SYN retry
TCP_TIMEOUT = 0.8
UDP_TIMEOUT = 0.8
RECORD_WAIT = 1.5             # how long an accepted connection's log line may take
LATE_RECORD = 0.2             # a datagram's log line, once the wait is over (a busy machine)
POLL = 0.02
TOOL_PACKAGES = {"ping": "iputils-ping", "curl": "curl", "nc": "netcat-openbsd",
                 "traceroute": "traceroute", "ipset": "ipset", "conntrack": "conntrack",
                 "iptables": "iptables", "iptables-restore": "iptables"}

_libc = ctypes.CDLL(None, use_errno=True)
_UNREACHABLE = {E.ENETUNREACH, E.EHOSTUNREACH, E.EINVAL, E.EACCES}


@dataclass(frozen=True)
class KernelProbe:
    source: str                   # the real namespace it is sent from
    dst: str
    proto: str                    # icmp | tcp | udp
    port: int | None = None
    sport: int | None = None      # None: the kernel picks one
    timeout: float | None = None  # None: the module's default for the protocol


@dataclass
class Seen:
    """What happened to one probe on the kernel."""
    outcome: str
    delivered_to: str | None = None     # the real namespace whose listener logged it
    src: str | None = None              # the peer address the listener saw
    dst: str | None = None              # "IP:PORT" the listener was reached at
    detail: str = ""

    def to_json(self) -> dict:
        return {"outcome": self.outcome, "delivered_to": self.delivered_to, "src": self.src,
                "dst": self.dst, "detail": self.detail}


class Records:
    """The log files of a lab's listeners: path -> the real namespace it listens in."""

    def __init__(self, files: dict[str, str] | None = None):
        self.files = dict(files or {})

    def find(self, token: str) -> tuple[str, dict] | None:
        for path, netns in list(self.files.items()):
            try:
                with open(path, encoding="utf-8") as f:
                    lines = f.readlines()
            except FileNotFoundError:
                continue
            for line in lines:
                if token in line:
                    try:
                        return netns, json.loads(line)
                    except ValueError:
                        continue
        return None


# --- sockets made inside a namespace ----------------------------------------------------


def _bound_socket(p: "KernelProbe", kind: int) -> socket.socket:
    """A TCP or UDP socket in the probe's source namespace, on its source port if it has
    one (SO_REUSEADDR, so a probe can reuse a port a previous one left in TIME_WAIT)."""
    sock = socket_in(p.source, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if p.sport is not None:
            sock.bind(("0.0.0.0", p.sport))
    except OSError:
        sock.close()
        raise
    return sock

def socket_in(netns: str, kind: int, proto: int = 0) -> socket.socket:
    """A socket of namespace ``netns`` (the calling thread enters it and comes back)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns {netns}: {os.strerror(code)}")
        try:
            return socket.socket(socket.AF_INET, kind, proto)
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise SystemExit("netlab: cannot return to the original network namespace")
    finally:
        os.close(target)
        os.close(home)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _classify(code: int | None) -> str:
    if code == E.ECONNREFUSED:
        return "refused"
    if code in _UNREACHABLE:
        return "unreachable"
    return "error"


# --- the three probes ------------------------------------------------------------------------

class Prober:
    def __init__(self, records: Records | None = None, workers: int = 16):
        self.records = records or Records()
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._ids: set[int] = set()

    def __enter__(self) -> "Prober":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def probe_all(self, probes: list[KernelProbe]) -> list[Seen]:
        """Every probe at once (each in its own thread); the results in the same order."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="netlab-probe")
        return list(self._pool.map(self.probe, probes))

    def probe(self, p: KernelProbe) -> Seen:
        try:
            if p.proto == "icmp":
                return self._icmp(p)
            if p.proto == "tcp":
                return self._tcp(p)
            if p.proto == "udp":
                return self._udp(p)
        except OSError as exc:
            return Seen("error", detail=f"{type(exc).__name__}: {exc}")
        raise ValueError(f"unknown protocol {p.proto}")

    def _ident(self) -> int:
        with self._lock:
            while True:
                ident = secrets.randbelow(0xFFFF) + 1
                if ident not in self._ids:
                    self._ids.add(ident)
                    return ident

    def _icmp(self, p: KernelProbe) -> Seen:
        timeout = p.timeout if p.timeout is not None else ICMP_TIMEOUT
        ident, seq = self._ident(), 1
        sock = socket_in(p.source, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        try:
            payload = b"netlab-probe" + secrets.token_bytes(4)
            head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, _checksum(head + payload), ident, seq) + payload
            note = ""
            try:
                sock.sendto(packet, (p.dst, 0))
            except OSError as exc:
                if exc.errno != E.EPERM:       # EPERM: OUTPUT dropped or rejected it; an
                    return Seen(_classify(exc.errno), detail=f"sendto: {exc.strerror}")
                note = "sendto: Operation not permitted; "   # REJECT's ICMP may still come
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return Seen("timeout", detail=note + f"no answer in {timeout} s")
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    continue
                data = sock.recv(65535)
                got = _icmp_answer(data, ident, seq)
                if got is not None:
                    return Seen(got[0], detail=note + got[1])
        finally:
            sock.close()

    def _tcp(self, p: KernelProbe) -> Seen:
        timeout = p.timeout if p.timeout is not None else TCP_TIMEOUT
        token = f"netlab-{secrets.token_hex(6)}"
        sock = _bound_socket(p, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect((p.dst, p.port or 0))
            except socket.timeout:
                return Seen("timeout", detail=f"connect: no answer in {timeout} s")
            except OSError as exc:
                return Seen(_classify(exc.errno), detail=f"connect: {exc.strerror}")
            try:
                sock.sendall(token.encode())
            except OSError:
                pass
            return self._delivered(token, "connected", RECORD_WAIT)
        finally:
            sock.close()

    def _udp(self, p: KernelProbe) -> Seen:
        timeout = p.timeout if p.timeout is not None else UDP_TIMEOUT
        token = f"netlab-{secrets.token_hex(6)}"
        sock = _bound_socket(p, socket.SOCK_DGRAM)
        try:
            try:
                sock.connect((p.dst, p.port or 0))
                sock.send(token.encode())
            except OSError as exc:
                return Seen(_classify(exc.errno), detail=f"send: {exc.strerror}")
            sock.setblocking(False)
            deadline = time.monotonic() + timeout
            while True:
                found = self.records.find(token)
                if found is not None:
                    return self._seen(found, "the listener logged the datagram")
                try:
                    sock.recv(4096)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    return Seen(_classify(exc.errno), detail=f"recv: {exc.strerror}")
                if time.monotonic() >= deadline:
                    time.sleep(LATE_RECORD)
                    found = self.records.find(token)
                    if found is not None:
                        return self._seen(found, "the listener logged the datagram (late)")
                    return Seen("timeout", detail=f"no listener logged it in {timeout} s and "
                                                  "no ICMP error came back")
                time.sleep(POLL)
        finally:
            sock.close()

    def _delivered(self, token: str, what: str, wait: float) -> Seen:
        deadline = time.monotonic() + wait
        while True:
            found = self.records.find(token)
            if found is not None:
                return self._seen(found, what)
            if time.monotonic() >= deadline:
                return Seen("success", detail=f"{what}; no listener of the lab logged it")
            time.sleep(POLL)

    @staticmethod
    def _seen(found: tuple[str, dict], what: str) -> Seen:
        netns, entry = found
        peer, local = entry.get("peer") or [None, None], entry.get("local") or [None, None]
        return Seen("success", delivered_to=netns, src=peer[0], dst=f"{local[0]}:{local[1]}",
                    detail=f"{what}: {netns} saw {peer[0]}:{peer[1]} → {local[0]}:{local[1]}")


def _icmp_answer(data: bytes, ident: int, seq: int) -> tuple[str, str] | None:
    """(outcome, what came) when ``data`` (an IPv4 packet) answers our echo request."""
    if len(data) < 28:
        return None
    ihl = (data[0] & 0x0F) * 4
    src = socket.inet_ntoa(data[12:16])
    kind, code = data[ihl], data[ihl + 1]
    if kind == 0:
        got_id, got_seq = struct.unpack_from("!HH", data, ihl + 4)
        if (got_id, got_seq) == (ident, seq):
            return "success", f"echo reply from {src}"
        return None
    if kind not in (3, 11, 12):
        return None
    inner = data[ihl + 8:]
    if len(inner) < 28 or inner[9] != socket.IPPROTO_ICMP:
        return None
    inner_ihl = (inner[0] & 0x0F) * 4
    if len(inner) < inner_ihl + 8 or inner[inner_ihl] != 8:
        return None
    got_id, got_seq = struct.unpack_from("!HH", inner, inner_ihl + 4)
    if (got_id, got_seq) != (ident, seq):
        return None
    outcome = "refused" if (kind, code) == (3, 3) else "unreachable"
    return outcome, f"ICMP type {kind} code {code} from {src}"


# --- a lab's own probe commands ------------------------------------------------------------

def run_tool(netns: str, argv: list[str], timeout: float = 15.0,
             stdin: str | None = None) -> subprocess.CompletedProcess:
    """``argv`` inside namespace ``netns`` (no shell); CommandError when the tool is missing."""
    if shutil.which(argv[0]) is None:
        package = TOOL_PACKAGES.get(os.path.basename(argv[0]), argv[0])
        raise CommandError(f"real mode needs `{argv[0]}`, which is not on PATH "
                           f"(apt-get install {package})", status=2)
    fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
    try:
        def enter() -> None:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                os._exit(126)
        try:
            return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  timeout=timeout, preexec_fn=enter,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return subprocess.CompletedProcess(argv, 124, out,
                                               f"{argv[0]}: stopped after {timeout:g} s")
    finally:
        os.close(fd)
