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
    "net.ipv4.icmp_ratemask": "6168",
    "net.ipv4.ip_default_ttl": "64",
    "net.ipv4.ip_local_port_range": "32768\t60999",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.bridge.bridge-nf-call-arptables": "1",
}

# Only the machine's first namespace (a node's root) has net.ipv4.neigh.default.*;
# a namespace made later has the per-device neigh keys alone (seen on 6.x).
NODE_ONLY_DEFAULTS: dict[str, str] = {
    "net.ipv4.neigh.default.retrans_time_ms": "1000",
}

# Per-device keys: net.ipv4.conf.<dev>.<key>, copied from conf.default. when a link
# appears, and net.ipv4.neigh.<dev>.<key>, stored as "neigh.<key>".
DEVICE_KEYS = ("forwarding", "rp_filter", "accept_redirects", "send_redirects", "route_localnet")
NEIGH_KEYS = {"retrans_time_ms": "1000"}

FORWARDING_ALIASES = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")


class Shared(dict):
    """Values several namespaces or links hold at once: the CNI replay gives the pods it
    makes the very dict of sysctls (and of each link's) their template's pod had, one for
    thousands of pods. Read as any dict; written only through ``own``."""
    __slots__ = ()


def own(values: dict[str, str]) -> dict[str, str]:
    """``values`` to write to: a copy of them when they are Shared (the holder stores it)."""
    return dict(values) if type(values) is Shared else values


def device_key(key: str) -> tuple[str, str] | None:
    """``net.ipv4.conf.eth0.rp_filter`` -> (``eth0``, ``rp_filter``);
    ``net.ipv4.neigh.eth0.retrans_time_ms`` -> (``eth0``, ``neigh.retrans_time_ms``);
    None for other keys."""
    for prefix, leaves, stored in (("net.ipv4.conf.", DEVICE_KEYS, ""),
                                   ("net.ipv4.neigh.", tuple(NEIGH_KEYS), "neigh.")):
        if not key.startswith(prefix):
            continue
        dev, _, leaf = key[len(prefix):].rpartition(".")
        if dev and dev not in ("all", "default") and leaf in leaves:
            return dev, stored + leaf
    return None


def device_defaults(sysctls: dict[str, str]) -> dict[str, str]:
    """The per-device values a new link starts with in a namespace."""
    conf = {leaf: sysctls[f"net.ipv4.conf.default.{leaf}"] for leaf in DEVICE_KEYS}
    for leaf, value in NEIGH_KEYS.items():
        conf["neigh." + leaf] = sysctls.get(f"net.ipv4.neigh.default.{leaf}", value)
    return conf


def normalise(key: str) -> str:
    """sysctl accepts slashes as separators: net/ipv4/ip_forward."""
    return key.strip().replace("/", ".")


def proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def key_from_proc(path: str) -> str | None:
    if not path.startswith("/proc/sys/"):
        return None
    return path[len("/proc/sys/"):].replace("/", ".")
