"""The rules kube-proxy writes by the hundred thousand in a large cluster are written
directly; they are what ``Rule`` renders for the same rule, in both spellings."""

from __future__ import annotations

import base64
import random

import pytest

from netlab.k8s import kubeproxy as K


def rule_sep_lines(style: str, sep: str, ep: K.EndpointInfo, proto: str) -> list[str]:
    masq = K.Rule(sep).src(ep.ip).jump("KUBE-MARK-MASQ")
    dnat = K.Rule(sep).proto_port(proto).jump("DNAT", f"--to-destination {ep}")
    return [masq.render(style), dnat.render(style)]


def rule_svc_line(style: str, chain: str, sep: str, n_left: int | None) -> str:
    rule = K.Rule(chain)
    if n_left is not None:
        rule.match(f"-m statistic --mode random --probability {K.probability(n_left)}",
                   f"-m statistic --mode random --probability {K._saved_probability(n_left)}")
    return rule.jump(sep).render(style)


@pytest.mark.parametrize("style", ["kube-proxy", "save"])
def test_endpoint_chain_lines_are_the_rules_rendered(style):
    rng = random.Random(1)
    for _ in range(200):
        ip = ".".join(str(rng.randrange(256)) for _ in range(4))
        ep = K.EndpointInfo(ip, rng.randrange(1, 65536), "node1")
        proto = rng.choice(["tcp", "udp"])
        sep = K.sep_chain("ns/svc:http", proto, str(ep))
        assert [f"-A {sep} {column[0]}" for column in K._sep_columns(style, [ep], proto)] == \
            rule_sep_lines(style, sep, ep, proto)


@pytest.mark.parametrize("style", ["kube-proxy", "save"])
def test_service_chain_jumps_are_the_rules_rendered(style):
    chain, sep = K.svc_chain("ns/svc:http", "tcp"), K.sep_chain("ns/svc:http", "tcp", "1.2.3.4:80")
    for n_left in [None, 2, 3, 7, 15, 999]:
        text = None if n_left is None else (
            K.probability(n_left) if style == "kube-proxy" else K._saved_probability(n_left))
        assert f"-A {chain} {K._svc_body(sep, text)}" == rule_svc_line(style, chain, sep, n_left)


def test_chain_name_digits_are_base32():
    rng = random.Random(2)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(10))
        assert K.b32_80(data) == base64.b32encode(data).decode()
    # kube-proxy's own: servicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.1:80")
    assert K.sep_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80").startswith("KUBE-SEP-")
    assert len(K.svc_chain("ns1/svc1:p80", "tcp")) == len("KUBE-SVC-") + 16
