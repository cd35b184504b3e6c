"""The CNI protocol without a kernel: env and config checks in the reference's order,
error objects, results per version and their conversion, VERSION, host-local's
allocation on an in-memory store, the iptables-restore text of ipMasq.
"""

from __future__ import annotations

import io
import json

import pytest

from netlab.cni import CniError, fastjson, hostlocal, masq, skel, types
from netlab.cni.ip import parse_cidr, parse_ip

FULL_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
CONF = {"cniVersion": "1.0.0", "name": "mynet", "ipam": {"type": "host-local", "subnet": "10.22.0.0/29"}}


def run(env, stdin, handlers=None):
    out, err = io.StringIO(), io.StringIO()
    data = stdin if isinstance(stdin, bytes) else (json.dumps(stdin) if isinstance(stdin, dict) else stdin).encode()
    rc = skel.main("test", handlers or {"ADD": lambda a: {"ips": [{"address": "10.0.0.2/24"}]},
                                        "DEL": lambda a: None, "CHECK": lambda a: None,
                                        "STATUS": lambda a: None, "GC": lambda a: None},
                   environ=env, stdin=io.BytesIO(data), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def error_of(env, stdin) -> dict:
    rc, out, _ = run(env, stdin)
    assert rc == 1
    return json.loads(out)


@pytest.mark.parametrize("env,stdin,want", [
    ({"CNI_COMMAND": "ADD"}, CONF,
     {"code": 4, "msg": "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing"}),
    ({**FULL_ENV, "CNI_IFNAME": ""}, CONF, {"code": 4, "msg": "required env variables [CNI_IFNAME] missing"}),
    (FULL_ENV, "{bad", {"code": 6, "msg": "error unmarshall network config: invalid character 'b' "
                                          "looking for beginning of object key string"}),
    (FULL_ENV, "", {"code": 6, "msg": "error unmarshall network config: unexpected end of JSON input"}),
    (FULL_ENV, {"name": 5}, {"code": 6, "msg": "error unmarshall network config: json: cannot unmarshal "
                                               "number into Go struct field .name of type string"}),
    (FULL_ENV, {"cniVersion": "1.0.0"}, {"code": 7, "msg": "missing network name"}),
    (FULL_ENV, {"name": "../x"}, {"code": 7, "msg": "invalid characters found in network name",
                                  "details": "../x"}),
    ({**FULL_ENV, "CNI_CONTAINERID": "-x"}, CONF,
     {"code": 4, "msg": "invalid characters in containerID", "details": "-x"}),
    ({**FULL_ENV, "CNI_IFNAME": "a" * 16}, CONF,
     {"code": 4, "msg": "interface name is too long", "details": "interface name should be less than 16 characters"}),
    ({**FULL_ENV, "CNI_IFNAME": ".."}, CONF, {"code": 4, "msg": "interface name is . or .."}),
    ({**FULL_ENV, "CNI_IFNAME": "a b"}, CONF,
     {"code": 4, "msg": "interface name contains / or : or whitespace characters"}),
    ({**FULL_ENV, "CNI_COMMAND": "FOO"}, CONF, {"code": 4, "msg": "unknown CNI_COMMAND: FOO"}),
    ({"CNI_COMMAND": "FOO"}, CONF, {"code": 3, "msg": "missing containerID"}),
    (FULL_ENV, {"name": "x", "cniVersion": 5},
     {"code": 6, "msg": "decoding version from network config: json: cannot unmarshal number into Go "
                        "struct field .cniVersion of type string"}),
    (FULL_ENV, {"name": "x", "cniVersion": "9.9.9"},
     {"code": 1, "msg": "incompatible CNI versions",
      "details": 'config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]'}),
    ({**FULL_ENV, "CNI_COMMAND": "CHECK"}, {"name": "x", "cniVersion": "0.3.1"},
     {"code": 1, "msg": "config version does not allow CHECK"}),
    ({**FULL_ENV, "CNI_COMMAND": "CHECK"}, {"name": "x", "cniVersion": "9.9.9"},
     {"code": 1, "msg": "plugin version does not allow CHECK"}),
    ({"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, {"name": "x", "cniVersion": "1.0.0"},
     {"code": 1, "msg": "config version does not allow STATUS"}),
])
def test_checks_in_the_reference_order(env, stdin, want):
    assert error_of(env, stdin) == want


def test_no_command_prints_about_to_stderr_and_exits_0():
    rc, out, err = run({}, "")
    assert (rc, out) == (0, "")
    assert "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in err


def test_version_ignores_bad_stdin_and_prints_compact_json():
    rc, out, _ = run({"CNI_COMMAND": "VERSION"}, "{bad")
    assert rc == 0
    assert out == '{"cniVersion":"1.0.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1",' \
                  '"0.4.0","1.0.0","1.1.0"]}\n'


def test_error_object_is_go_indented_without_trailing_newline():
    rc, out, _ = run({"CNI_COMMAND": "ADD"}, CONF)
    assert out.startswith('{\n    "code": 4,\n    "msg": ') and out.endswith('"\n}')


def test_a_python_exception_becomes_code_999_not_a_traceback():
    def boom(args):
        raise RuntimeError("disk on fire")
    rc, out, err = run(FULL_ENV, CONF, {"ADD": boom})
    assert (rc, json.loads(out), err) == (1, {"code": 999, "msg": "disk on fire"}, "")


def test_status_and_gc_need_only_command_and_path():
    rc, out, _ = run({"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, {"name": "x", "cniVersion": "1.1.0"},
                     {"STATUS": lambda a: None})
    assert (rc, out) == (0, "")


@pytest.mark.parametrize("text,known,want", [
    ("", ("IP",), {}),
    ("IP=10.0.0.5", ("IP",), {"IP": "10.0.0.5"}),
    ("IgnoreUnknown=1;K8S_POD_NAME=x;IP=1.2.3.4", ("IP",), {"IgnoreUnknown": "true", "IP": "1.2.3.4"}),
])
def test_cni_args(text, known, want):
    assert skel.parse_cni_args(text, known) == want


@pytest.mark.parametrize("text,msg", [
    ("FOO=bar", 'ARGS: unknown args ["FOO=bar"]'),
    ("FOO", 'ARGS: invalid pair "FOO"'),
    ("IgnoreUnknown=maybe", "boolean unmarshal error: invalid input maybe"),
])
def test_cni_args_errors(text, msg):
    with pytest.raises(CniError) as exc:
        skel.parse_cni_args(text, ("IP",))
    assert (exc.value.code, exc.value.msg) == (999, msg)


RICH = {"interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
                       {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/x", "mtu": 1400}],
        "ips": [{"interface": 1, "address": "10.22.0.2/16", "gateway": "10.22.0.1"},
                {"interface": 1, "address": "fd00::2/64", "gateway": "fd00::1"}],
        "routes": [{"dst": "0.0.0.0/0", "mtu": 1400}, {"dst": "::/0", "gw": "fd00::1"}],
        "dns": {"nameservers": ["10.96.0.10"]}}


def test_result_per_version():
    v020 = types.to_version(RICH, "0.2.0")
    assert v020 == {"cniVersion": "0.2.0",
                    "ip4": {"ip": "10.22.0.2/16", "gateway": "10.22.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
                    "ip6": {"ip": "fd00::2/64", "gateway": "fd00::1", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
                    "dns": {"nameservers": ["10.96.0.10"]}}
    v040 = types.to_version(RICH, "0.4.0")
    assert list(v040["ips"][0]) == ["version", "interface", "address", "gateway"]
    assert v040["ips"][1]["version"] == "6"
    assert "mtu" not in v040["interfaces"][1] and "mtu" not in v040["routes"][0]
    v100 = types.to_version(RICH, "1.0.0")
    assert "version" not in v100["ips"][0] and list(v100) == ["cniVersion", "interfaces", "ips", "routes", "dns"]
    v110 = types.to_version(RICH, "1.1.0")
    assert v110["interfaces"][1]["mtu"] == 1400 and v110["routes"][0]["mtu"] == 1400


def test_conversion_round_trips_and_empty_fields():
    for v in types.SUPPORTED_VERSIONS:
        back = types.from_any(types.to_version(RICH, v), v)
        assert [i["address"] for i in back["ips"]] == ["10.22.0.2/16", "fd00::2/64"]
    assert types.to_version({"ips": [{"address": "10.0.0.2/8"}]}, "1.0.0") == \
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/8"}], "dns": {}}
    with pytest.raises(CniError, match="cannot convert: no valid IP addresses"):
        types.to_version({"interfaces": [{"name": "x"}]}, "0.2.0")


def test_go_json_escapes_like_go():
    assert fastjson.dumps_go({"a": "<&>", "b": []}) == '{\n    "a": "\\u003c\\u0026\\u003e",\n    "b": []\n}'


# --- host-local on an in-memory store ----------------------------------------------------

def hl_add(files, cid, conf=None, ifname="eth0", cni_args=""):
    c = hostlocal.load_config(conf or CONF, cni_args)
    return hostlocal.cmd_add(c, hostlocal.open_store(c, files), cid, ifname)


def test_allocation_order_and_wrap():
    files: dict = {}
    got = [hl_add(files, f"c{i}")["ips"][0]["address"] for i in range(5)]
    assert got == ["10.22.0.2/29", "10.22.0.3/29", "10.22.0.4/29", "10.22.0.5/29", "10.22.0.6/29"]
    with pytest.raises(CniError, match="no IP addresses available in range set: 10.22.0.1-10.22.0.6"):
        hl_add(files, "c9")
    hostlocal.cmd_del(hostlocal.MemoryStore(files["mynet"]), "c1", "eth0")
    assert hl_add(files, "c10")["ips"][0]["address"] == "10.22.0.3/29"
    assert files["mynet"]["10.22.0.3"] == "c10\r\neth0"
    assert files["mynet"]["last_reserved_ip.0"] == "10.22.0.3"


def test_failed_add_keeps_last_reserved_and_other_reservations():
    conf = {"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local", "ranges": [
        [{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/30"}]]}}
    files: dict = {}
    hl_add(files, "a", conf)
    before = dict(files["n"])
    with pytest.raises(CniError, match="failed to allocate for range 1"):
        hl_add(files, "b", conf)
    assert files["n"] == before


@pytest.mark.parametrize("ipam,msg", [
    ({"type": "host-local"}, "no IP ranges specified"),
    ({"type": "host-local", "subnet": "10.0.0.0/31"}, "invalid range set 0: Network 10.0.0.0/31 too small to allocate from"),
    ({"type": "host-local", "subnet": "10.0.0.5/24"}, "invalid range set 0: Network has host bits set. "
     "For a subnet mask of length 24 the network address is 10.0.0.0"),
    ({"type": "host-local", "subnet": "10.0.0.0/24", "rangeStart": "10.1.0.1"},
     "invalid range set 0: RangeStart 10.1.0.1 not in network 10.0.0.0/24"),
    ({"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]},
     "range set 0 overlaps with 1"),
])
def test_hostlocal_config_errors(ipam, msg):
    with pytest.raises(CniError) as exc:
        hostlocal.load_config({"cniVersion": "1.0.0", "name": "n", "ipam": ipam}, "")
    assert (exc.value.code, exc.value.msg) == (999, msg)


def test_gc_removes_reservations_of_attachments_not_valid():
    files: dict = {}
    hl_add(files, "keep")
    hl_add(files, "stale")
    conf = dict(CONF, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]})
    c = hostlocal.load_config(conf, "")
    assert hostlocal.cmd_gc(c, hostlocal.MemoryStore(files["mynet"]), hostlocal.valid_attachments(conf)) == ["10.22.0.3"]
    assert "10.22.0.2" in files["mynet"] and "10.22.0.3" not in files["mynet"]


def test_status_reports_an_exhausted_pool_with_code_50():
    files: dict = {}
    for i in range(5):
        hl_add(files, f"c{i}")
    c = hostlocal.load_config(CONF, "")
    with pytest.raises(CniError) as exc:
        hostlocal.cmd_status(c, hostlocal.MemoryStore(files["mynet"]))
    assert exc.value.code == 50


# --- ipMasq as iptables-restore text --------------------------------------------------------

def test_masq_chain_name_and_rules():
    chain = masq.chain_name("mynet", "ctr1")
    assert chain == "CNI-5145007e2a8415ce07579739"         # observed from the reference
    net = parse_cidr("10.22.0.2/16")
    payload = masq.setup_payload("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n", net, chain,
                                 masq.comment("mynet", "ctr1"))
    assert payload.splitlines() == [
        "*nat", f":{chain} - [0:0]",
        f'-A {chain} -d 10.22.0.0/16 -m comment --comment "name: \\"mynet\\" id: \\"ctr1\\"" -j ACCEPT',
        f'-A {chain} ! -d 224.0.0.0/4 -m comment --comment "name: \\"mynet\\" id: \\"ctr1\\"" -j MASQUERADE',
        f'-A POSTROUTING -s 10.22.0.2/32 -m comment --comment "name: \\"mynet\\" id: \\"ctr1\\"" -j {chain}',
        "COMMIT"]


def test_masq_teardown_keeps_a_chain_still_jumped_to():
    chain, note = masq.chain_name("n", "c"), masq.comment("n", "c")
    a, b = parse_cidr("10.1.0.2/24"), parse_cidr("10.2.0.2/24")
    lines = [f":{chain} - [0:0]"] + masq.rules(a, chain, note) + masq.rules(b, chain, note)[:1] + \
        masq.rules(b, chain, note)[2:]
    save = "*nat\n" + "\n".join(lines) + "\nCOMMIT\n"
    out = masq.teardown_payload(save, [b], chain, note, whole=False).splitlines()
    assert f"-F {chain}" not in out
    assert any(l.startswith("-D POSTROUTING -s 10.2.0.2/32") for l in out)
    assert any(l.startswith(f"-D {chain} -d 10.2.0.0/24") for l in out)
    whole = masq.teardown_payload(save, [], chain, note, whole=True).splitlines()
    assert whole[-3:] == [f"-F {chain}", f"-X {chain}", "COMMIT"]


def test_ip_parsing_matches_go():
    assert str(parse_ip("fd00:0:0:0::1")) == "fd00::1"
    assert parse_ip("010.0.0.1") is None and parse_ip("1.2.3") is None
    assert str(parse_ip("::ffff:10.0.0.1")) == "10.0.0.1"
    assert str(parse_cidr("10.0.0.5/8")) == "10.0.0.5/8" and parse_cidr("10.0.0.0/33") is None
