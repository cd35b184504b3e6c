"""CNI versions and results: one current form, converted to each spec version.

The current form is a dict shaped like a 1.1.0 result (``interfaces``, ``ips``
with ``interface`` index and ``gateway``, ``routes``, ``dns``).
``to_version`` produces what a plugin prints for a config's cniVersion
(0.1.0/0.2.0 ``ip4``/``ip6``, 0.3.x/0.4.0 with ``ips[].version``, 1.0.0,
1.1.0); ``from_any`` reads any of them back (a delegate's or a prevResult).
Output is formatted like Go's ``json.MarshalIndent`` with four spaces.
"""


from netlab.cni.errors import INCOMPATIBLE_VERSION, CniError, internal

REFERENCE_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
SUPPORTED_VERSIONS = REFERENCE_VERSIONS + ("1.1.0",)
CURRENT = "1.1.0"

ROUTE_KEYS_1_1 = ("mtu", "advmss", "priority", "table", "scope")
IFACE_KEYS_1_1 = ("mtu", "socketPath", "pciID")


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.split(".")
    if not 1 <= len(parts) <= 3:
        raise internal(f"invalid version {text!r}: the version is empty or too long")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise internal(f"failed to convert version parts of {text!r} to integers") from None
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


def at_least(version: str, than: str) -> bool:
    return parse_version(version) >= parse_version(than)


def go_quote_list(items) -> str:
    return "[" + " ".join(f'"{i}"' for i in items) + "]"


def check_supported(version: str, supported=SUPPORTED_VERSIONS) -> None:
    if version not in supported:
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f'config is "{version}", plugin supports {go_quote_list(supported)}')


def go_json(obj) -> str:
    """Go's json.MarshalIndent(obj, "", "    "): also escapes <, > and & as Go does."""
    from netlab.cni.fastjson import dumps_go
    return dumps_go(obj)


def go_compact(obj) -> str:
    from netlab.cni.fastjson import dumps_compact
    return dumps_compact(obj)


def _family(cidr_or_ip: str) -> str:
    return "6" if ":" in cidr_or_ip else "4"


def _route(route: dict, rich: bool) -> dict:
    out = {"dst": route["dst"]}
    if route.get("gw"):
        out["gw"] = route["gw"]
    if rich:
        for key in ROUTE_KEYS_1_1:
            if route.get(key) not in (None, "", 0):
                out[key] = route[key]
    return out


def _dns(dns: dict | None) -> dict:
    dns = dns or {}
    return {k: dns[k] for k in ("nameservers", "domain", "search", "options") if dns.get(k)}


def to_version(result: dict, version: str) -> dict:
    """The result as a plugin prints it for ``version`` (key order as the Go types)."""
    if version in ("0.1.0", "0.2.0"):
        return _to_020(result, version)
    rich = version == "1.1.0"
    out: dict = {"cniVersion": version}
    interfaces = []
    for iface in result.get("interfaces") or []:
        i = {"name": iface["name"]}
        if iface.get("mac"):
            i["mac"] = iface["mac"]
        if rich and iface.get("mtu"):
            i["mtu"] = iface["mtu"]
        if iface.get("sandbox"):
            i["sandbox"] = iface["sandbox"]
        if rich:
            for key in ("socketPath", "pciID"):
                if iface.get(key):
                    i[key] = iface[key]
        interfaces.append(i)
    if interfaces:
        out["interfaces"] = interfaces
    ips = []
    for ip in result.get("ips") or []:
        i = {}
        if not at_least(version, "1.0.0"):
            i["version"] = _family(ip["address"])
        if ip.get("interface") is not None:
            i["interface"] = ip["interface"]
        i["address"] = ip["address"]
        if ip.get("gateway"):
            i["gateway"] = ip["gateway"]
        ips.append(i)
    if ips:
        out["ips"] = ips
    routes = [_route(r, rich) for r in result.get("routes") or []]
    if routes:
        out["routes"] = routes
    out["dns"] = _dns(result.get("dns"))
    return out


def _to_020(result: dict, version: str) -> dict:
    out: dict = {"cniVersion": version}
    found = False
    for fam, key in (("4", "ip4"), ("6", "ip6")):
        ip = next((i for i in result.get("ips") or [] if _family(i["address"]) == fam), None)
        if ip is None:
            continue
        found = True
        block: dict = {"ip": ip["address"]}
        if ip.get("gateway"):
            block["gateway"] = ip["gateway"]
        routes = [_route(r, False) for r in result.get("routes") or [] if _family(r["dst"]) == fam]
        if routes:
            block["routes"] = routes
        out[key] = block
    if not found:
        raise internal("cannot convert: no valid IP addresses")
    out["dns"] = _dns(result.get("dns"))
    return out


def from_any(obj: dict, default_version: str) -> dict:
    """Read a result of any version (a delegate's output, a prevResult) into the current form."""
    if not isinstance(obj, dict):
        raise internal("failed to parse result: not a JSON object")
    version = obj.get("cniVersion") or default_version
    if version in ("0.1.0", "0.2.0") or "ip4" in obj or "ip6" in obj:
        ips, routes = [], []
        for key in ("ip4", "ip6"):
            block = obj.get(key)
            if not block:
                continue
            ip = {"address": block["ip"]}
            if block.get("gateway"):
                ip["gateway"] = block["gateway"]
            ips.append(ip)
            routes.extend(block.get("routes") or [])
        return {"ips": ips, "routes": routes, "dns": obj.get("dns") or {}}
    return {
        "interfaces": [dict(i) for i in obj.get("interfaces") or []],
        "ips": [{k: v for k, v in i.items() if k != "version"} for i in obj.get("ips") or []],
        "routes": [dict(r) for r in obj.get("routes") or []],
        "dns": dict(obj.get("dns") or {}),
    }
