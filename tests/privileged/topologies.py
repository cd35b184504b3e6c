"""Topologies the twin tests share, written as a learner types them."""

# red, blue, green on the host's bridge v-net-0 (192.168.15.0/24, the host is .5)
BRIDGE = """
    ip netns add red
    ip netns add blue
    ip netns add green
    ip link add v-net-0 type bridge
    ip link set dev v-net-0 up
    ip link add veth-red type veth peer name veth-red-br
    ip link add veth-blue type veth peer name veth-blue-br
    ip link add veth-green type veth peer name veth-green-br
    ip link set veth-red netns red
    ip link set veth-blue netns blue
    ip link set veth-green netns green
    ip link set veth-red-br master v-net-0
    ip link set veth-blue-br master v-net-0
    ip link set veth-green-br master v-net-0
    ip -n red addr add 192.168.15.1/24 dev veth-red
    ip -n blue addr add 192.168.15.2/24 dev veth-blue
    ip -n green addr add 192.168.15.3/24 dev veth-green
    ip -n red link set veth-red up
    ip -n blue link set veth-blue up
    ip -n green link set veth-green up
    ip link set veth-red-br up
    ip link set veth-blue-br up
    ip link set veth-green-br up
    ip addr add 192.168.15.5/24 dev v-net-0
    ip -n red link set lo up
    ip -n blue link set lo up
    ip -n green link set lo up
"""

# red (10.0.1.2) — router (10.0.1.1 | 10.0.2.1) — blue (10.0.2.2); red routes via the router
ROUTER = """
    ip netns add red
    ip netns add router
    ip netns add blue
    ip link add veth-red type veth peer name r-red
    ip link add veth-blue type veth peer name r-blue
    ip link set veth-red netns red
    ip link set r-red netns router
    ip link set veth-blue netns blue
    ip link set r-blue netns router
    ip -n red addr add 10.0.1.2/24 dev veth-red
    ip -n router addr add 10.0.1.1/24 dev r-red
    ip -n router addr add 10.0.2.1/24 dev r-blue
    ip -n blue addr add 10.0.2.2/24 dev veth-blue
    ip -n red link set veth-red up
    ip -n router link set r-red up
    ip -n router link set r-blue up
    ip -n blue link set veth-blue up
    ip -n red link set lo up
    ip -n router link set lo up
    ip -n blue link set lo up
    ip -n red route add default via 10.0.1.1
"""
BLUE_ROUTE_BACK = """
    ip -n blue route add default via 10.0.2.1
"""
