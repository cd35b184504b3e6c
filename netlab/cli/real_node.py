"""One node of a multi-node lab on this machine: `netlab real up LAB --node NAME --lan-iface IFACE`.

    netlab real up cluster.yaml --node node1 --lan-iface eth1     # on VM 1
    netlab real up cluster.yaml --node node2 --lan-iface eth1     # on VM 2
    netlab real down cluster.yaml --node node1

Only NAME's namespaces are built here (``nl-LAB-NAME``, ``nl-LAB-NAME-POD``), and
only the steps that run on NAME. The lab's LAN is not a switch namespace: the
node's ``eth0`` (``eth<i>`` on its i-th LAN) is a macvlan (bridge mode) whose lower
device is IFACE, this machine's interface on the real network between the machines.
It is created directly inside the node's namespace (``ip link add link IFACE name
eth0 netns nl-LAB-NAME type macvlan mode bridge``), so nothing appears in this
machine's own namespace; IFACE keeps its addresses and routes, and only gains the
macvlan's MAC address in its filter (a veth or a VM's NIC is put in promiscuous mode
for it). Frames between the nodes' macvlans cross the real LAN, so the other nodes
may be other VMs, or namespaces joined by a veth pair (the privileged test).

A cluster lab (``cluster:``) is split the same way: of the cluster's Ops (netlab.k8s.build)
only those of NAME are applied here: its root namespace, its pods, its host-gw routes or
VXLAN device, neighbours and FDB, its kube-proxy and NetworkPolicy rules, its listeners.
Every node is on the cluster's one LAN, so a bare ``--lan-iface IFACE`` is enough.

The journal is per node, ``RUN_DIR/LAB@NAME.json``: `down LAB --node NAME` (or `down
LAB@NAME`) removes exactly this node's part; the macvlan goes with the node's namespace.

The lab's show commands and probe commands (ping, nc -z) are listed, not run; `nc -l`
is a real listener where LinuxBackend starts them, else it is counted as skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from netlab.cli.real import KernelFirst, UpReport, real_lab_name
from netlab.errors import LabError, NetlabError

MACVLAN_MODE = "bridge"
RUN_DIR_ENV = "NETLAB_RUN_DIR"          # the journal directory, instead of /run/netlab
NOT_RUN_KINDS = ("show", "probe")


def node_journal_name(lab: str, node: str) -> str:
    """The journal (and `down`) name of one node of a lab: ``LAB@NODE``."""
    return f"{lab}@{node}"


@dataclass
class NodeUpReport(UpReport):
    node: str = ""
    lan_ifaces: dict[str, str] = field(default_factory=dict)    # LAN name -> IFACE
    steps_elsewhere: list[int] = field(default_factory=list)    # steps of other nodes

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()                  # self.lab is LAB@NODE, as `down` takes it
        data.update(lab=self.lab.rsplit("@", 1)[0], node=self.node, lan_ifaces=self.lan_ifaces,
                    steps_elsewhere=self.steps_elsewhere)
        return data


def lan_mapping(lab, node: str, specs: Sequence[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """``--lan-iface`` values (``IFACE`` or ``LAN=IFACE``) as {LAN name: IFACE} for every
    LAN ``node`` is on; LabError naming what is missing or wrong."""
    if node not in lab.nodes:
        raise LabError(f"{lab.path}: lab {lab.name} has no node '{node}' "
                       f"(its nodes: {', '.join(lab.nodes)})")
    lans = _lans_of(lab, node)
    mapping: dict[str, str] = {}
    for spec in specs:
        lan, sep, iface = spec.rpartition("=")
        if not sep:
            if len(lans) != 1:
                raise LabError(f"--lan-iface {spec}: {node} is on {len(lans)} LANs "
                               f"({', '.join(lans) or 'none'}); say which: "
                               f"--lan-iface LAN=IFACE")
            lan = lans[0]
        if lan not in lans:
            raise LabError(f"--lan-iface {spec}: {node} is not on a LAN called '{lan}' "
                           f"(its LANs: {', '.join(lans) or 'none'})")
        if not iface or lan in mapping:
            raise LabError(f"--lan-iface {spec}: expected IFACE or LAN=IFACE, one per LAN")
        mapping[lan] = iface
    missing = [lan for lan in lans if lan not in mapping]
    if missing:
        raise LabError(f"{node} is on the LAN {missing[0]}: give --lan-iface IFACE, this "
                       f"machine's interface on the network to the other nodes")
    return mapping


def _lans_of(lab, node: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The LANs ``node`` is on: a cluster's nodes are all on its one LAN."""
    if lab.cluster is not None:
        from netlab.k8s.build import LAN

        return [LAN]
    return [lan.name for lan in lab.lans if any(m.node == node for m in lan.members)]


