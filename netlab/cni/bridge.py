"""The bridge plugin: the reference's (1.1.1) steps, keys and messages, on a Host.

A Host (netlab/cni/kernel.py for a kernel, netlab/cni/virtual.py for a
World) does the link, address, route, sysctl and iptables work; this module
decides what to do, in the reference's order:

ADD: bridge (created if missing) -> veth ``veth<8 hex>`` on the bridge with
the container end named CNI_IFNAME -> IPAM ADD (delegated) -> container
sysctls, addresses, routes -> port UP -> gateway address on the bridge and
forwarding (isGateway) -> the ``CNI-<hash>`` masquerade chain (ipMasq) ->
result. DEL: container link (collecting its addresses) -> IPAM DEL ->
masquerade teardown. CHECK: IPAM CHECK -> bridge, veth, container link,
addresses, routes against prevResult.

Better than the reference (each has a test, and README lists them):
- a failed ADD undoes everything it did: the veth, a bridge it created, the
  IPAM reservation (and host-local's ``last_reserved_ip``), masquerade rules;
- DEL after the netns is gone still removes the masquerade chain;
- DEL of one interface keeps the chain while another interface of the same
  container still jumps to it; DEL after the interface itself is gone still
  removes the jumps of addresses no interface holds;
- CHECK accepts a route without ``gw`` (ADD gave it the family's gateway);
  CHECK of an L2-only attachment (no IPAM) succeeds.
"""


import posix

from netlab.cni.errors import internal
from netlab.cni.ip import IP, Net, go_ipnet, parse_cidr, parse_ip
from netlab.cni.types import from_any

BOOL_KEYS = ("isGateway", "isDefaultGateway", "forceAddress", "ipMasq", "hairpinMode",
             "promiscMode", "macspoofchk", "enabledad")
INT_KEYS = ("mtu", "vlan")
STR_KEYS = ("bridge",)


class NetConf:
    def __init__(self, conf: dict, cni_args: str):
        from netlab.cni.skel import _GO_KIND, parse_cni_args
        for keys, want, types_ in ((BOOL_KEYS, "bool", (bool,)), (INT_KEYS, "int", (int,)),
                                   (STR_KEYS, "string", (str,))):
            for key in keys:
                value = conf.get(key)
                if value is not None and (not isinstance(value, types_) or
                                          (want == "int" and isinstance(value, bool))):
                    kind = _GO_KIND.get(type(value), "value")
                    raise internal("failed to load netconf: json: cannot unmarshal "
                                   f"{kind} into Go struct field NetConf.{key} of type {want}")
        self.conf = conf
        self.name = conf["name"]
        self.bridge = conf.get("bridge") or "cni0"
        for key in BOOL_KEYS:
            setattr(self, key, bool(conf.get(key)))
        self.mtu = conf.get("mtu") or 0
        self.vlan = conf.get("vlan") or 0
        if self.vlan < 0 or self.vlan > 4094:
            raise internal(f"invalid VLAN ID {self.vlan} (must be between 0 and 4094)")
        ipam = conf.get("ipam") or {}
        self.ipam_type = ipam.get("type", "") if isinstance(ipam, dict) else ""
        self.mac = ""
        env = parse_cni_args(cni_args, ("MAC",))
        if env.get("MAC"):
            self.mac = env["MAC"]
        mac = (((conf.get("args") or {}).get("cni") or {}).get("mac")) or ""
        if mac:
            self.mac = mac
        mac = (conf.get("runtimeConfig") or {}).get("mac") or ""
        if mac:
            self.mac = mac
        if self.isDefaultGateway:
            self.isGateway = True
        self.dns = conf.get("dns") or {}


def random_veth_name() -> str:
    return "veth" + posix.urandom(4).hex()


def gateway_of(address: Net) -> IP:
    return address.network.next()


def calc_gateways(result: dict, n: NetConf) -> dict[int, list[Net]]:
    """calcGateways: ips get interface 2 (and a gateway with isGateway), the default
    route is appended for isDefaultGateway; returns the bridge's gateway prefixes per family."""
    gws: dict[int, list[Net]] = {32: [], 128: []}
    default_found = {32: False, 128: False}
    for ipc in result["ips"]:
        addr = parse_cidr(ipc["address"])
        if addr is None:
            raise internal(f"Unknown IP object: {ipc}")
        bits = addr.bits
        ipc["interface"] = 2
        if not ipc.get("gateway") and n.isGateway:
            ipc["gateway"] = str(gateway_of(addr))
        if n.isDefaultGateway and not default_found[bits]:
            default = "0.0.0.0/0" if bits == 32 else "::/0"
            for route in result["routes"]:
                if route.get("gw") and str(parse_cidr(route["dst"])) == default:
                    default_found[bits] = True
                    break
            if not default_found[bits]:
                route = {"dst": default}
                if ipc.get("gateway"):
                    route["gw"] = ipc["gateway"]
                result["routes"].append(route)
                default_found[bits] = True
        if n.isGateway:
            gws[bits].append(Net(parse_ip(ipc["gateway"]), addr.prefixlen))
    return gws


