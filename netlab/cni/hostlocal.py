"""host-local IPAM: configuration, allocation order and commands of the reference (1.1.1).

Pure file logic on a Store (netlab/cni/store.py); no netlink, no heavy imports.
Messages are the reference's (all code 999, as it returns them).

Allocation per range set: start after ``last_reserved_ip.N`` when that IP is
in the set, else at range 0's rangeStart; walk to rangeEnd, wrap to the next
range's start, skip the gateway and taken IPs; give up after one lap.

Better than the reference: the whole ADD holds the lock once, and an ADD
that fails (a later range set exhausted, a requested IP left over) puts
``last_reserved_ip`` back as it was, so a failed ADD changes nothing.
"""


from netlab.cni.errors import NOT_AVAILABLE, CniError, internal
from netlab.cni.ip import IP, Net, parse_cidr, parse_ip
from netlab.cni.store import LAST_PREFIX, LINE_BREAK, TMP_PREFIX, MemoryStore, Store  # noqa: F401


class Range:
    __slots__ = ("subnet", "start", "end", "gateway")

    def __init__(self, subnet: Net, start: IP | None, end: IP | None, gateway: IP | None):
        self.subnet, self.start, self.end, self.gateway = subnet, start, end, gateway

    def contains(self, ip: IP) -> bool:
        if not self.subnet.contains(ip):
            return False
        if self.start is not None and ip.value < self.start.value:
            return False
        if self.end is not None and ip.value > self.end.value:
            return False
        return True

    def overlaps(self, other: "Range") -> bool:
        if self.start.bits != other.start.bits:
            return False
        return (self.contains(other.start) or self.contains(other.end)
                or other.contains(self.start) or other.contains(self.end))

    def canonicalize(self) -> None:
        net = self.subnet
        if net.prefixlen > net.bits - 2:
            raise ValueError(f"Network {net} too small to allocate from")
        if net.ip != net.network:
            raise ValueError("Network has host bits set. For a subnet mask of length "
                             f"{net.prefixlen} the network address is {net.network}")
        if self.gateway is None:
            self.gateway = net.network.next()
        if self.start is not None:
            if not self.contains(self.start):
                raise ValueError(f"RangeStart {self.start} not in network {net}")
        else:
            self.start = net.network.next()
        if self.end is not None:
            if not self.contains(self.end):
                raise ValueError(f"RangeEnd {self.end} not in network {net}")
        else:
            last = net.last
            self.end = IP(last.bits, last.value - 1) if last.v4 else last

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


class RangeSet(list):
    def contains(self, ip: IP) -> bool:
        return any(r.contains(ip) for r in self)

    def range_for(self, ip: IP) -> Range:
        for r in self:
            if r.contains(ip):
                return r
        raise ValueError(f"{ip} not in range set {self}")

    def overlaps(self, other: "RangeSet") -> bool:
        return any(a.overlaps(b) for a in self for b in other)

    def canonicalize(self) -> None:
        if not self:
            raise ValueError("empty range set")
        for r in self:
            r.canonicalize()
            if r.start.bits != self[0].start.bits:
                raise ValueError("mixed address families")
        for i, a in enumerate(self[:-1]):
            for b in self[i + 1:]:
                if a.overlaps(b):
                    raise ValueError(f"subnets {a} and {b} overlap")

    def __str__(self) -> str:
        return ",".join(str(r) for r in self)


def _ip_field(value, what: str = "IP address") -> IP | None:
    if value is None or value == "":
        return None
    ip = parse_ip(value) if isinstance(value, str) else None
    if ip is None:
        raise internal(f"invalid {what}: {value}")
    return ip


def _range(obj) -> Range:
    if not isinstance(obj, dict):
        raise internal("json: cannot unmarshal into Go value of type allocator.Range")
    subnet = parse_cidr(obj.get("subnet", ""))
    if subnet is None:
        raise internal(f"invalid CIDR address: {obj.get('subnet', '')}")
    return Range(subnet, _ip_field(obj.get("rangeStart")), _ip_field(obj.get("rangeEnd")),
                 _ip_field(obj.get("gateway")))


def _route(obj) -> dict:
    dst = parse_cidr(obj.get("dst", "")) if isinstance(obj, dict) else None
    if dst is None:
        raise internal(f"invalid CIDR address: {obj.get('dst', '') if isinstance(obj, dict) else obj}")
    route = {"dst": str(dst)}
    gw = _ip_field(obj.get("gw"))
    if gw is not None:
        route["gw"] = str(gw)
    for key in ("mtu", "advmss", "priority", "table", "scope"):
        if obj.get(key) is not None:
            route[key] = obj[key]
    return route


class IpamConfig:
    def __init__(self, name: str, version: str, ipam: dict, ranges: list[RangeSet],
                 requested: list[IP], routes: list[dict]):
        self.name, self.version, self.ipam = name, version, ipam
        self.ranges, self.requested, self.routes = ranges, requested, routes

    @property
    def data_dir(self) -> str:
        return self.ipam.get("dataDir") or ""


