"""NetworkPolicy as iptables filter rules (see node_payload)."""

from __future__ import annotations


def node_payload(cluster, node: str) -> str:
    return ""
