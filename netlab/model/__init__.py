"""The virtual state: pure data, no I/O, JSON round-trip."""

from netlab.model.world import (
    ROOT, Address, Lan, Link, Listener, Neighbour, Netns, Route, World, ns_key, split_key,
)

__all__ = ["ROOT", "Address", "Lan", "Link", "Listener", "Neighbour", "Netns", "Route",
           "World", "ns_key", "split_key"]
