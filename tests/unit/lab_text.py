"""Lab text the loader, runner and CLI tests share."""

HEAD = "netlab: 1\nname: t\ntitle: T\n"

# one step: red and blue joined by a veth pair, both ends up
VETH_STEP = """\
  - title: a veth pair
    run: |
      ip netns add red
      ip netns add blue
      ip link add veth-red type veth peer name veth-blue
      ip link set veth-red netns red
      ip link set veth-blue netns blue
      ip -n red addr add 192.168.15.1/24 dev veth-red
      ip -n blue addr add 192.168.15.2/24 dev veth-blue
      ip -n red link set veth-red up
      ip -n blue link set veth-blue up
"""