def op_node(op) -> str | None:  # type: ignore[no-untyped-def]
    """The node an Op changes (its ``node``, or the node of its namespace key); None for
    an Op of no node (a LAN switch)."""
    from netlab.model import split_key

    node = getattr(op, "node", None)
    if node is None and getattr(op, "netns", None) is not None:
        node = split_key(op.netns)[0]
    for other in ("peer_netns", "to_netns"):
        key = getattr(op, other, None)
        if key is not None and split_key(key)[0] != node:
            raise LabError(f"real_node: {type(op).__name__} joins two nodes "
                           f"({node} and {split_key(key)[0]}): not one machine's part")
    return node


def up_node(lab, node: str, lan_iface: Sequence[str],  # type: ignore[no-untyped-def]
            run_dir: str | None = None, name: str | None = None) -> NodeUpReport:
    """Build ``node``'s part of the lab on this kernel (see the module's docstring).
    Like `up_lab`, the journal stays on disk whatever happens, so `down` can clean."""
    from netlab.backends.journal import RUN_DIR, Journal
    from netlab.backends.linux import LinuxBackend
    from netlab.backends.model import ModelBackend
    from netlab.model import World

    mapping = lan_mapping(lab, node, lan_iface)
    lowers = {lan: (iface, _lower_index(iface)) for lan, iface in mapping.items()}
    name = name or real_lab_name(lab)
    run_dir = run_dir or os.environ.get(RUN_DIR_ENV) or RUN_DIR
    journal = Journal.open_new(node_journal_name(name, node), run_dir)
    report = NodeUpReport(lab=node_journal_name(name, node), node=node, lan_ifaces=mapping)
    linux = LinuxBackend(name, journal)
    twin = KernelFirst(ModelBackend(World(name=lab.name)), linux)
    try:
        if _build_machine(lab, node, lowers, twin, report):
            _run_steps(lab, node, twin, report)
        journal.set_state("failed" if report.error else "up")
        return report
    finally:
        report.names = linux.names
        _count_listeners(report, twin, linux)
        linux.close()


def _count_listeners(report: NodeUpReport, twin, linux) -> None:  # type: ignore[no-untyped-def]
    """Whichever the report counts: listeners started, or listeners skipped."""
    if hasattr(report, "listeners"):
        report.listeners = len(getattr(linux, "listeners", ()))
    if hasattr(report, "listeners_skipped"):
        report.listeners_skipped = getattr(twin, "listeners_skipped", 0)


# --- the parts -------------------------------------------------------------------------------

def _lower_index(iface: str) -> int:
    """IFACE's ifindex in this machine's namespace; LabError when it is not there."""
    import socket

    try:
        return socket.if_nametoindex(iface)
    except OSError:
        known = ", ".join(name for _i, name in socket.if_nameindex())
        raise LabError(f"--lan-iface {iface}: this machine has no interface {iface} "
                       f"(it has: {known})") from None


