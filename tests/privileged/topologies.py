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