class Undo:
    """What this ADD did, undone in reverse order when it fails."""

    def __init__(self):
        self.steps: list = []

    def push(self, fn, *args) -> None:
        self.steps.append((fn, args))

    def run(self) -> None:
        for fn, args in reversed(self.steps):
            try:
                fn(*args)
            except Exception:      # best effort: the original error is the one to report
                pass


def cmd_add(host, args, ipam) -> dict:
    n = NetConf(args.conf, args.args)
    if n.hairpinMode and n.promiscMode:
        raise internal("cannot set hairpin mode and promiscuous mode at the same time.")
    undo = Undo()
    try:
        host.open_container(args.netns)
        result = _add(host, args, ipam, n, undo)
    except BaseException:
        undo.run()
        raise
    finally:
        host.close()
    return result


def _add(host, args, ipam, n: NetConf, undo: Undo) -> dict:
    try:
        created = host.ensure_bridge(n.bridge, n.mtu, n.promiscMode, bool(n.vlan))
    except OSError as exc:
        raise internal(f'failed to create bridge "{n.bridge}": could not add "{n.bridge}": '
                       f"{exc.strerror.lower()}") from None
    if created:
        undo.push(host.del_link, "host", n.bridge)
    host_name = host.add_veth(args.ifname, n.mtu, n.mac)
    undo.push(host.del_link, "ctr", args.ifname)
    host.attach_port(host_name, n.bridge, n.hairpinMode, n.vlan)
    if n.macspoofchk:
        uid = f"{args.container_id}-{args.ifname}"
        host.spoofchk_setup(host_name, host.container_mac(args.ifname), uid)
        undo.push(host.spoofchk_teardown, uid)
    result: dict = {"interfaces": [{"name": n.bridge}, {"name": host_name},
                                   {"name": args.ifname, "sandbox": args.netns}],
                    "ips": [], "routes": [], "dns": {}}
    if n.ipam_type:
        raw = ipam.add()
        undo.push(ipam.rollback)
        got = from_any(raw, args.version)
        result["ips"], result["routes"] = got["ips"], got["routes"]
        if not result["ips"]:
            raise internal("IPAM plugin returned missing IP config")
        gws = calc_gateways(result, n)
        host.configure_container(args.ifname, result, n.enabledad)
        host.wait_port_up(host_name)
        if n.isGateway:
            for bits in (32, 128):
                for gw in gws[bits]:
                    if n.vlan:
                        raise internal("vlan gateway interfaces are not supported by this kernel")
                    try:
                        host.ensure_bridge_addr(n.bridge, gw, n.forceAddress)
                    except ValueError as exc:
                        raise internal(f"failed to set bridge addr: {exc}") from None
                if gws[bits]:
                    host.sysctl("host", "net/ipv4/ip_forward" if bits == 32
                                else "net/ipv6/conf/all/forwarding", "1")
        if n.ipMasq:
            from netlab.cni.masq import chain_name, comment
            chain, note = chain_name(n.name, args.container_id), comment(n.name, args.container_id)
            for ipc in result["ips"]:
                net = parse_cidr(ipc["address"])
                undo.push(host.masq_teardown, [net], chain, note, False)
                host.masq_setup(net, chain, note)
    else:
        host.set_up("ctr", args.ifname)
        host.wait_port_up(host_name)
    result["interfaces"][0]["mac"] = host.link("host", n.bridge).mac
    result["interfaces"][1]["mac"] = host.link("host", host_name).mac
    result["interfaces"][2]["mac"] = host.container_mac(args.ifname)
    if n.dns and any(n.dns.get(k) for k in ("nameservers", "domain", "search", "options")):
        result["dns"] = n.dns
    if args.version in ("0.1.0", "0.2.0") and not result["ips"]:
        raise internal("cannot convert: no valid IP addresses")
    return result


def cmd_del(host, args, ipam) -> None:
    n = NetConf(args.conf, args.args)
    try:
        if not args.netns:
            if n.ipam_type:
                ipam.run("DEL")
            return
        gone = not host.netns_exists(args.netns)
        addrs: list[Net] = []
        if not gone:
            host.open_container(args.netns)
            addrs = host.del_container_link(args.ifname)
        if n.ipam_type:
            ipam.run("DEL")
        if n.macspoofchk:       # also when the netns is gone (the reference skips it then)
            try:
                host.spoofchk_teardown(f"{args.container_id}-{args.ifname}")
            except Exception as exc:
                import sys
                sys.stderr.write(str(exc))
        if n.ipam_type and n.ipMasq:
            from netlab.cni.masq import chain_name, comment
            chain, note = chain_name(n.name, args.container_id), comment(n.name, args.container_id)
            if gone:            # the whole container is gone: no interface of it needs the chain
                host.masq_teardown([], chain, note, True)
            else:
                if not addrs:
                    prev = args.conf.get("prevResult")
                    if isinstance(prev, dict):
                        addrs = [parse_cidr(i["address"]) for i in from_any(prev, args.version)["ips"]
                                 if i.get("interface") in (None, 2)]
                if addrs:
                    host.masq_teardown(addrs, chain, note, False)
                else:           # the link was already gone: drop what no interface holds
                    host.masq_teardown_stale(chain, note)
    finally:
        host.close()


