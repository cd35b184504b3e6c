"""The parsed rule the dataplane evaluates: ParsedRule, builtin_matches, MatchCall.evaluate,
TargetCall.apply — what each match and target does to a packet, as the kernel module does."""

from __future__ import annotations

import pytest

from netlab.errors import CommandError
from netlab.netfilter.rules import Option, builtin_matches, parse_rule
from netlab.netfilter.types import Action, ConnView, PacketView
from netlab.trace import Packet


def view(proto="tcp", src="10.244.1.2", dst="10.96.0.10", sport=40000, dport=80, **kw):
    fields = {k: kw.pop(k) for k in ("icmp_type", "icmp_code", "tcp_flags") if k in kw}
    return PacketView(Packet(proto, src, dst, sport, dport, **fields), kw.pop("table", "filter"),
                      kw.pop("hook", "INPUT"), **kw)


def hits(body: str, v: PacketView):
    """builtin matches and every match of the rule; a probability when one says so."""
    rule = parse_rule(body)
    if not builtin_matches(rule, v):
        return False
    result = True
    for m in rule.matches:
        r = m.evaluate(v)
        if r is False:
            return False
        if r is not True:
            result = r
    return result


# --- the parsed form -----------------------------------------------------------------------------

def test_parsed_rule_fields():
    rule = parse_rule('! -s 10.244.0.0/16 -d 10.96.0.10/32 -i eth+ -p udp -m comment --comment '
                      '"kube-system/kube-dns:dns cluster IP" -m udp --dport 53 '
                      '-j KUBE-SVC-TCOU7JCQXEZGVUNU')
    assert (rule.src, rule.src_neg) == ((0x0AF40000, 16), True)
    assert rule.dst == (0x0A60000A, 32) and not rule.dst_neg
    assert (rule.proto, rule.in_iface, rule.out_iface) == ("udp", "eth+", None)
    assert [m.module for m in rule.matches] == ["comment", "udp"]
    assert rule.matches[1].options == (Option("dport", "53", False),)
    assert rule.match_options("udp") == {"dport": ("53", False)}
    assert rule.match_options("comment") == {
        "comment": ("kube-system/kube-dns:dns cluster IP", False)}
    assert rule.target.name == "KUBE-SVC-TCOU7JCQXEZGVUNU" and rule.target.is_chain
    assert rule.target.apply(view()) == Action("jump", chain="KUBE-SVC-TCOU7JCQXEZGVUNU")


def test_goto_and_no_target():
    assert parse_rule("-g KUBE-SEP-X").target.apply(view()) == Action("goto", chain="KUBE-SEP-X")
    assert parse_rule("-g KUBE-SEP-X").goto
    assert parse_rule("-s 1.2.3.4/32").target is None


def test_parse_rule_is_cached_and_refuses_junk():
    assert parse_rule("-j ACCEPT") is parse_rule("-j ACCEPT")
    with pytest.raises(CommandError):
        parse_rule("-m nosuchmatch -j ACCEPT")


def test_non_prefix_masks_keep_the_mask():
    rule = parse_rule("-s 10.0.0.0/255.0.255.0 -j ACCEPT")
    assert rule.src_mask == 0xFF00FF00
    assert hits("-s 10.0.0.0/255.0.255.0", view(src="10.9.0.9"))
    assert not hits("-s 10.0.0.0/255.0.255.0", view(src="10.0.1.9"))


# --- built-in matches ------------------------------------------------------------------------------