def _build_machine(lab, node: str, lowers: dict[str, tuple[str, int]], twin: KernelFirst,  # type: ignore[no-untyped-def]
                   report: NodeUpReport) -> bool:
    """The node booted and its LAN interfaces: the model gets the lab's switches as
    usual (so commands that check the LAN's addresses see them); the kernel gets a
    macvlan on the real interface instead. False (report.error set) on a refusal."""
    from netlab import ops as O
    from netlab.commands.shell import one_line
    from netlab.labs.build import topology_ops
    from netlab.model import ns_key

    mine = ns_key(node)
    files = [O.WriteFile(node, path, content) for path, content in lab.files.items()]
    for op in topology_ops(lab) + files:      # a cluster's: every node's pods, routes, rules
        try:
            if isinstance(op, O.AddSwitch):
                if op.name in lowers:
                    twin.model.apply(op)
            elif isinstance(op, O.AttachToSwitch):
                if op.node == node:
                    _add_macvlan(twin.linux, mine, op.dev, *lowers[op.switch])
                    twin.model.apply(op)
            elif op_node(op) is None:
                raise LabError(f"real_node: {type(op).__name__} belongs to no node")
            elif op_node(op) == node:
                twin.apply(op)
        except NetlabError as exc:
            report.error = f"{lab.where(None)}: {type(op).__name__}: {one_line(exc)}"
            return False
    return True


def _add_macvlan(linux, key: str, dev: str, iface: str, lower: int) -> None:  # type: ignore[no-untyped-def]
    """`ip link add link IFACE name DEV netns NODE type macvlan mode bridge; ip -n NODE
    link set DEV up`: made in the node's namespace at once, never in this one."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from netlab import ops as O
    from netlab.backends.linux import NETNS_DIR
    from netlab.errors import CommandError

    fd = os.open(os.path.join(NETNS_DIR, linux.real_name(key)), os.O_RDONLY)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=dev, kind="macvlan", link=lower,
                     macvlan_mode=MACVLAN_MODE, net_ns_fd=fd)
    except NetlinkError as exc:
        raise CommandError(f"ip link add link {iface} name {dev} type macvlan: "
                           f"{exc.args[1] if len(exc.args) > 1 else exc}", status=2) from None
    finally:
        os.close(fd)
    linux.apply(O.SetLinkUp(key, dev, True))
    short_arp_retry = getattr(linux, "_short_arp_retry", None)   # as for the links it makes
    if short_arp_retry is not None:
        short_arp_retry(key, dev)


def _run_steps(lab, node: str, twin: KernelFirst, report: NodeUpReport) -> None:  # type: ignore[no-untyped-def]
    """This node's steps, as `up_lab` runs a lab's; the others' are listed, not run."""
    from netlab.commands.shell import one_line, script_commands

    for step in lab.steps:
        if step.node != node:
            report.steps_elsewhere.append(step.number)
            continue
        for command in step.commands:
            where = lab.where(command.line)
            for _offset, text, stdin in script_commands(command.text):
                try:
                    report.applied += _run_line(twin, text, step.node, stdin, report)
                except NetlabError as exc:
                    report.error = f"{where}: {text}: {one_line(exc)}"
                    if step.on_error != "continue":
                        return


def _run_line(twin: KernelFirst, text: str, node: str, stdin: str | None,
              report: NodeUpReport) -> int:
    """One command line: its Ops to the kernel, then the model; show and probe lines are
    listed in ``report.skipped``. The number of Ops applied."""
    from netlab.commands.shell import parse

    command = parse(text, node=node, stdin=stdin)
    if command.kind in NOT_RUN_KINDS or (command.query is not None and not command.ops
                                         and command.plan is None):
        report.skipped.append(text)
        return 0
    world = twin.world
    if command.netns not in world.namespaces:
        from netlab.commands.base import netns_missing
        from netlab.model import split_key

        raise netns_missing(split_key(command.netns)[1])
    for check in command.checks:
        check(world)
    ops = list(command.ops)
    if command.plan is not None:
        ops += command.plan(world)
    twin.apply_all(ops)
    return len(ops)
