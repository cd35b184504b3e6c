"""The real `nc -l` of real mode: a listener that writes down every peer it sees.

    python -m netlab.backends.listener tcp 80 0.0.0.0 /run/netlab/web.d/nl-web-host-web-tcp-80.jsonl

LinuxBackend starts it inside a lab namespace (setns before exec). Once the
socket is bound it prints ``ready`` on stdout and closes it; from then on each
connection or datagram is one JSON line appended to the record file:
``{"proto", "peer": [ip, port], "local": [ip, port], "data": "first bytes"}``.
``peer`` is the source after any SNAT/MASQUERADE, ``local`` the destination
after any DNAT: what the listener saw. A TCP client that sends an HTTP request
gets a one-line page (``netlab: connected to HOST``, as the model's curl prints),
so `curl` works against it. UDP datagrams are not answered, as `nc -l -u`.
Standard library only: it must start fast.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

IP_PKTINFO = 8                      # linux/in.h
READ_TIMEOUT = 0.5
HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")

_lock = threading.Lock()


def _record(path: str, entry: dict) -> None:
    line = json.dumps(entry) + "\n"
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _http_answer(data: bytes, local: tuple[str, int]) -> bytes | None:
    if not data.startswith(HTTP_METHODS):
        return None
    host = f"{local[0]}:{local[1]}"
    for line in data.split(b"\r\n")[1:]:
        if line.lower().startswith(b"host:"):
            host = line[5:].strip().decode(errors="replace")
            if ":" not in host:
                host += ":80"
    body = f"netlab: connected to {host}\n".encode()
    head = b"HEAD " if data.startswith(b"HEAD ") else b""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + (b"" if head else body))


def _serve_tcp_conn(conn: socket.socket, peer: tuple, path: str) -> None:
    local = conn.getsockname()
    conn.settimeout(READ_TIMEOUT)
    data = b""
    try:
        data = conn.recv(1024)
    except OSError:
        pass
    _record(path, {"proto": "tcp", "peer": list(peer[:2]), "local": list(local[:2]),
                   "data": data[:64].decode(errors="replace")})
    answer = _http_answer(data, local)
    try:
        if answer is not None:
            conn.sendall(answer)
    except OSError:
        pass
    conn.close()


def serve(proto: str, port: int, addr: str, path: str) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    if proto == "tcp":
        sock.listen(128)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    print("ready", flush=True)
    os.close(1)
    if proto == "tcp":
        while True:
            conn, peer = sock.accept()
            threading.Thread(target=_serve_tcp_conn, args=(conn, peer, path), daemon=True).start()
    while True:
        data, ancillary, _flags, peer = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        local_ip = addr
        for level, kind_, value in ancillary:
            if level == socket.IPPROTO_IP and kind_ == IP_PKTINFO and len(value) >= 12:
                local_ip = socket.inet_ntoa(value[8:12])   # in_pktinfo.ipi_addr: header dst
        _record(path, {"proto": "udp", "peer": list(peer[:2]), "local": [local_ip, port],
                       "data": data[:64].decode(errors="replace")})


def main(argv: list[str]) -> int:
    proto, port, addr, path = argv[0], int(argv[1]), argv[2], argv[3]
    try:
        serve(proto, port, addr, path)
    except OSError as exc:
        print(f"nc: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
