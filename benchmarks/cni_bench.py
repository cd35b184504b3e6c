"""CNI plugin latency: median ADD and DEL of our bridge + host-local against the
reference (containernetworking-plugins 1.1.1 in /usr/lib/cni), same configs,
same run, fresh container namespaces, interleaved (and alternating who goes first)
so load affects both alike.
Root only; everything lives in namespaces this script creates (cn-bench-*) and
removes. The benchmark process itself enters the host namespace, so the figure
is the plugin's own time (no `ip netns exec` in between).

    sudo python benchmarks/cni_bench.py [--runs 30]

Prints one JSON object per figure (DESIGN.md, "Benchmarks"); target: ours
at most 2x the reference on each config.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from netlab.cni.netlink import setns  # noqa: E402

IMPLS = {"ours": REPO / "cni_plugins", "reference": Path("/usr/lib/cni")}


def conf(masq: bool, data: str) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni0",
                       "isGateway": True, "ipMasq": masq,
                       "ipam": {"type": "host-local", "subnet": "10.88.0.0/16", "dataDir": data,
                                "routes": [{"dst": "0.0.0.0/0"}]}}).encode()


def call(impl: str, command: str, stdin: bytes, cid: str, netns: str) -> float:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": str(IMPLS[impl])}
    start = time.perf_counter()
    proc = subprocess.run([str(IMPLS[impl] / "bridge")], input=stdin, env=env, capture_output=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{impl} {command} failed: {proc.stdout.decode()}")
    return took * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    opts = parser.parse_args()
    if os.geteuid() != 0 or not (IMPLS["reference"] / "bridge").exists():
        raise SystemExit("cni_bench: needs root and containernetworking-plugins (/usr/lib/cni)")
    root_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    tmp = tempfile.mkdtemp(prefix="cn-bench-")
    made: list[str] = []
    times: dict[tuple[str, bool, str], list[float]] = {}
    try:
        for masq in (False, True):
            hosts = {}
            for impl in IMPLS:
                host = f"cn-bench-{os.getpid()}-{impl}-{int(masq)}"
                subprocess.run(["ip", "netns", "add", host], check=True)
                made.append(host)
                hosts[impl] = (host, os.open(f"/var/run/netns/{host}", os.O_RDONLY))
            # All container namespaces exist before the first call and go after the last:
            # deleting a namespace is finished by the kernel asynchronously (under the
            # rtnl lock), which would slow down whichever plugin runs next.
            ctrs = {}
            for run in range(opts.runs + 1):
                for impl in IMPLS:
                    ctr = f"cn-bench-{os.getpid()}-c{run}-{impl}-{int(masq)}"
                    subprocess.run(["ip", "netns", "add", ctr], check=True)
                    made.append(ctr)
                    ctrs[(run, impl)] = ctr
            for run in range(opts.runs + 1):          # run 0 creates the bridge: not counted
                order = list(IMPLS) if run % 2 else list(IMPLS)[::-1]   # alternate who goes first
                for impl in order:
                    host, fd = hosts[impl]
                    ctr = ctrs[(run, impl)]
                    stdin = conf(masq, f"{tmp}/{impl}")
                    setns(fd)
                    try:
                        add = call(impl, "ADD", stdin, f"c{run}", f"/var/run/netns/{ctr}")
                        dele = call(impl, "DEL", stdin, f"c{run}", f"/var/run/netns/{ctr}")
                    finally:
                        setns(root_fd)
                    if run:
                        times.setdefault((impl, masq, "add"), []).append(add)
                        times.setdefault((impl, masq, "del"), []).append(dele)
    finally:
        setns(root_fd)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(tmp, ignore_errors=True)
    for masq in (False, True):
        for verb in ("add", "del"):
            ours = statistics.median(times[("ours", masq, verb)])
            ref = statistics.median(times[("reference", masq, verb)])
            label = "masq" if masq else "nomasq"
            print(json.dumps({"figure": f"cni_{verb}_{label}_p50_ms", "value": round(ours, 2),
                              "unit": "ms", "target": round(2 * ref, 2),
                              "baseline": f"reference bridge+host-local 1.1.1: {ref:.2f} ms",
                              "ratio": round(ours / ref, 2), "runs": opts.runs}))


if __name__ == "__main__":
    main()
