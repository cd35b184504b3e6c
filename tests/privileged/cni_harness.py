"""Run CNI plugins (ours and the reference) in fresh namespaces and read the state back.

Every namespace is named ``cn-<pid>-<n>-host`` / ``cn-<pid>-<n>-cN``; the plugins
always run inside the host one (``ip netns exec``), so their bridge, host veth,
sysctls and iptables chains land there and never in this machine's root
namespace. The state is read back with other tools (``ip -json``,
``iptables-save``, the data dir's files), not with the plugin's code.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = REPO / "cni_plugins"
REFERENCE = Path("/usr/lib/cni")
_ids = itertools.count(1)


def reference_available() -> bool:
    return (REFERENCE / "bridge").exists() and (REFERENCE / "host-local").exists()


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kw)


class Lab:
    """A host namespace, container namespaces on demand, a data dir; ``close`` removes all."""

    def __init__(self, tmp: Path, tag: str = ""):
        self.name = f"cn-{os.getpid()}-{next(_ids)}{tag}"
        self.host = f"{self.name}-host"
        self.containers: list[str] = []
        self.data = tmp / self.name
        self.data.mkdir(parents=True, exist_ok=True)
        self._mk(self.host)
        run(["ip", "-n", self.host, "link", "set", "lo", "up"])

    def _mk(self, ns: str) -> None:
        made = run(["ip", "netns", "add", ns])
        if made.returncode != 0:
            raise RuntimeError(f"ip netns add {ns}: {made.stderr}")

    def container(self, i: int) -> str:
        while len(self.containers) <= i:
            ns = f"{self.name}-c{len(self.containers)}"
            self._mk(ns)
            self.containers.append(ns)
        return self.containers[i]

    def netns_path(self, i: int) -> str:
        return f"/var/run/netns/{self.container(i)}"

    def close(self) -> None:
        for ns in self.containers + [self.host]:
            run(["ip", "netns", "del", ns])
        shutil.rmtree(self.data, ignore_errors=True)

    # --- running a plugin ---------------------------------------------------------------
    def call(self, plugin: Path, command: str, conf: dict | str | None, *, cid: str = "ctr1",
             ctr: int | None = 0, ifname: str = "eth0", path: str | None = None,
             env: dict | None = None, drop: tuple[str, ...] = ()) -> tuple[int, str]:
        e = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname,
             "CNI_PATH": path if path is not None else str(plugin.parent)}
        if ctr is not None:
            e["CNI_NETNS"] = self.netns_path(ctr) if isinstance(ctr, int) else ctr
        e.update(env or {})
        for k in drop:
            e.pop(k, None)
        stdin = conf if isinstance(conf, str) else json.dumps(self.fix(conf)) if conf is not None else ""
        argv = ["ip", "netns", "exec", self.host, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        argv += [f"{k}={v}" for k, v in e.items()] + [str(plugin)]
        proc = run(argv, input=stdin)
        return proc.returncode, proc.stdout

    def fix(self, conf: dict) -> dict:
        """Point ipam.dataDir at this lab's data dir."""
        conf = json.loads(json.dumps(conf))
        ipam = conf.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            ipam["dataDir"] = str(self.data)
        return conf

    # --- state, read back with other tools ------------------------------------------------
    def ip_json(self, ns: str, *what: str) -> list:
        out = run(["ip", "-n", ns, "-d", "-json", *what])
        return json.loads(out.stdout or "[]")

    def state(self) -> dict:
        links = []
        for link in self.ip_json(self.host, "link", "show"):
            if link["ifname"] == "lo":
                continue
            kind = link.get("linkinfo", {}).get("info_kind", "")
            slave = link.get("linkinfo", {}).get("info_slave_data", {})
            links.append({"name": link["ifname"], "kind": kind, "mtu": link["mtu"],
                          "master": link.get("master"), "up": "UP" in link["flags"],
                          "promisc": link.get("promiscuity", 0) > (1 if link.get("master") else 0),
                          "hairpin": slave.get("hairpin"), "txqlen": link.get("txqlen")})
        addrs = {a["ifname"]: sorted(f"{x['local']}/{x['prefixlen']}" for x in a["addr_info"]
                                     if x.get("scope") == "global")
                 for a in self.ip_json(self.host, "addr", "show")}
        containers = {}
        for i, ns in enumerate(self.containers):
            c_links = [{"name": l["ifname"], "up": "UP" in l["flags"], "mtu": l["mtu"],
                        "kind": l.get("linkinfo", {}).get("info_kind", ""), "txqlen": l.get("txqlen")}
                       for l in self.ip_json(ns, "link", "show") if l["ifname"] != "lo"]
            c_addrs = {a["ifname"]: sorted(f"{x['local']}/{x['prefixlen']}" for x in a["addr_info"]
                                           if x.get("scope") == "global")
                       for a in self.ip_json(ns, "addr", "show") if a["ifname"] != "lo"}
            routes = sorted(f"{r['dst']} via {r.get('gateway', '-')} dev {r.get('dev')}"
                            for fam in ("-4", "-6")
                            for r in self.ip_json(ns, fam, "route", "show")
                            if not r["dst"].startswith(("fe80", "ff00", "multicast")))
            sysctls = run(["ip", "netns", "exec", ns, "sh", "-c",
                           "for f in /proc/sys/net/ipv4/conf/eth*/arp_notify "
                           "/proc/sys/net/ipv6/conf/eth*/accept_dad; do echo $f=$(cat $f); done"]).stdout
            containers[f"c{i}"] = {"links": c_links, "addrs": c_addrs, "routes": routes,
                                   "sysctls": sysctls.split()}
        return normalise({
            "links": sorted(links, key=lambda l: l["name"]), "addrs": addrs,
            "ip_forward": run(["ip", "netns", "exec", self.host, "sysctl", "-n",
                               "net.ipv4.ip_forward"]).stdout.strip(),
            "nat": self.nat(), "nat6": self.nat(6), "containers": containers, "data": self.data_dir(),
            "nft_bridge": run(["ip", "netns", "exec", self.host, "nft", "list", "table", "bridge",
                               "nat"]).stdout.split("\n"),
        })

    def nat(self, family: int = 4) -> list[str]:
        tool = "iptables-save" if family == 4 else "ip6tables-save"
        out = run(["ip", "netns", "exec", self.host, tool, "-t", "nat"]).stdout
        return sorted(l for l in out.splitlines() if l.startswith(("-A", ":CNI")))

    def data_dir(self) -> dict:
        out = {}
        for p in sorted(self.data.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(self.data))] = (p.read_text(errors="replace"),
                                                       oct(p.stat().st_mode & 0o777))
        return out


