"""The sysctls netlab models, their defaults, and how writes propagate.

Only keys listed here exist: reading or writing another one fails as
``sysctl`` does when the /proc file is missing.
"""

from __future__ import annotations

# Keys held by the namespace (net.ipv4.conf.all.* and .default.* included).
NETNS_DEFAULTS: dict[str, str] = {
    "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.forwarding": "0",
    "net.ipv4.conf.default.forwarding": "0",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.accept_redirects": "1",
    "net.ipv4.conf.default.accept_redirects": "1",
    "net.ipv4.conf.all.send_redirects": "1",
    "net.ipv4.conf.default.send_redirects": "1",
    "net.ipv4.conf.all.route_localnet": "0",
    "net.ipv4.conf.default.route_localnet": "0",
    "net.ipv4.icmp_echo_ignore_all": "0",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1",
    "net.ipv4.icmp_ratelimit": "1000",
    "net.ipv4.ip_default_ttl": "64",
    "net.ipv4.ip_local_port_range": "32768\t60999",
    "net.ipv4.neigh.default.retrans_time_ms": "1000",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.bridge.bridge-nf-call-arptables": "1",
}

# Per-device keys: net.ipv4.conf.<dev>.<key>, copied from .default. when a link appears.
DEVICE_KEYS = ("forwarding", "rp_filter", "accept_redirects", "send_redirects", "route_localnet")

FORWARDING_ALIASES = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")


def device_key(key: str) -> tuple[str, str] | None:
    """``net.ipv4.conf.eth0.rp_filter`` -> (``eth0``, ``rp_filter``); None for other keys."""
    if not key.startswith("net.ipv4.conf."):
        return None
    rest = key[len("net.ipv4.conf."):]
    dev, _, leaf = rest.rpartition(".")
    if not dev or dev in ("all", "default") or leaf not in DEVICE_KEYS:
        return None
    return dev, leaf


def normalise(key: str) -> str:
    """sysctl accepts slashes as separators: net/ipv4/ip_forward."""
    return key.strip().replace("/", ".")


def proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def key_from_proc(path: str) -> str | None:
    if not path.startswith("/proc/sys/"):
        return None
    return path[len("/proc/sys/"):].replace("/", ".")
