"""Record what the real iptables-save prints after kube-proxy-style rules are restored.

Run as root: writes kube-proxy-input.txt (the payload as kube-proxy writes it,
from netlab.netfilter.kubeproxy, 60 Services) and kube-proxy-save.txt (what
``iptables-save`` prints after ``iptables-restore`` of it, in a throwaway
namespace; the "# Generated"/"# Completed" lines as printed).

    python3 tests/data/iptables/record_kube_proxy.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2]))
NETNS = "nlr-kubeproxy"


def main() -> int:
    from netlab.netfilter.kubeproxy import kube_proxy_dump

    payload = kube_proxy_dump(60, style="kube-proxy")
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", NETNS, "iptables-restore"], input=payload,
                       text=True, check=True)
        saved = subprocess.run(["ip", "netns", "exec", NETNS, "iptables-save"],
                               capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", NETNS])
    (HERE / "kube-proxy-input.txt").write_text(payload)
    (HERE / "kube-proxy-save.txt").write_text(saved)
    print(f"{payload.count(chr(10) + '-A ')} rules recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
