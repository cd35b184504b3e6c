"""ipMasq: the reference's ``CNI-<hash>`` nat chain, as iptables-restore text.

The rules are the ones containernetworking/plugins 1.1.1 makes (section 8 of
CNI_NOTES.md), written in iptables-save's own form so that the lines already
present can be recognised in ``iptables-save -t nat`` output. The reference
runs five to eight iptables processes per address; here it is one save and
one ``iptables-restore --noflush`` (atomic), on a kernel or on a World.

Teardown keeps the chain while another POSTROUTING rule (another interface
of the same container) still jumps to it, unlike the reference.
"""

from __future__ import annotations

from netlab.cni.ip import Net


def chain_name(network: str, container_id: str) -> str:
    try:                           # the C module alone; hashlib's import costs milliseconds
        from _sha512 import sha512
    except ImportError:
        try:
            from _sha2 import sha512
        except ImportError:
            from hashlib import sha512
    return "CNI-" + sha512((network + container_id).encode()).hexdigest()[:24]


def comment(network: str, container_id: str) -> str:
    return f'name: "{network}" id: "{container_id}"'


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _host(net: Net) -> str:
    return f"{net.ip}/{net.bits}"


def rules(net: Net, chain: str, note: str) -> list[str]:
    """The three rules for one address, in iptables-save form."""
    c = "-m comment --comment " + quoted(note)
    multicast = "224.0.0.0/4" if net.bits == 32 else "ff00::/8"
    return [f"-A {chain} -d {net.network}/{net.prefixlen} {c} -j ACCEPT",
            f"-A {chain} ! -d {multicast} {c} -j MASQUERADE",
            f"-A POSTROUTING -s {_host(net)} {c} -j {chain}"]


def parse_save(text: str) -> tuple[set[str], list[str]]:
    """(chains, rule lines) of the nat table in iptables-save output."""
    chains, lines, in_nat = set(), [], False
    for line in text.splitlines():
        if line.startswith("*"):
            in_nat = line == "*nat"
        elif in_nat and line.startswith(":"):
            chains.add(line[1:].split(" ", 1)[0])
        elif in_nat and line.startswith("-A "):
            lines.append(line)
    return chains, lines


def setup_payload(save: str, net: Net, chain: str, note: str) -> str | None:
    chains, lines = parse_save(save)
    have = set(lines)
    out = [] if chain in chains else [f":{chain} - [0:0]"]
    out += [r for r in rules(net, chain, note) if r not in have]
    return "*nat\n" + "\n".join(out) + "\nCOMMIT\n" if out else None


def teardown_payload(save: str, nets: list[Net], chain: str, note: str, whole: bool) -> str | None:
    """Delete this container's POSTROUTING jumps (for ``nets``, or all with ``whole``),
    then the chain itself once nothing jumps to it any more."""
    chains, lines = parse_save(save)
    c = "-m comment --comment " + quoted(note)
    jumps = [line for line in lines if line.startswith("-A POSTROUTING ") and line.endswith(f" -j {chain}")]
    if whole:
        doomed = jumps
    else:
        wanted = set()
        for net in nets:
            wanted.add(f"-A POSTROUTING -s {_host(net)} {c} -j {chain}")
            wanted.add(f"-A POSTROUTING -s {net.network}/{net.prefixlen} {c} -j {chain}")  # legacy form
        doomed = [line for line in jumps if line in wanted]
    out = ["-D" + line[2:] for line in doomed]
    if chain in chains and len(doomed) == len(jumps):
        out += [f"-F {chain}", f"-X {chain}"]
    elif chain in chains:
        # the chain stays for another interface: drop only the ACCEPT of a subnet
        # no remaining address is in
        from netlab.cni.ip import parse_cidr
        left = [parse_cidr(line.split(" -s ", 1)[1].split(" ", 1)[0])
                for line in jumps if line not in doomed and " -s " in line]
        gone = [n.ip for n in nets]
        for line in lines:
            if not (line.startswith(f"-A {chain} -d ") and line.endswith(" -j ACCEPT")):
                continue
            dst = parse_cidr(line.split(" -d ", 1)[1].split(" ", 1)[0])
            if dst is not None and any(dst.contains(ip) for ip in gone) and \
                    not any(s is not None and dst.contains(s.ip) for s in left):
                out.append("-D" + line[2:])
    return "*nat\n" + "\n".join(out) + "\nCOMMIT\n" if out else None