def cmd_check(host, args, ipam) -> None:
    n = NetConf(args.conf, args.args)
    try:
        host.open_container(args.netns)
        if n.ipam_type:
            ipam.run("CHECK")
        prev = args.conf.get("prevResult")
        if not isinstance(prev, dict):
            raise internal("Required prevResult missing")
        result = from_any(prev, args.version)
        _check(host, args, n, result)
    finally:
        host.close()


def _check(host, args, n: NetConf, result: dict) -> None:
    br_map = next((i for i in result["interfaces"] if i.get("name") == n.bridge), None)
    cont = next((i for i in result["interfaces"] if i.get("name") == args.ifname
                 and i.get("sandbox") == args.netns), None)
    br = host.link("host", n.bridge)
    if br is None or br_map is None:
        raise internal(f"CNI created bridge {n.bridge} in host namespace was not found")
    if br.kind != "bridge":
        raise internal(f"Error: Bridge interface {n.bridge} not a bridge")
    if br_map.get("mac") and br.mac != br_map["mac"]:
        raise internal(f"Bridge interface {n.bridge} Mac doesn't match: {br_map['mac']}")
    if n.promiscMode != br.promisc:
        raise internal(f"Bridge interface {n.bridge} promiscuous mode does not match config")
    if cont is None:
        raise internal(f"Sandbox in prevResult  doesn't match configured netns: {args.netns}")
    link = host.link("ctr", args.ifname)
    if link is None:
        raise internal(f"CNI created interface in container {args.ifname} not found")
    if link.kind != "veth":
        raise internal(f"Error: Container interface {args.ifname} not of type veth")
    if cont.get("mac") and link.mac != cont["mac"]:
        raise internal(f"Interface {args.ifname} Mac {cont['mac']} doesn't match container Mac: {link.mac}")
    veth_found = False
    for iface in result["interfaces"]:
        if iface.get("name") in (n.bridge, args.ifname) or iface.get("sandbox"):
            continue
        peer = host.link("host", iface["name"])
        if peer is not None and peer.kind == "veth" and peer.master == br.index:
            veth_found = True
            break
    if not veth_found:
        raise internal(f"CNI veth created for bridge {n.bridge} was not found")
    have = {f"{ip}/{plen}" for ip, plen, _ in host.addrs("ctr", args.ifname)}
    gw_by_family: dict[int, str] = {}
    for ipc in result["ips"]:
        if ipc["address"] not in have:
            raise internal(f"Failed to match addr {ipc['address']} on interface {args.ifname}")
        if ipc.get("gateway"):
            gw_by_family.setdefault(parse_cidr(ipc["address"]).bits, ipc["gateway"])
    routes = set(host.routes("ctr", args.ifname))
    for route in result["routes"]:
        dst = parse_cidr(route["dst"])
        want = (f"{dst.network}/{dst.prefixlen}", route.get("gw") or gw_by_family.get(dst.bits))
        if want not in routes:
            raise internal(f"Expected Route {go_ipnet(dst)} via {want[1]} not found in routing table")


def handlers(make_host, make_ipam) -> dict:
    """skel handlers; ``make_host()`` gives a Host, ``make_ipam(args, plugin)`` the IPAM delegate."""
    def run(fn):
        def handler(args):
            ipam = (args.conf.get("ipam") or {}) if isinstance(args.conf.get("ipam"), dict) else {}
            return fn(make_host(), args, make_ipam(args, ipam.get("type", "")))
        return handler

    return {"ADD": run(cmd_add), "DEL": run(cmd_del), "CHECK": run(cmd_check),
            "STATUS": run(cmd_status), "GC": run(cmd_gc)}


def cmd_status(host, args, ipam) -> None:
    """STATUS (1.1.0): forwarded to IPAM, as the spec asks."""
    host.close()
    n = NetConf(args.conf, "")
    if n.ipam_type:
        ipam.run("STATUS")


def cmd_gc(host, args, ipam) -> None:
    """GC (1.1.0): forwarded to IPAM (stale reservations); masquerade chains of
    attachments that are not valid any more are removed too."""
    try:
        n = NetConf(args.conf, "")
        if n.ipam_type:
            ipam.run("GC")
        if n.ipMasq:
            from netlab.cni.hostlocal import valid_attachments
            from netlab.cni.masq import chain_name
            keep = {chain_name(n.name, cid) for cid, _ in valid_attachments(args.conf)}
            host.masq_gc(n.name, keep)
    finally:
        host.close()
