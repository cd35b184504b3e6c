"""The kernel's packet path over a World: routing, ARP, bridges, veth, delivery.

    trace(world, "host/red", "192.168.15.2", proto="tcp", dport=80) -> Trace
    route_get(world, ns, "10.0.0.1", src=None, iif=None) -> RouteDecision

The dataplane reads the World and never changes it.
"""

from netlab.dataplane.routing import RouteDecision, local_addresses, route_get
from netlab.dataplane.engine import trace

__all__ = ["RouteDecision", "local_addresses", "route_get", "trace"]