def stale_nets(save: str, chain: str, live: set[str]) -> list[Net]:
    """The sources of this chain's POSTROUTING jumps that no interface holds any more."""
    from netlab.cni.ip import parse_cidr
    _, lines = parse_save(save)
    out = []
    for line in lines:
        if line.startswith("-A POSTROUTING -s ") and line.endswith(f" -j {chain}"):
            net = parse_cidr(line.split(" -s ", 1)[1].split(" ", 1)[0])
            if net is not None and str(net.ip) not in live:
                out.append(net)
    return out


class KernelIptables:
    """Runs iptables-save / iptables-restore (or the ip6tables pair) in the current netns."""

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        from netlab.cni.proc import run
        rc, out, err = run(argv, (stdin or "").encode())
        if rc != 0 and stdin is not None:
            from netlab.cni.errors import internal
            raise internal(f"running [{' '.join(argv)}]: exit status {rc}: "
                           f"{err.decode(errors='replace').strip()}")
        return out.decode(errors="replace") if rc == 0 else ""

    def save(self, bits: int) -> str:
        return self._run(["iptables-save" if bits == 32 else "ip6tables-save", "-t", "nat"])

    def restore(self, bits: int, payload: str) -> None:
        self._run(["iptables-restore" if bits == 32 else "ip6tables-restore", "--noflush", "-w"],
                  payload)


def setup(ipt, net: Net, chain: str, note: str) -> None:
    payload = setup_payload(ipt.save(net.bits), net, chain, note)
    if payload:
        ipt.restore(net.bits, payload)


def teardown_stale(ipt, live: set[str], chain: str, note: str) -> None:
    """DEL of an interface that is already gone: drop the jumps of addresses no
    interface of the container holds (another interface's stay)."""
    for bits in (32, 128):
        save = ipt.save(bits)
        nets = stale_nets(save, chain, live)
        if nets:
            payload = teardown_payload(save, nets, chain, note, False)
            if payload:
                ipt.restore(bits, payload)


def teardown(ipt, nets: list[Net], chain: str, note: str, whole: bool) -> None:
    families = (32, 128) if whole else sorted({n.bits for n in nets})
    for bits in families:
        mine = [n for n in nets if n.bits == bits]
        payload = teardown_payload(ipt.save(bits), mine, chain, note, whole)
        if payload:
            ipt.restore(bits, payload)


def gc_payload(save: str, network: str, keep: set[str]) -> str | None:
    """GC: every CNI- chain of ``network`` (known by its comment) not in ``keep`` goes."""
    chains, lines = parse_save(save)
    marker = "--comment " + quoted(f'name: "{network}" id: ')[:-1]
    doomed = {line.split(" ", 2)[1] for line in lines
              if marker in line and line.split(" ", 2)[1].startswith("CNI-")}
    doomed = {c for c in doomed if c in chains and c not in keep}
    out = ["-D" + line[2:] for line in lines if line.startswith("-A POSTROUTING ")
           and line.rsplit(" -j ", 1)[-1] in doomed]
    for chain in sorted(doomed):
        out += [f"-F {chain}", f"-X {chain}"]
    return "*nat\n" + "\n".join(out) + "\nCOMMIT\n" if out else None


def gc(ipt, network: str, keep: set[str]) -> None:
    for bits in (32, 128):
        payload = gc_payload(ipt.save(bits), network, keep)
        if payload:
            ipt.restore(bits, payload)
