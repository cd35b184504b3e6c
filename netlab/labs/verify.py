"""The twin check: a lab on the model and on the kernel, step by step, probe by probe.

    result = verify_lab(lab)            # root only: builds the lab in namespaces, then removes it
    result.differences, result.rows     # one Row per probe; row.same

After each step the step's ``reach`` and ``trace`` expectations are probed on
both: the model traces the packet (netlab.dataplane), the kernel gets real
traffic (netlab.backends.probe). After the last step an automatic set follows:
every namespace of the lab to every address in it (ICMP echo), and TCP/UDP to
every declared listener port, capped at ``cap`` probes. A row compares the
outcome (success / refused / unreachable / timeout / error); for TCP and UDP
probes that succeed also the namespace that got it and the addresses its
listener saw (the packet after DNAT and SNAT). ICMP echo shows no listener, so
only its outcome is compared.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable

from netlab.errors import NetlabError
from netlab.labs.model import Lab, Reach, TraceExpect
from netlab.trace import SUCCESS, Trace

AUTO_CAP = 200
FIRST_SPORT = 42000


@dataclass
class Row:
    source: str
    to: str
    proto: str
    port: int | None
    origin: str                          # "step 3, line 41" or "auto"
    model: dict[str, Any]
    kernel: dict[str, Any]

    @property
    def same(self) -> bool:
        return same(self.proto, self.model, self.kernel)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.to, "proto": self.proto, "port": self.port,
                "origin": self.origin, "model": self.model, "kernel": self.kernel,
                "same": self.same}


@dataclass
class VerifyResult:
    lab: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # a command one side refused, etc.

    @property
    def differences(self) -> int:
        return sum(1 for r in self.rows if not r.same) + len(self.problems)

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "rows": [r.to_json() for r in self.rows],
                "differences": self.differences, "problems": self.problems,
                "notes": self.notes}


COMPARED = ("outcome", "delivered_to", "src", "dst")


def same(proto: str, model: dict[str, Any], kernel: dict[str, Any]) -> bool:
    outcomes = model.get("outcomes") or [model.get("outcome")]
    if kernel.get("outcome") not in outcomes:
        return False
    if proto == "icmp" or kernel.get("outcome") != SUCCESS or len(outcomes) > 1:
        return True
    got = [kernel.get(k) for k in COMPARED[1:]]
    if model.get("ends"):               # load-balanced: the kernel's pick is one of them
        return got in model["ends"]
    return all(model.get(k) == kernel.get(k) for k in COMPARED[1:])


def model_view(trace: Trace | None, error: str | None = None) -> dict[str, Any]:
    """What the model predicts: the outcome of its live paths, and for a TCP/UDP success
    the namespace and the addresses the listener sees (the packet after every NAT)."""
    if trace is None:
        return {"outcome": "error", "detail": error or "no trace"}
    from netlab.commands.probes import main_path
    from netlab.labs.expect import path_summary

    live = [p for p in trace.paths if p.probability > 0] or trace.paths
    outcomes = sorted({p.outcome for p in live})
    view: dict[str, Any] = {"outcome": outcomes[0] if len(outcomes) == 1 else "mixed",
                            "delivered_to": None, "src": None, "dst": None}
    if len(outcomes) > 1:
        view["outcomes"] = outcomes
    main = main_path(trace)
    if main is not None:
        view["detail"] = path_summary(main)
        if trace.packet.proto != "icmp" and main.outcome == SUCCESS and main.delivered_to:
            out = main.packet_out
            view.update(delivered_to=main.delivered_to, src=out.src, dst=f"{out.dst}:{out.dport}")
            ends = sorted({(p.delivered_to, p.packet_out.src,
                            f"{p.packet_out.dst}:{p.packet_out.dport}")
                           for p in live if p.outcome == SUCCESS and p.delivered_to},
                          key=str)
            if len(ends) > 1:           # a Service's endpoints: any of them is right
                view["ends"] = [list(e) for e in ends]
        elif trace.packet.proto == "icmp" and main.delivered_to:
            view["delivered_to"] = main.delivered_to     # shown; ping cannot tell, not compared
    return view


def verify_lab(lab: Lab, *, run_dir: str | None = None, name: str | None = None,
               cap: int = AUTO_CAP, on_row: Callable[[Row], None] | None = None,
               timeout: float | None = None) -> VerifyResult:
    """Run the lab on both backends and compare every probe. The namespaces are removed
    before this returns, also on an error or Ctrl-C. ``timeout``: how long a kernel
    probe waits (default: netlab.backends.probe's per protocol)."""
    from netlab.labs.kernel import KernelLab, down_lab
    from netlab.labs.runner import Runner

    runner = Runner(lab)
    kl = KernelLab(lab, run_dir, name)
    result = VerifyResult(lab=kl.name)
    sports = iter(range(FIRST_SPORT, 65000))
    try:
        try:
            kl.build_topology()
        except NetlabError:
            result.problems.append(f"the kernel refused the lab's machines: {kl.report.error}")
            return result
        for step in lab.steps:
            model_step = runner.run_step(step, check_expect=False)
            kernel_step = kl.run_step(step)
            if not _same_commands(step, model_step, kernel_step, result):
                return result
            probes = [e for e in step.expect if isinstance(e, (Reach, TraceExpect))]
            if probes:
                rows = _expectation_rows(lab, step, probes, runner, kl, sports, timeout)
                _add(result, rows, on_row)
        kl.finish("up")
        if cap > 0:
            _add(result, _auto_rows(runner.world, kl, sports, cap, result, timeout), on_row)
        return result
    finally:
        kl.close()
        down_lab(kl.name, kl.run_dir)


def _add(result: VerifyResult, rows: list[Row], on_row: Callable[[Row], None] | None) -> None:
    for row in rows:
        result.rows.append(row)
        if on_row is not None:
            on_row(row)


def _same_commands(step, model_step, kernel_step, result: VerifyResult) -> bool:  # type: ignore[no-untyped-def]
    """Both refused the same command lines (probes aside); False when a side stopped."""
    model_refused = {c.line: c for c in model_step.commands if not c.ok and not c.probed}
    kernel_refused = {c.line: c for c in kernel_step.commands if not c.ok and not c.probed}
    for line in sorted(set(model_refused) | set(kernel_refused)):
        m, k = model_refused.get(line), kernel_refused.get(line)
        if m is None or k is None:
            cmd = (m or k).cmd  # type: ignore[union-attr]
            result.problems.append(
                f"step {step.number}, line {line}: `{cmd}`: model "
                f"{'refuses: ' + str(m.error) if m else 'accepts'}; kernel "
                f"{'refuses: ' + str(k.error) if k else 'accepts'}")
    return model_step.stopped is None and kernel_step.stopped is None


def _expectation_rows(lab, step, exps, runner, kl, sports, timeout) -> list[Row]:  # type: ignore[no-untyped-def]
    from netlab.backends.probe import KernelProbe
    from netlab.labs.expect import check

    kl.settle()
    models, kernel_probes, where = [], [], []
    for exp in exps:
        res = check(exp, runner.world, step, lab.nodes[0])
        models.append(model_view(res.trace, res.detail))
        real = kl.real_of(exp.source, step.node)
        kernel_probes.append(None if real is None else KernelProbe(
            real, exp.to, exp.proto, exp.port,
            sport=next(sports) if exp.proto != "icmp" else None, timeout=timeout))
        where.append(f"step {step.number}, line {exp.line}")
    seen = _probe(kl, kernel_probes)
    return [Row(e.source, e.to, e.proto, e.port, w, m, s)
            for e, w, m, s in zip(exps, where, models, seen)]


def _probe(kl, probes) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    runnable = [p for p in probes if p is not None]
    seen = iter(kl.probe_all(runnable))
    out = []
    for p in probes:
        if p is None:
            out.append({"outcome": "error", "detail": "no such namespace on the kernel"})
            continue
        s = next(seen)
        view = s.to_json()
        view["delivered_to"] = kl.label_of(s.delivered_to)
        out.append(view)
    return out


def auto_probe_set(world) -> list[tuple[str, str, str, int | None]]:  # type: ignore[no-untyped-def]
    """(source key, address, proto, port): every namespace to every address of the lab
    (ICMP), and TCP/UDP to every declared listener port."""
    spaces = sorted((ns for ns in world.namespaces.values() if ns.kind != "switch"),
                    key=lambda ns: ns.key)
    addrs = sorted({a.ip for ns in spaces for link in ns.links.values() for a in link.addresses
                    if not ipaddress.IPv4Address(a.ip).is_loopback},
                   key=ipaddress.IPv4Address)
    ports = sorted({(l.proto, l.port) for ns in spaces for l in ns.listeners})
    out = []
    for ns in spaces:
        for addr in addrs:
            out.append((ns.key, addr, "icmp", None))
            out += [(ns.key, addr, proto, port) for proto, port in ports]
    return out


def _auto_rows(world, kl, sports, cap: int, result: VerifyResult,  # type: ignore[no-untyped-def]
               timeout: float | None) -> list[Row]:  # type: ignore[no-untyped-def]
    from netlab.backends.probe import KernelProbe
    from netlab.dataplane import trace

    wanted = auto_probe_set(world)
    if len(wanted) > cap:
        result.notes.append(f"automatic probes capped at {cap} of {len(wanted)}")
        step = len(wanted) / cap
        wanted = [wanted[int(i * step)] for i in range(cap)]
    if not wanted:
        return []
    kl.settle()
    models, probes, labels = [], [], []
    for key, addr, proto, port in wanted:
        try:
            t = trace(world, key, addr, proto=proto, dport=port, record=False)
            models.append(model_view(t))
        except NetlabError as exc:
            models.append(model_view(None, str(exc)))
        real = kl.linux.names.get(key)
        probes.append(None if real is None else KernelProbe(
            real, addr, proto, port, sport=next(sports) if proto != "icmp" else None,
            timeout=timeout))
        labels.append(world.namespaces[key].label)
    seen = _probe(kl, probes)
    return [Row(label, addr, proto, port, "auto", m, s)
            for (key, addr, proto, port), label, m, s in zip(wanted, labels, models, seen)]


def kernel_matrix(lab: Lab, pairs: list[tuple[str, str]], proto: str, port: int | None,
                  *, run_dir: str | None = None, name: str | None = None,
                  timeout: float | None = None) -> list[Any]:
    """Build the lab (a cluster's) on the kernel, send one probe for each (source
    namespace key, destination address) of ``pairs``, all at once, and
    remove the namespaces again (also on an error or Ctrl-C): the probes' Seen, in order.
    Raises NetlabError when the kernel refuses the lab's machines."""
    from netlab.backends.probe import KernelProbe
    from netlab.labs.kernel import KernelLab, down_lab

    kl = KernelLab(lab, run_dir, name)
    sports = iter(range(FIRST_SPORT, 65000))
    try:
        try:
            kl.build_topology()
        except NetlabError as exc:
            raise NetlabError(f"the kernel refused the cluster's machines: "
                              f"{kl.report.error or exc}") from None
        kl.finish("up")
        kl.settle()
        probes = []
        for key, addr in pairs:
            real = kl.linux.names.get(key)
            if real is None:
                raise NetlabError(f"{key} has no namespace on the kernel")
            probes.append(KernelProbe(real, addr, proto, port, timeout=timeout,
                                      sport=next(sports) if proto != "icmp" else None))
        return kl.probe_all(probes)
    finally:
        kl.close()
        down_lab(kl.name, kl.run_dir)
