"""Record how the real iptables canonicalises (or refuses) rules.

Run as root on a machine with iptables (nf_tables): it creates a throwaway
namespace, appends each case of rule_cases.txt with ``iptables -t T -A CHAIN
...``, reads it back with ``iptables -t T -S CHAIN`` and writes
rule_cases.json next to this file: {"iptables": version, "cases": [{"table",
"chain", "args", "status", "stdout" (the -S line or ""), "stderr"}]}.

    python3 tests/data/iptables/record_rules.py
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
NETNS = "nlr-record"


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", NETNS, *argv], input=stdin,
                          capture_output=True, text=True)


def main() -> int:
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        run("ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port")
        run("ipset", "create", "S", "hash:net")
        cases = []
        for raw in (HERE / "rule_cases.txt").read_text().splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            table, chain, rest = (raw.split(" ", 2) + [""])[:3]
            args = shlex.split(rest)
            for user in ("MYCHAIN", "OTHER"):
                run("iptables", "-t", table, "-N", user)
            done = run("iptables", "-t", table, "-A", chain, *args)
            shown = ""
            if done.returncode == 0:
                lines = run("iptables", "-t", table, "-S", chain).stdout.splitlines()
                shown = lines[-1]
            cases.append({"table": table, "chain": chain, "args": rest,
                          "status": done.returncode, "stdout": shown, "stderr": done.stderr})
            for argv in (["-F"], ["-X"]):
                run("iptables", "-t", table, *argv)
        version = run("iptables", "--version").stdout.strip()
        out = {"iptables": version, "cases": cases}
        (HERE / "rule_cases.json").write_text(json.dumps(out, indent=1) + "\n")
        print(f"{len(cases)} cases recorded with {version}")
    finally:
        subprocess.run(["ip", "netns", "del", NETNS])
    return 0


if __name__ == "__main__":
    sys.exit(main())
