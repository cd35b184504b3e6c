"""The machines of a lab, as Ops: nodes booted, LAN switches, cables, addresses.

The same list goes to either backend; the steps' commands come after it.
"""

from __future__ import annotations

from netlab import ops as O
from netlab.labs.model import Lab
from netlab.model import World, ns_key


def topology_ops(lab: Lab) -> list[O.Op]:
    if lab.cluster is not None:
        from netlab.k8s.build import cluster_ops
        return cluster_ops(lab.cluster)
    ops: list[O.Op] = [O.AddNode(node) for node in lab.nodes]
    for lan in lab.lans:
        ops.append(O.AddSwitch(lan.name, lan.subnet))
        for member in lan.members:
            ops.append(O.AttachToSwitch(lan.name, member.node, member.dev))
            if member.address is not None:
                ip, prefix = member.address.split("/")
                ops.append(O.AddAddress(ns_key(member.node), member.dev, ip, int(prefix)))
    return ops


def build_model(lab: Lab):
    """A ModelBackend holding the lab's machines, before any step has run."""
    from netlab.backends.model import ModelBackend

    backend = ModelBackend(World(name=lab.name))
    for op in topology_ops(lab):
        backend.apply(op)
    for node in lab.nodes:                 # files are not kernel state: the model keeps them
        for path, content in lab.files.items():
            backend.apply(O.WriteFile(node, path, content))
    return backend
