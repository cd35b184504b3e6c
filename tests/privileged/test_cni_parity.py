"""Parity: our bridge and host-local against the reference (containernetworking-plugins
1.1.1, /usr/lib/cni), each case run by both in fresh namespaces; exit codes, output
(veth names and MACs normalised), host and container state, iptables and the data
dir must be identical, except where README "CNI plugins: better than the reference"
says ours is better (those cases name the aspect that differs, and
test_cni_improvements.py checks what ours does instead).

Needs root and `apt-get install -y containernetworking-plugins`.
"""

from __future__ import annotations

import json
import os

import pytest

from cni_harness import OURS, REFERENCE, Lab, normalise_output, reference_available

pytestmark = pytest.mark.privileged

HL = {"type": "host-local", "subnet": "10.22.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]}
BASE = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
        "isGateway": True, "ipMasq": True, "ipam": HL}
VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]


def conf(**over):
    c = json.loads(json.dumps(BASE))
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def ipam(**over):
    i = dict(HL)
    i.update(over)
    return {k: v for k, v in i.items() if v is not None}


def S(cmd, c=None, **kw):
    return dict(cmd=cmd, conf=c if c is not None else BASE, **kw)


def lifecycle(c, check=True):
    steps = [S("ADD", c)]
    if check:
        steps.append(S("CHECK", c, prev=0))
    return steps + [S("ADD", c, cid="ctr2", ctr=1), S("DEL", c), S("DEL", c), S("DEL", c, cid="ctr2", ctr=1)]