@pytest.mark.parametrize("body,packet,expected", [
    ("-s 10.244.0.0/16", {}, True), ("! -s 10.244.0.0/16", {}, False),
    ("-d 10.96.0.10/32", {}, True), ("-d 10.96.0.11/32", {}, False),
    ("-p tcp", {}, True), ("-p udp", {}, False), ("! -p udp", {}, True),
    ("-p icmp", {"proto": "icmp", "sport": None, "dport": None}, True),
    ("-i eth+", {"in_dev": "eth0"}, True), ("-i eth+", {"in_dev": "veth0"}, False),
    ("! -i lo", {"in_dev": "eth0"}, True), ("-i eth0", {"in_dev": None}, False),
    ("! -o docker0", {"out_dev": "docker0"}, False), ("-o docker0", {"out_dev": "docker0"}, True),
    ("-f", {}, False), ("! -f", {}, True),
])
def test_builtin_matches(body, packet, expected):
    assert builtin_matches(parse_rule(body), view(**packet)) is expected


# --- matches ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("body,packet,expected", [
    ("-p tcp -m tcp --dport 80", {}, True),
    ("-p tcp -m tcp --dport 81", {}, False),
    ("-p tcp -m tcp --dport 1:1024", {}, True),
    ("-p tcp -m tcp ! --dport 80", {}, False),
    ("-p tcp -m tcp --sport 40000 --dport 80", {}, True),
    ("-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", {"tcp_flags": "S"}, True),
    ("-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", {"tcp_flags": "SA"}, False),
    ("-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN", {"tcp_flags": "SA"}, True),
    ("-p udp -m udp --dport 53", {"proto": "udp", "dport": 53}, True),
    ("-p udp -m udp --dport 53", {"proto": "tcp", "dport": 53}, False),
    ("-p icmp -m icmp --icmp-type 8", {"proto": "icmp", "icmp_type": 8, "icmp_code": 0}, True),
    ("-p icmp -m icmp --icmp-type 3/3", {"proto": "icmp", "icmp_type": 3, "icmp_code": 1},
     False),
    ("-p icmp -m icmp --icmp-type 3", {"proto": "icmp", "icmp_type": 3, "icmp_code": 1}, True),
    ("-p icmp -m icmp --icmp-type any", {"proto": "icmp", "icmp_type": 0}, True),
    ("-p icmp -m icmp ! --icmp-type 8", {"proto": "icmp", "icmp_type": 8}, False),
    ("-p tcp -m multiport --dports 22,80:90", {}, True),
    ("-p tcp -m multiport --dports 22,443", {}, False),
    ("-p tcp -m multiport --ports 40000", {}, True),
    ("-p tcp -m multiport ! --dports 80", {}, False),
    ("-m comment --comment x", {}, True),
    ("-m mark --mark 0x4000/0x4000", {"mark": 0x4001}, True),
    ("-m mark --mark 0x4000/0x4000", {"mark": 0x1}, False),
    ("-m mark ! --mark 0x4000/0x4000", {"mark": 0x1}, True),
    ("-m mac --mac-source 00:11:22:33:44:55", {}, False),
    ("-m mac ! --mac-source 00:11:22:33:44:55", {}, True),
    ("-m iprange --src-range 10.244.1.1-10.244.1.9", {}, True),
    ("-m iprange ! --dst-range 10.96.0.1-10.96.0.20", {}, False),
    ("-m limit --limit 5/min", {}, True),
])
def test_match_units(body, packet, expected):
    assert hits(body, view(**packet)) is expected


