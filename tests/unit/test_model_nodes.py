"""Nodes and switches: what AddNode and AttachToSwitch refuse (found without scanning the
node list)."""

from __future__ import annotations

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.errors import CommandError
from netlab.model import World


def world() -> ModelBackend:
    b = ModelBackend(World())
    b.apply(O.AddSwitch("lan", "10.0.0.0/24"))
    for n in ("n1", "n2"):
        b.apply(O.AddNode(n))
    b.apply(O.AttachToSwitch("lan", "n1", "eth0"))
    return b


@pytest.mark.parametrize("op, message", [
    (O.AddNode("n1"), "node n1 exists already"),
    (O.AttachToSwitch("lan", "n9", "eth0"), "no node called n9"),
    (O.AttachToSwitch("lan", "lan", "eth0"), "no node called lan"),     # a switch is no node
    (O.AttachToSwitch("lan", "n1", "eth1"), "n1 is on lan already"),
    (O.AttachToSwitch("wan", "n2", "eth0"), "no switch called wan"),
])
def test_refused(op, message):
    b = world()
    before = b.world.to_json()
    with pytest.raises(CommandError, match=message):
        b.apply(op)
    assert b.world.to_json() == before


def test_a_node_from_json_is_attached():
    b = world()
    again = ModelBackend(World.from_json(b.world.to_json()))
    again.apply(O.AttachToSwitch("lan", "n2", "eth0"))
    assert again.world.lans[0].members == {"n1": "eth0", "n2": "eth0"}