BRIDGE_CASES = {
    **{f"version-{v}": lifecycle(conf(cniVersion=v), check=v in ("0.4.0", "1.0.0")) for v in VERSIONS},
    **{f"gw{int(g)}-masq{int(m)}": [S("ADD", conf(isGateway=g, ipMasq=m)),
                                    S("ADD", conf(isGateway=g, ipMasq=m), cid="ctr2", ctr=1),
                                    S("DEL", conf(isGateway=g, ipMasq=m), cid="ctr2", ctr=1)]
       for g in (False, True) for m in (False, True)},
    "ranges": lifecycle(conf(ipam=ipam(subnet=None, ranges=[[{"subnet": "10.30.0.0/24",
                                                              "rangeStart": "10.30.0.10",
                                                              "rangeEnd": "10.30.0.20"}]]))),
    "range-start-end": lifecycle(conf(ipam=ipam(rangeStart="10.22.5.5", rangeEnd="10.22.5.9"))),
    "routes": lifecycle(conf(ipam=ipam(routes=[{"dst": "10.99.0.0/16", "gw": "10.22.0.254"},
                                               {"dst": "0.0.0.0/0", "gw": "10.22.0.1"}]))),
    "default-gateway": lifecycle(conf(isDefaultGateway=True, ipam=ipam(routes=None))),
    "no-gateway-no-masq-l3": lifecycle(conf(isGateway=None, ipMasq=None)),
    "l2-only": [S("ADD", conf(ipam={}, ipMasq=None, isGateway=None)),
                S("DEL", conf(ipam={}, ipMasq=None, isGateway=None))],
    "mtu": lifecycle(conf(mtu=1400)),
    "dual-stack": lifecycle(conf(isDefaultGateway=True, ipam=ipam(subnet=None, routes=None, ranges=[
        [{"subnet": "10.31.0.0/24"}], [{"subnet": "fd00:31::/64"}]]))),
    "ipv6-only": lifecycle(conf(ipam=ipam(subnet="fd00:32::/64", routes=[{"dst": "::/0"}]))),
    "hairpin": lifecycle(conf(hairpinMode=True)),
    "promisc": lifecycle(conf(promiscMode=True)),
    "hairpin-and-promisc": [S("ADD", conf(hairpinMode=True, promiscMode=True))],
    "mac-runtime-config": lifecycle(conf(runtimeConfig={"mac": "0a:58:0a:16:00:99"})),
    "dns-passthrough": [S("ADD", conf(dns={"nameservers": ["10.96.0.10"], "search": ["svc"]}))],
    "second-bridge-address-refused": [
        S("ADD"), S("ADD", conf(ipam=ipam(subnet="10.40.0.0/16")), cid="ctr2", ctr=1)],
    "force-address": [
        S("ADD"), S("ADD", conf(forceAddress=True, ipam=ipam(subnet="10.40.0.0/16")), cid="ctr2", ctr=1)],
    "del-without-add": [S("DEL"), S("DEL")],
    "del-without-netns": [S("ADD"), S("DEL", ctr=None)],
    "duplicate-ifname": [S("ADD"), S("ADD", cid="ctr9")],
    "bad-json": [S("ADD", "{bad")],
    "empty-stdin": [S("ADD", "")],
    "no-name": [S("ADD", conf(name=None))],
    "bad-name": [S("ADD", conf(name="../etc"))],
    "bad-version": [S("ADD", conf(cniVersion="9.9.9"))],
    "numeric-version": [S("ADD", conf(cniVersion=5))],
    "check-old-version": [S("CHECK", conf(cniVersion="0.3.1"))],
    "missing-netns": [S("ADD", drop=("CNI_NETNS",))],
    "missing-all": [S("ADD", drop=("CNI_NETNS", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"))],
    "bad-container-id": [S("ADD", cid="../x")],
    "bad-ifname": [S("ADD", ifname="a/b")],
    "long-ifname": [S("ADD", ifname="abcdefghijklmnop")],
    "unknown-command": [S("FOO")],
    "unknown-cni-args": [S("ADD", env={"CNI_ARGS": "FOO=bar"})],
    "ignore-unknown-args": lifecycle(conf(), check=False)[:1] + [
        S("DEL", env={"CNI_ARGS": "IgnoreUnknown=1;FOO=bar"})],
    "bad-vlan": [S("ADD", conf(vlan=5000))],
    "vlan-unsupported-here": [S("ADD", conf(vlan=10, bridge="brv"))],
    "macspoofchk": lifecycle(conf(macspoofchk=True)),
    "enabledad": lifecycle(conf(enabledad=True)),
    "bool-type-error": [S("ADD", conf(isGateway="yes"))],
    "ipam-not-found": [S("ADD", conf(ipam={"type": "nope"}))],
    "ipam-error-propagates": [S("ADD", conf(ipam=ipam(subnet="10.22.0.0/31")))],
    "version": [S("VERSION", "{bad")],
    "check-without-prev": [S("ADD"), S("CHECK")],
    "check-after-del": [S("ADD"), S("DEL"), S("CHECK", prev=0)],
    "add-with-prev-result": [S("ADD", conf(prevResult={"cniVersion": "1.0.0", "interfaces": [
        {"name": "x0"}], "ips": [{"address": "192.0.2.9/24"}]}))],
    "exhaustion": [S("ADD", conf(ipam=ipam(subnet="10.50.0.0/30"))),
                   S("ADD", conf(ipam=ipam(subnet="10.50.0.0/30")), cid="ctr2", ctr=1)],
}

# Cases where ours is documented to be better: the aspect that may differ, and why.
IMPROVED = {
    "exhaustion": ("containers links addrs", "a failed ADD leaves no veth behind"),
    "ipam-error-propagates": ("containers links addrs", "a failed ADD leaves no veth or bridge behind"),
    "ipam-not-found": ("containers links addrs", "a failed ADD leaves no veth or bridge behind"),
    "second-bridge-address-refused": ("containers links addrs data",
                                      "a failed ADD leaves no veth, no reservation"),
    "duplicate-ifname": ("data", "a failed ADD leaves no reservation"),
}
# Reference outputs that only differ because ours speaks spec 1.1.0 too.
VERSION_EXTENSION = {"version"}
EXTRA_VERSION = ' \\"1.1.0\\"'  # in "plugin supports [...]" of an incompatible-version error


def run_case(tmp_path, steps, bridge, hostlocal_dir):
    lab = Lab(tmp_path, "r" if "usr" in str(bridge) else "o")
    outs = []
    try:
        for step in steps:
            c = step["conf"]
            if isinstance(c, dict) and "prev" in step:
                prev = json.loads(outs[step["prev"]][1])
                c = dict(c, prevResult=prev)
            kw = {k: step[k] for k in ("cid", "ctr", "ifname", "env", "drop") if k in step}
            rc, out = lab.call(bridge, step["cmd"], c, path=str(hostlocal_dir), **kw)
            outs.append((rc, out))
        return [(rc, normalise_output(o.replace(str(hostlocal_dir), "CNI_PATH"))) for rc, o in outs], \
            lab.state()
    finally:
        lab.close()


@pytest.fixture(scope="module")
def reference():
    if not reference_available():
        pytest.skip("needs the reference plugins: apt-get install -y containernetworking-plugins")


@pytest.mark.parametrize("case", sorted(BRIDGE_CASES))
def test_bridge_parity(kernel, reference, tmp_path, case):
    steps = BRIDGE_CASES[case]
    ref_out, ref_state = run_case(tmp_path, steps, REFERENCE / "bridge", REFERENCE)
    our_out, our_state = run_case(tmp_path, steps, OURS / "bridge", OURS)
    if case in VERSION_EXTENSION:
        assert [rc for rc, _ in our_out] == [rc for rc, _ in ref_out]
        assert json.loads(our_out[0][1])["supportedVersions"][:6] == \
            json.loads(ref_out[0][1])["supportedVersions"]
        return
    assert [(rc, o.replace(EXTRA_VERSION, "")) for rc, o in our_out] == ref_out
    allowed = IMPROVED.get(case, ("",))[0].split()
    for key in ref_state:
        if key not in allowed:
            assert our_state[key] == ref_state[key], key


RESOLV_CONF = f"/tmp/cn-{os.getpid()}-resolv.conf"
HOSTLOCAL_BASE = {"cniVersion": "0.4.0", "name": "hl", "ipam": {"type": "host-local",
                                                               "subnet": "10.60.0.0/29"}}


def hl(ver="0.4.0", **over):
    c = json.loads(json.dumps(HOSTLOCAL_BASE))
    c["cniVersion"] = ver
    for k, v in over.items():
        if v is None:
            c["ipam"].pop(k, None)
        else:
            c["ipam"][k] = v
    return c


def H(cmd, c=None, **kw):
    return dict(cmd=cmd, conf=c if c is not None else hl(), **kw)


def adds(n, c=None):
    return [H("ADD", c, cid=f"c{i}") for i in range(n)]


HOSTLOCAL_CASES = {
    "exhaust-29": adds(7),
    "add-del-add": [H("ADD", cid="a"), H("DEL", cid="a"), H("ADD", cid="b")],
    "range-2-4": adds(3, hl(rangeStart="10.60.0.2", rangeEnd="10.60.0.4"))
    + [H("ADD", hl(rangeStart="10.60.0.2", rangeEnd="10.60.0.4"), cid="x"),
       H("DEL", hl(rangeStart="10.60.0.2", rangeEnd="10.60.0.4"), cid="c1"),
       H("ADD", hl(rangeStart="10.60.0.2", rangeEnd="10.60.0.4"), cid="y")],
    "two-30s-one-set": adds(3, hl(subnet=None, ranges=[[{"subnet": "10.23.0.0/30"},
                                                        {"subnet": "10.24.0.0/30"}]])),
    "gateway-254": adds(2, hl(subnet="10.60.0.0/24", gateway="10.60.0.254")),
    "ipv6": adds(2, hl(subnet="fd00:c0:1::/64")),
    "dual-stack": adds(2, hl(subnet=None, ranges=[[{"subnet": "10.61.0.0/24"}],
                                                  [{"subnet": "fd00:61::/120"}]])),
    "dual-stack-020": adds(1, hl("0.2.0", subnet=None, ranges=[[{"subnet": "10.61.0.0/24"}],
                                                               [{"subnet": "fd00:61::/120"}]])),
    "two-v4-sets-020": adds(1, hl("0.2.0", subnet=None, ranges=[[{"subnet": "10.61.0.0/24"}],
                                                                [{"subnet": "10.62.0.0/24"}]])),
    "second-set-exhausted": adds(3, hl(subnet=None, ranges=[[{"subnet": "10.63.0.0/24"}],
                                                            [{"subnet": "10.64.0.0/30"}]])),
    "requested-ip-args": [H("ADD", env={"CNI_ARGS": "IP=10.60.0.5"}),
                          H("ADD", cid="b", env={"CNI_ARGS": "IP=10.60.0.5"}),
                          H("ADD", cid="c", env={"CNI_ARGS": "IP=10.60.0.1"}),
                          H("ADD", cid="d", env={"CNI_ARGS": "IP=10.99.0.1"}),
                          H("ADD", cid="e", env={"CNI_ARGS": "IP=bogus"})],
    "requested-ip-runtime": [H("ADD", dict(hl(), runtimeConfig={"ips": ["10.60.0.6/29"]}))],
    "requested-ip-args-cni": [H("ADD", dict(hl(), args={"cni": {"ips": ["10.60.0.4"]}}))],
    "runtime-ip-ranges": [H("ADD", dict(hl(), runtimeConfig={"ipRanges": [[{"subnet": "10.70.0.0/24"}]]}))],
    "duplicate": [H("ADD"), H("ADD")],
    "check": [H("ADD"), H("CHECK"), H("CHECK", cid="other")],
    "del-twice": [H("ADD"), H("DEL"), H("DEL")],
    "routes": [H("ADD", hl(routes=[{"dst": "0.0.0.0/0"}, {"dst": "10.1.0.5/8", "gw": "10.60.0.1"}]))],
    "all-versions": [H("ADD", hl(v), cid=f"v{i}") for i, v in enumerate(VERSIONS)],
    "no-ipam": [H("ADD", {"cniVersion": "0.4.0", "name": "hl"})],
    "no-ranges": [H("ADD", hl(subnet=None))],
    "too-small": [H("ADD", hl(subnet="10.60.0.0/31"))],
    "host-bits": [H("ADD", hl(subnet="10.60.0.5/24"))],
    "start-outside": [H("ADD", hl(rangeStart="10.61.0.5"))],
    "end-before-start": [H("ADD", hl(rangeStart="10.60.0.5", rangeEnd="10.60.0.3"))],
    "bad-cidr": [H("ADD", hl(subnet="nonsense"))],
    "bad-ip": [H("ADD", hl(rangeStart="10.60.0.300"))],
    "mixed-families": [H("ADD", hl(subnet=None, ranges=[[{"subnet": "10.60.0.0/24"},
                                                         {"subnet": "fd00::/64"}]]))],
    "overlap-in-set": [H("ADD", hl(subnet=None, ranges=[[{"subnet": "10.60.0.0/24"},
                                                         {"subnet": "10.60.0.0/25"}]]))],
    "overlap-between-sets": [H("ADD", hl(subnet=None, ranges=[[{"subnet": "10.60.0.0/24"}],
                                                              [{"subnet": "10.60.0.128/25"}]]))],
    "resolv-conf": [H("ADD", hl(resolvConf=RESOLV_CONF))],
    "resolv-conf-missing": [H("ADD", hl(resolvConf="/nonexistent/resolv.conf"))],
}


LAST_RESERVED_KEPT = {"second-set-exhausted", "requested-ip-args"}


def run_hostlocal(tmp_path, steps, plugin):
    lab = Lab(tmp_path, "r" if "usr" in str(plugin) else "o")
    try:
        outs = []
        for step in steps:
            kw = {k: step[k] for k in ("cid", "env") if k in step}
            outs.append(lab.call(plugin, step["cmd"], step["conf"], ctr="/x", **kw))
        return outs, lab.data_dir()
    finally:
        lab.close()


@pytest.fixture(scope="module")
def resolv_conf():
    from pathlib import Path
    p = Path(RESOLV_CONF)
    p.write_text("# test\nnameserver 10.96.0.10\nnameserver 8.8.8.8\nsearch a.svc b.svc\n"
                 "domain cluster.local\noptions ndots:5 timeout:1\n")
    yield
    p.unlink()


@pytest.mark.parametrize("case", sorted(HOSTLOCAL_CASES))
def test_hostlocal_parity(kernel, reference, resolv_conf, tmp_path, case):
    steps = HOSTLOCAL_CASES[case]
    ref = run_hostlocal(tmp_path, steps, REFERENCE / "host-local")
    ours = run_hostlocal(tmp_path, steps, OURS / "host-local")
    if case in LAST_RESERVED_KEPT:
        # ours puts last_reserved_ip back after a failed ADD (README: better than the
        # reference); test_cni_improvements.py checks the value
        assert ours[0] == ref[0]
        strip = lambda d: {k: v for k, v in d.items() if "last_reserved_ip" not in k}  # noqa: E731
        assert strip(ours[1]) == strip(ref[1])
        return
    assert ours == ref


@pytest.mark.parametrize("first,second", [("ref", "ours"), ("ours", "ref")])
def test_hostlocal_data_dir_shared(kernel, reference, tmp_path, first, second):
    """A data dir written by one is read and continued by the other, as by itself."""
    plugins = {"ref": REFERENCE / "host-local", "ours": OURS / "host-local"}
    c = hl(subnet="10.60.0.0/28")
    outs = {}
    for mode in ("mixed", "ref-only"):
        lab = Lab(tmp_path)
        try:
            seq = [first, second, first, second, second] if mode == "mixed" else ["ref"] * 5
            got = []
            for i, who in enumerate(seq):
                got.append(lab.call(plugins[who], "ADD", c, cid=f"k{i}", ctr="/x"))
                if i == 2:
                    got.append(lab.call(plugins[seq[i - 1]], "DEL", c, cid="k1", ctr="/x"))
            outs[mode] = (got, lab.data_dir())
        finally:
            lab.close()
    assert outs["mixed"] == outs["ref-only"]


MIXED = {
    "our-bridge+ref-host-local": ("ours", "ref"),
    "ref-bridge+our-host-local": ("ref", "ours"),
}


@pytest.mark.parametrize("pair", sorted(MIXED))
def test_mixed_pairs(kernel, reference, tmp_path, pair):
    """Either bridge with either host-local: the same results and state as ref + ref."""
    import shutil
    b, h = MIXED[pair]
    mixdir = tmp_path / "mix"
    mixdir.mkdir()
    shutil.copy(REFERENCE / "host-local" if h == "ref" else OURS / "host-local", mixdir / "host-local")
    if h == "ours":   # our executable finds the netlab package next to it; keep that working
        (mixdir / "host-local").unlink()
        (mixdir / "host-local").symlink_to(OURS / "host-local")
    bridge = REFERENCE / "bridge" if b == "ref" else OURS / "bridge"
    steps = lifecycle(conf(), check=True)
    ref_out, ref_state = run_case(tmp_path, steps, REFERENCE / "bridge", REFERENCE)
    mix_out, mix_state = run_case(tmp_path, steps, bridge, mixdir)
    assert mix_out == ref_out
    assert mix_state == ref_state