@pytest.mark.parametrize("body,state,expected", [
    ("-m conntrack --ctstate RELATED,ESTABLISHED", "ESTABLISHED", True),
    ("-m conntrack --ctstate RELATED,ESTABLISHED", "NEW", False),
    ("-m conntrack ! --ctstate INVALID", "NEW", True),
    ("-m conntrack --ctstate INVALID", None, True),       # no conntrack entry: INVALID
    ("-m conntrack --ctstate UNTRACKED", "UNTRACKED", True),
    ("-m state --state NEW", "NEW", True), ("-m state --state NEW", None, False),
    ("-m conntrack --ctstate DNAT", "ESTABLISHED", True),
    ("-m conntrack --ctorigdst 10.96.0.10 --ctorigdstport 80", "NEW", True),
    ("-m conntrack --ctorigdst 10.96.0.0/12", "NEW", True),
    ("-m conntrack ! --ctorigdst 10.96.0.0/12", "NEW", False),
    ("-m conntrack --ctreplsrc 10.244.2.3", "NEW", True),
    ("-m conntrack --ctstatus ASSURED", "ESTABLISHED", False),
    ("-m conntrack --ctstatus SEEN_REPLY", "ESTABLISHED", True),
    ("-m conntrack --ctdir ORIGINAL", "NEW", True), ("-m conntrack --ctdir REPLY", "NEW", False),
    ("-m conntrack --ctproto 6", "NEW", True), ("-m conntrack --ctorigsrc 1.1.1.1", None, False),
    ("-m connmark --mark 0x10/0xff", "ESTABLISHED", True),
])
def test_conntrack_matches(body, state, expected):
    conn = None if state is None else ConnView(
        state=state, status={"DNAT", "SEEN_REPLY"}, direction="ORIGINAL",
        orig_src="10.244.1.2", orig_dst="10.96.0.10", orig_sport=40000, orig_dport=80,
        reply_src="10.244.2.3", reply_dst="10.244.1.2", reply_sport=8080, reply_dport=40000,
        mark=0x10)
    assert hits(body, view(conn=conn)) is expected


def test_addrtype_asks_the_namespace():
    seen = []

    def addrtype(ip, dev=None):
        seen.append((ip, dev))
        return "LOCAL" if ip == "10.96.0.10" else "UNICAST"
    assert hits("-m addrtype --dst-type LOCAL", view(addrtype=addrtype)) is True
    assert hits("-m addrtype ! --dst-type LOCAL", view(addrtype=addrtype)) is False
    assert hits("-m addrtype --src-type LOCAL", view(addrtype=addrtype)) is False
    hits("-m addrtype --dst-type LOCAL --limit-iface-in", view(addrtype=addrtype, in_dev="eth0"))
    assert seen[-1] == ("10.96.0.10", "eth0")


def test_statistic_gives_the_probability():
    assert hits("-m statistic --mode random --probability 0.33333333349", view()) == \
        pytest.approx(1 / 3, abs=1e-9)
    assert hits("-m statistic --mode random ! --probability 0.25000000000", view()) == 0.75
    assert hits("-m statistic --mode random --probability 1.00000000000", view()) is True
    assert hits("-m statistic --mode random --probability 0.00000000000", view()) is False
    nth = parse_rule("-m statistic --mode nth --every 3 --packet 0").matches[0]
    assert nth.evaluate(view()) == pytest.approx(1 / 3) and "1/3" in nth.note


def test_limit_and_recent_say_what_they_assume():
    assert "not modelled" in parse_rule("-m limit --limit 5/min").matches[0].note
    recent = parse_rule("-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask "
                        "255.255.255.255 --rsource").matches[0]
    assert recent.evaluate(view()) is False and "empty" in recent.note
    assert parse_rule("-m recent --set --name X --mask 255.255.255.255 --rsource"
                      ).matches[0].evaluate(view()) is True


@pytest.mark.parametrize("body,packet,expected", [
    ("-m physdev --physdev-in veth1", {"bridged": True, "physdev_in": "veth1"}, True),
    ("-m physdev --physdev-in veth+", {"bridged": True, "physdev_in": "veth9"}, True),
    ("-m physdev --physdev-in veth1", {"bridged": True, "physdev_in": "veth2"}, False),
    ("-m physdev --physdev-is-bridged", {"bridged": True, "physdev_in": "a", "physdev_out": "b"},
     True),
    ("-m physdev --physdev-is-bridged", {}, False),
    ("-m physdev ! --physdev-is-bridged", {}, True),
    ("-m physdev --physdev-out veth2", {"bridged": True, "physdev_in": "a"}, True),
])
def test_physdev(body, packet, expected):
    assert hits(body, view(**packet)) is expected


