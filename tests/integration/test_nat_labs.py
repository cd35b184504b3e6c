"""Labs 05 and 06 through `netlab trace --json`: the NAT the lab text promises is in the trace.

A lab's `trace` expectation checks verdicts; these tests check the packets: the
source after MASQUERADE, the destination after DNAT, and the reply as the sender
receives it (un-NATed), for the same probes the labs explain.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app


def trace(lab: str, *args: str) -> dict:
    result = CliRunner().invoke(app, ["trace", lab, *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def only_path(data: dict) -> dict:
    assert len(data["paths"]) == 1, [p["verdict"] for p in data["paths"]]
    return data["paths"][0]


def netfilter(path: dict, table: str, chain: str) -> list[dict]:
    return [h for h in path["hops"] if h["event"] == "netfilter"
            and h.get("table") == table and h.get("chain") == chain]


# --- lab 05: MASQUERADE ---------------------------------------------------------------------

def test_lab05_before_masquerade_the_source_is_the_namespace():
    path = only_path(trace("05", "--from", "red", "--to", "192.168.1.3", "--after-step", "2"))
    assert path["verdict"] == "delivered" and path["delivered_to"] == "node2"
    assert path["packet_out"]["src"] == "192.168.15.1"
    assert path["reply"]["verdict"] == "no-route"


@pytest.mark.parametrize("args", [("--to", "192.168.1.3"),
                                  ("--to", "192.168.1.3:80", "--proto", "tcp")],
                         ids=["ping", "tcp"])
def test_lab05_masquerade_rewrites_the_source_and_the_reply_is_un_nated(args):
    path = only_path(trace("05", "--from", "red", *args))
    assert path["verdict"] == "delivered" and path["delivered_to"] == "node2"
    assert path["outcome"] == "success"
    assert path["packet_out"]["src"] == "192.168.1.2"          # eth0's address
    masq = netfilter(path, "nat", "POSTROUTING")
    assert any("MASQUERADE" in (h.get("rule") or "") for h in masq), path["hops"]
    reply = path["reply"]
    assert reply["verdict"] == "delivered" and reply["delivered_to"] == "host/red"
    assert reply["packet_out"]["dst"] == "192.168.15.1"         # undone by conntrack
    assert reply["packet_out"]["src"] == "192.168.1.3"


# --- lab 06: Docker's port mapping ------------------------------------------------------------

def test_lab06_dnat_in_prerouting_reaches_the_container():
    data = trace("06", "--from", "node2", "--to", "192.168.1.2:8080", "--proto", "tcp",
                 "--after-step", "3")
    path = only_path(data)
    assert path["verdict"] == "delivered" and path["delivered_to"] == "host/web"
    assert (path["packet_out"]["dst"], path["packet_out"]["dport"]) == ("172.17.0.2", 80)
    assert path["packet_out"]["src"] == "192.168.1.3"           # no SNAT on the way in
    dnat = netfilter(path, "nat", "DOCKER")
    assert any("--to-destination 172.17.0.2:80" in (h.get("rule") or "") for h in dnat)
    assert netfilter(path, "nat", "PREROUTING")
    accepted = netfilter(path, "filter", "DOCKER")
    assert accepted, path["hops"]
    reply = path["reply"]
    assert reply["verdict"] == "delivered" and reply["delivered_to"] == "node2"
    out = reply["packet_out"]
    assert (out["src"], out["sport"]) == ("192.168.1.2", 8080)  # un-DNATed for node2


def test_lab06_dnat_in_output_reroutes_the_hosts_own_connection():
    path = only_path(trace("06", "--from", "host", "--to", "192.168.1.2:8080", "--proto",
                           "tcp", "--after-step", "4"))
    assert path["verdict"] == "delivered" and path["delivered_to"] == "host/web"
    assert (path["packet_out"]["dst"], path["packet_out"]["dport"]) == ("172.17.0.2", 80)
    assert path["packet_out"]["src"] == "192.168.1.2"           # chosen before the DNAT
    assert netfilter(path, "nat", "OUTPUT")
    reply = path["reply"]
    assert reply["verdict"] == "delivered"
    assert (reply["packet_out"]["src"], reply["packet_out"]["sport"]) == ("192.168.1.2", 8080)


def test_lab06_the_container_goes_out_masqueraded():
    path = only_path(trace("06", "--from", "web", "--to", "192.168.1.3", "--after-step", "2"))
    assert path["delivered_to"] == "node2"
    assert path["packet_out"]["src"] == "192.168.1.2"
    assert path["reply"]["packet_out"]["dst"] == "172.17.0.2"


def test_lab06_unpublished_port_meets_the_forward_policy():
    path = only_path(trace("06", "--from", "node2", "--to", "172.17.0.2:22", "--proto", "tcp"))
    assert path["verdict"] == "dropped"
    policy = netfilter(path, "filter", "FORWARD")
    assert policy and "DROP" in (policy[-1].get("rule") or policy[-1]["detail"])