def load_config(conf: dict, cni_args: str) -> IpamConfig:
    """LoadIPAMConfig: ranges (runtime ipRanges, legacy subnet, ranges), requested IPs, checks."""
    from netlab.cni.skel import parse_cni_args
    from netlab.cni.types import at_least

    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise internal("IPAM config missing 'ipam' key")
    requested: list[IP] = []
    env = parse_cni_args(cni_args, ("IP",))
    if env.get("IP"):
        text = env["IP"]
        ip = parse_ip(text)
        if ip is None and parse_cidr(text) is not None:
            ip = parse_cidr(text).ip
        if ip is None:
            raise internal(f'ARGS: error parsing value of pair "IP={text}": invalid IP address {text}')
        requested.append(ip)
    args_ips = ((conf.get("args") or {}).get("cni") or {}).get("ips") or []
    runtime = conf.get("runtimeConfig") or {}
    for text in list(args_ips) + list(runtime.get("ips") or []):
        ip = parse_ip(text) if isinstance(text, str) else None
        if ip is None and isinstance(text, str) and "/" in text:
            net = parse_cidr(text)
            ip = net.ip if net else None
        if ip is None:
            raise internal(f"invalid IP address: {text}")
        requested.append(ip)
    sets: list[RangeSet] = [RangeSet(_range(r) for r in rs) for rs in runtime.get("ipRanges") or []]
    if ipam.get("subnet"):
        sets.append(RangeSet([_range(ipam)]))
    sets += [RangeSet(_range(r) for r in rs) for rs in ipam.get("ranges") or []]
    if not sets:
        raise internal("no IP ranges specified")
    v4 = v6 = 0
    for i, rs in enumerate(sets):
        try:
            rs.canonicalize()
        except ValueError as exc:
            raise internal(f"invalid range set {i}: {exc}") from None
        if rs[0].start.v4:
            v4 += 1
        else:
            v6 += 1
    version = conf.get("cniVersion") or ""
    if v4 > 1 or v6 > 1:
        try:
            ok = at_least(version, "0.3.0")
        except CniError:
            ok = False
        if not ok:
            raise internal(f"CNI version {version} does not support more than 1 address per family")
    for i, a in enumerate(sets[:-1]):
        for j, b in enumerate(sets[i + 1:]):
            if a.overlaps(b):
                raise internal(f"range set {i} overlaps with {i + j + 1}")
    routes = [_route(r) for r in ipam.get("routes") or []]
    return IpamConfig(conf["name"], version, ipam, sets, requested, routes)