_VETH = re.compile(r"veth[0-9a-f]{8}")
_MAC = re.compile(r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b")
_NS = re.compile(r"cn-\d+-\d+[a-z]*-(c\d+|host)")


def normalise(obj):
    """Random names and MACs out: veth names by order of appearance, MACs by identity."""
    text = json.dumps(obj, sort_keys=True)
    veths: dict[str, str] = {}
    macs: dict[str, str] = {}
    text = _VETH.sub(lambda m: veths.setdefault(m.group(0), f"vethX{len(veths)}"), text)
    text = _MAC.sub(lambda m: macs.setdefault(m.group(0), f"MAC{len(macs)}"), text)
    text = _NS.sub(lambda m: f"NS-{m.group(1)}", text)
    return json.loads(text)


def normalise_output(text: str) -> str:
    """A plugin's stdout with veth names, random MACs and namespace names made stable.
    (A bridge without an address of its own takes its lowest port's MAC, so which
    random MACs are equal is random too; a MAC the test chose, 0a:58:…, stays.)"""
    veths: dict[str, str] = {}
    text = _VETH.sub(lambda m: veths.setdefault(m.group(0), f"vethX{len(veths)}"), text)
    text = _MAC.sub(lambda m: m.group(0) if m.group(0).startswith("0a:58") else "MAC", text)
    return _NS.sub(lambda m: f"NS-{m.group(1)}", text)
