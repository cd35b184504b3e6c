"""Netfilter: the iptables rule language (parse, print, restore), its match and
target units, and the view of a packet they work on.

    netlab.netfilter.types     PacketView, ConnView, Action  (the contract
                               between rule units and the dataplane)
    netlab.netfilter.rules     parse_rule(body) -> ParsedRule, format, registry
    netlab.netfilter.restore   iptables-restore payloads applied to tables; save
"""