def parse_resolv_conf(path: str) -> dict:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise internal(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    dns: dict = {}
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        if fields[0] == "nameserver":
            dns.setdefault("nameservers", []).append(fields[1])
        elif fields[0] == "domain":
            dns["domain"] = fields[1]
        elif fields[0] in ("search", "options"):
            dns.setdefault(fields[0], []).extend(fields[1:])
    return dns


def _iterate(rs: RangeSet, last: IP | None):
    """The reference's RangeIter: (ip, range) in allocation order, one lap."""
    if last is not None and rs.contains(last):
        idx = next(i for i, r in enumerate(rs) if r.contains(last))
        cur, start = last, None
    else:
        idx, cur, start = 0, None, None
    while True:
        r = rs[idx]
        if cur is None:
            cur = r.start
            start = cur
        else:
            if cur == r.end:
                idx = (idx + 1) % len(rs)
                r = rs[idx]
                cur = r.start
            else:
                cur = cur.next()
            if start is None:
                start = cur
            elif cur == start:
                return
        if cur != r.gateway:
            yield cur, r


def allocate(store: Store, rs: RangeSet, range_id: int, container_id: str, ifname: str,
             requested: IP | None) -> dict:
    if requested is not None:
        try:
            r = rs.range_for(requested)
        except ValueError as exc:
            raise internal(str(exc)) from None
        if requested == r.gateway:
            raise internal(f"requested ip {requested} is subnet's gateway")
        if not store.reserve(container_id, ifname, str(requested), range_id):
            raise internal(f"requested IP address {requested} is not available in range set {rs}")
        return {"address": f"{requested}/{r.subnet.prefixlen}", "gateway": str(r.gateway)}
    for name in store.get_by_id(container_id, ifname):
        ip = parse_ip(name)
        if rs.contains(ip):
            raise internal(f"{ip} has been allocated to {container_id}, "
                           "duplicate allocation is not allowed")
    last = parse_ip((store.last_reserved(range_id) or "").strip())
    for ip, r in _iterate(rs, last):
        if store.reserve(container_id, ifname, str(ip), range_id):
            return {"address": f"{ip}/{r.subnet.prefixlen}", "gateway": str(r.gateway)}
    raise internal(f"no IP addresses available in range set: {rs}")


def open_store(conf: IpamConfig, memory: dict | None = None) -> Store:
    """The reservations of this network: see store.store_for."""
    from netlab.cni.store import store_for
    return store_for(memory, conf.data_dir, conf.name)


def cmd_add(conf: IpamConfig, store: Store, container_id: str, ifname: str,
            saved_out: dict | None = None) -> dict:
    """Allocate one address per range set; on failure undo everything this call did.
    ``saved_out`` receives ``last_reserved_ip.N`` as they were (for a caller's undo)."""
    result: dict = {"ips": [], "routes": conf.routes, "dns": {}}
    if conf.ipam.get("resolvConf"):
        result["dns"] = parse_resolv_conf(conf.ipam["resolvConf"])
    store.lock()
    try:
        saved = {i: store.last_reserved(i) for i in range(len(conf.ranges))}
        if saved_out is not None:
            saved_out.update({LAST_PREFIX + str(i): v for i, v in saved.items() if v is not None})
        requested = {str(ip): ip for ip in conf.requested}
        done = False
        try:
            for idx, rs in enumerate(conf.ranges):
                want = next((k for k, ip in requested.items() if rs.contains(ip)), None)
                ip = requested.pop(want) if want is not None else None
                try:
                    result["ips"].append(allocate(store, rs, idx, container_id, ifname, ip))
                except CniError as exc:
                    raise internal(f"failed to allocate for range {idx}: {exc.msg}") from None
            if requested:
                raise internal("failed to allocate all requested IPs: " + " ".join(requested))
            done = True
        finally:
            if not done:            # release only what this call reserved
                for ipc in result["ips"]:
                    store.remove(ipc["address"].split("/")[0])
                for i, text in saved.items():
                    if text is None:
                        store.remove(LAST_PREFIX + str(i))
                    else:
                        store.write(LAST_PREFIX + str(i), text)
    finally:
        store.close()
    return result


def cmd_del(store: Store, container_id: str, ifname: str) -> None:
    store.lock()
    try:
        store.release_by_id(container_id, ifname)
    finally:
        store.close()


def cmd_check(store: Store, container_id: str, ifname: str) -> None:
    store.lock()
    try:
        if not store.find_by_id(container_id, ifname):
            raise internal(f"host-local: Failed to find address added by container {container_id}")
    finally:
        store.close()


def valid_attachments(conf: dict) -> set[tuple[str, str]]:
    items = conf.get("cni.dev/valid-attachments")
    if items is None:
        items = conf.get("cni.dev/attachments") or []
    return {(str(a.get("containerID", "")), str(a.get("ifname", ""))) for a in items
            if isinstance(a, dict)}


def cmd_gc(conf: IpamConfig, store: Store, valid: set[tuple[str, str]]) -> list[str]:
    """GC (1.1.0): release every reservation whose attachment is not valid; returns them."""
    keep_full = {cid.strip() + LINE_BREAK + ifn for cid, ifn in valid}
    keep_ids = {cid.strip() for cid, _ in valid}
    removed = []
    store.lock()
    try:
        for name, content in store.reservations().items():
            text = content.strip()
            if text in keep_full or text in keep_ids:
                continue
            store.remove(name)
            if not name.startswith(TMP_PREFIX):
                removed.append(name)
    finally:
        store.close()
    return removed


def cmd_status(conf: IpamConfig, store: Store) -> None:
    """STATUS (1.1.0): an error (code 50) when some range set has no free address."""
    store.lock()
    try:
        for idx, rs in enumerate(conf.ranges):
            if not any(store.read(str(ip)) is None for ip, _ in _iterate(rs, None)):
                raise CniError(NOT_AVAILABLE, f"no IP addresses available in range set: {rs}")
    finally:
        store.close()


def handlers(memory: dict | None = None, saved_out: dict | None = None) -> dict:
    """The skel handlers of host-local; ``memory`` keeps the files in a dict instead of
    dataDir; ``saved_out`` receives last_reserved_ip as it was before an ADD."""
    def add(args):
        conf = load_config(args.conf, args.args)
        return cmd_add(conf, open_store(conf, memory), args.container_id, args.ifname, saved_out)

    def delete(args):
        conf = load_config(args.conf, args.args)
        cmd_del(open_store(conf, memory), args.container_id, args.ifname)

    def check(args):
        conf = load_config(args.conf, args.args)
        cmd_check(open_store(conf, memory), args.container_id, args.ifname)

    def gc(args):
        conf = load_config(args.conf, "")
        cmd_gc(conf, open_store(conf, memory), valid_attachments(args.conf))

    def status(args):
        conf = load_config(args.conf, "")
        cmd_status(conf, open_store(conf, memory))

    return {"ADD": add, "DEL": delete, "CHECK": check, "GC": gc, "STATUS": status}