def test_set_offers_each_flag_as_an_address_and_as_a_port():
    asked = []

    def in_set(name, values):
        asked.append(values)
        return (name, values) == ("KUBE-CLUSTER-IP", ("10.96.0.10", "tcp:80"))
    assert hits("-m set --match-set KUBE-CLUSTER-IP dst,dst", view(in_set=in_set)) is True
    assert ("10.96.0.10", "10.96.0.10") in asked
    assert hits("-m set ! --match-set KUBE-CLUSTER-IP dst,dst", view(in_set=in_set)) is False
    assert hits("-m set --match-set OTHER src", view(in_set=in_set)) is False


# --- targets ---------------------------------------------------------------------------------------

def act(body: str, v: PacketView | None = None) -> Action:
    return parse_rule(body).target.apply(v or view())


def test_verdict_targets():
    assert act("-j ACCEPT") == Action("accept")
    assert act("-j DROP") == Action("drop")
    assert act("-j RETURN") == Action("return")
    assert act("-j REJECT --reject-with icmp-port-unreachable").reject_with == \
        "icmp-port-unreachable"
    assert act("-p tcp -j REJECT --reject-with tcp-reset") == \
        Action("reject", reject_with="tcp-reset")


def test_mark_targets_change_the_view_and_continue():
    v = view(mark=0x1)
    assert act("-j MARK --set-xmark 0x4000/0x4000", v).kind == "continue"     # --or-mark
    assert v.mark == 0x4001
    act("-j MARK --set-xmark 0x4000/0x0", v)                                  # --xor-mark
    assert v.mark == 0x1
    act("-j MARK --set-xmark 0x0/0xfffffffe", v)                              # --and-mark 1
    assert v.mark == 0x1
    act("-j MARK --set-xmark 0x8/0xffffffff", v)                              # --set-mark 8
    assert v.mark == 0x8


def test_connmark_save_and_restore():
    conn = ConnView(state="NEW", mark=0)
    v = view(mark=0x4005, conn=conn)
    act("-j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff", v)
    assert conn.mark == 0x05
    v.mark = 0
    act("-j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff", v)
    assert v.mark == 0x05
    act("-j CONNMARK --set-xmark 0x10/0xf0", v)
    assert conn.mark == 0x15


def test_nat_targets():
    assert act("-p tcp -j DNAT --to-destination 10.244.1.5:53") == \
        Action("dnat", to_addr=("10.244.1.5", "10.244.1.5"), to_port=(53, 53))
    ranged = act("-p tcp -j DNAT --to-destination 10.244.1.5-10.244.1.9:53-60 --random")
    assert ranged.to_addr == ("10.244.1.5", "10.244.1.9") and ranged.to_port == (53, 60)
    assert "random" in ranged.note
    assert act("-p tcp -j DNAT --to-destination :8080").to_addr is None
    assert act("-j SNAT --to-source 1.2.3.4 --random-fully") == \
        Action("snat", to_addr=("1.2.3.4", "1.2.3.4"), random_fully=True)
    assert act("-j MASQUERADE --random-fully") == Action("masquerade", random_fully=True)
    assert act("-p tcp -j MASQUERADE --to-ports 1000-2000").to_port == (1000, 2000)
    assert act("-p tcp -j REDIRECT --to-ports 8080") == Action("redirect", to_port=(8080, 8080))


def test_raw_and_log_targets():
    assert act("-j NOTRACK") == Action("notrack")
    assert act("-j CT --notrack") == Action("notrack")
    assert act("-j CT --zone 5").kind == "continue"
    log = act('-j LOG --log-prefix "drop: " --log-level 6')
    assert log.kind == "continue" and log.log == 'LOG level info prefix "drop: "'
    assert act("-j NFLOG --nflog-prefix x --nflog-group 2").log == 'NFLOG group 2 prefix "x"'
    mss = act("-p tcp -j TCPMSS --clamp-mss-to-pmtu")
    assert mss.kind == "continue" and "not modelled" in mss.note
