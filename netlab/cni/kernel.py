"""The bridge plugin's Host on a real kernel: rtnetlink sockets in the host and
container namespaces, sysctls under /proc/sys/net, iptables-restore.

The process runs in the host namespace (where the runtime started it); a
netlink socket made after ``setns`` into the container stays bound to the
container, so only sysctl writes need to switch namespaces, and each
switches straight back.
"""


import posix
import time

from netlab.cni.errors import internal
from netlab.cni.ip import IP, Net, go_ipnet, parse_cidr, parse_ip
from netlab.cni.netlink import IFF_PROMISC, IFF_UP, RTM_NEWADDR, RTM_NEWLINK, Netlink, ifinfo, setns

EEXIST = 17
PORT_RETRIES_MS = (0, 50, 500, 1000, 1000)
# Read first and written only when they differ, as the reference's EnableIP4Forward and
# EnableIP6Forward do (observed: it opens ip_forward read-only when it is already 1).
READ_FIRST = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding")


def _err(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _ipc_text(ipc: dict) -> str:
    """How Go's %v prints a current.IPConfig (for the reference's messages)."""
    addr = parse_cidr(ipc["address"])
    return "{Interface:%s Address:%s Gateway:%s}" % (
        ipc.get("interface"), go_ipnet(addr) if addr else ipc["address"], ipc.get("gateway") or "<nil>")


class KernelHost:
    def __init__(self):
        self.host_fd = posix.open("/proc/self/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
        self.host = Netlink()
        self.ctr_fd = -1
        self.ctr: Netlink | None = None
        self._ipt = None
        # Links this ADD made or looked up, by (side, name): their index and MAC do not
        # change while it runs (only the bridge's MAC may, and that one is never kept).
        self._made: dict = {}
        self.bridge: tuple[str, int, str] | None = None   # (name, index, MAC) as ensure_bridge found it
        self._enslaved: tuple[str, str] | None = None     # (veth, bridge) joined when it was made
        self._port_up: dict = {}                          # host veth -> its link once wait_port_up saw it up

    # --- namespaces ----------------------------------------------------------------------
    def netns_exists(self, path: str) -> bool:
        from netlab.cni.sysos import exists
        return exists(path)

    def open_container(self, path: str) -> None:
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as exc:
            raise internal(f'failed to open netns "{path}": failed to Statfs "{path}": {_err(exc)}') from None
        try:
            setns(fd)
        except OSError:
            posix.close(fd)
            raise internal(f'failed to open netns "{path}": unknown FS magic on "{path}"') from None
        try:
            self.ctr = Netlink()
        finally:
            setns(self.host_fd)
        self.ctr_fd = fd

    def close(self) -> None:
        for nl in (self.ctr, self.host):
            if nl is not None:
                nl.close()
        self.ctr = None
        for fd in (self.ctr_fd, self.host_fd):
            if fd >= 0:
                posix.close(fd)
        self.ctr_fd = self.host_fd = -1

    def _nl(self, side: str) -> Netlink:
        return self.ctr if side == "ctr" else self.host

    def sysctl(self, side: str, key: str, value: str) -> None:
        if side == "host" and key in READ_FIRST and self._read_sysctl(key) == value:
            return
        self._sysctls(side, ((key, value),))

    def _sysctls(self, side: str, pairs) -> None:
        """Write each (key, value) under /proc/sys, in the container's namespace for "ctr"
        (one switch there and back for all of them)."""
        if side == "ctr":
            setns(self.ctr_fd)
        try:
            for key, value in pairs:
                try:               # posix, not open(): no text and buffer layers (~0.1 ms each)
                    fd = posix.open("/proc/sys/" + key, posix.O_WRONLY | posix.O_CLOEXEC)
                    try:
                        posix.write(fd, value.encode())
                    finally:
                        posix.close(fd)
                except OSError:
                    pass           # the reference ignores these errors too
        finally:
            if side == "ctr":
                setns(self.host_fd)

    def _read_sysctl(self, key: str) -> str | None:
        try:
            fd = posix.open("/proc/sys/" + key, posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                return posix.read(fd, 4096).decode().strip()
            finally:
                posix.close(fd)
        except OSError:
            return None

    # --- links ---------------------------------------------------------------------------
    def link(self, side: str, name: str):
        # The host veth as wait_port_up last saw it: nothing of this ADD changes it after that.
        if side == "host" and name in self._port_up:
            return self._port_up[name]
        return self._nl(side).link(name)

    def ensure_bridge(self, name: str, mtu: int, promisc: bool, vlan_filtering: bool) -> bool:
        # Looked up first: the bridge is there on every ADD but the first, and a lookup is
        # one read where a refused create and then a lookup are two round trips.
        created = False
        link = self.host.link(name)
        if link is None:
            try:
                self.host.add_bridge(name, mtu, vlan_filtering)
                created = True
            except OSError as exc:
                if exc.errno != EEXIST:
                    raise
            link = self.host.link(name)
        if link is None:
            raise ValueError(f'could not lookup "{name}": Link not found')
        if link.kind != "bridge":
            raise ValueError(f'"{name}" already exists but is not a bridge')
        self.bridge = (name, link.index, link.mac)   # ensure_bridge_addr sets this MAC back, as the reference does
        if promisc and not link.promisc:
            self.host.set_flags(link.index, IFF_PROMISC, IFF_PROMISC)
        self.sysctl("host", f"net/ipv6/conf/{name}/accept_ra", "0")
        if not link.up:
            self.host.set_flags(link.index, IFF_UP, IFF_UP)
        return created

    def _index(self, side: str, name: str) -> int | None:
        known = self._made.get((side, name))
        if known is not None:
            return known.index
        link = self._nl(side).link(name)
        return link.index if link is not None else None

    def add_veth(self, ifname: str, mtu: int, mac: str) -> str:
        from netlab.cni.bridge import random_veth_name
        # This end comes up and joins the bridge ensure_bridge found in the same request
        # (the reference sets both ends up, then the port's master, next).
        master = self.bridge[1] if self.bridge is not None else 0
        for _ in range(10):
            name = random_veth_name()
            try:
                self.host.add_veth(name, ifname, self.ctr_fd, mtu, mac or None, up=True, master=master)
                break
            except OSError as exc:
                if exc.errno != EEXIST and master:   # maybe joining the bridge failed: again
                    master = 0                       # without, so attach_port says why
                    try:
                        self.host.add_veth(name, ifname, self.ctr_fd, mtu, mac or None, up=True)
                        break
                    except OSError as again:
                        exc = again
                if exc.errno == EEXIST:
                    if self.host.link(name) is not None:
                        continue
                    raise internal(f"container veth name provided ({ifname}) already exists") from None
                raise internal(f"failed to make veth pair: {_err(exc)}") from None
        else:
            raise internal("failed to find a unique veth name")
        if master:
            self._enslaved = (name, self.bridge[0])
        self._made["ctr", ifname] = self.ctr.up_by_name(ifname)
        self.sysctl("host", f"net/ipv6/conf/{name}/accept_ra", "0")
        return name

    def attach_port(self, name: str, bridge: str, hairpin: bool, vlan: int) -> None:
        if self._enslaved != (name, bridge):
            try:
                self.host.set_master(self._index("host", name), self._index("host", bridge))
            except OSError as exc:
                raise internal(f'failed to connect "{name}" to bridge {bridge}: {_err(exc)}') from None
        # The reference sets hairpin mode either way; a new bridge port starts with it off,
        # so only "on" changes anything.
        if hairpin:
            try:
                self.host.set_hairpin(self._index("host", name), hairpin)
            except OSError as exc:
                raise internal(f"failed to setup hairpin mode for {name}: {_err(exc)}") from None
        if vlan:
            raise internal(f'failed to setup vlan tag on interface "{name}": operation not supported')

    def set_up(self, side: str, name: str) -> None:
        nl = self._nl(side)
        link = nl.link(name)
        if link is None:
            raise internal("failed to retrieve link: Link not found")
        nl.set_flags(link.index, IFF_UP, IFF_UP)

    def del_link(self, side: str, name: str) -> None:
        nl = self._nl(side)
        if nl is None:
            return
        link = nl.link(name)
        if link is not None:
            nl.del_link(link.index)

    def container_mac(self, ifname: str) -> str:
        known = self._made.get(("ctr", ifname))
        return known.mac if known is not None else self.ctr.link(ifname).mac

    def wait_port_up(self, name: str) -> None:
        """The host veth's operstate must reach UP. The reference looks after 0, 50,
        500, 1000 and 1000 ms; polling every 2 ms within the same 2.55 s answers the
        same question without sleeping 50 ms when the kernel is a millisecond late."""
        deadline = time.monotonic() + sum(PORT_RETRIES_MS) / 1000
        while True:
            link = self.host.link(name)
            if link is None:
                raise internal(f"Link not found: {name}")
            if link.oper_up:
                self._port_up[name] = link
                return
            if time.monotonic() > deadline:
                raise internal("bridge port in error state: down")
            time.sleep(0.002)

    # --- addresses and routes ------------------------------------------------------------
    def configure_container(self, ifname: str, result: dict, enabledad: bool) -> None:
        """The reference's steps (sysctls, addresses, link up, routes), with the sysctls
        written in one visit to the container's namespace and the netlink requests sent
        in one batch (a failed one fails the ADD, which then removes the veth)."""
        sysctls = ([(f"net/ipv6/conf/{ifname}/enhanced_dad", "1"), (f"net/ipv6/conf/{ifname}/accept_dad", "1")]
                   if enabledad else [(f"net/ipv6/conf/{ifname}/accept_dad", "0")])
        sysctls.append((f"net/ipv4/conf/{ifname}/arp_notify", "1"))
        addrs = [(ipc, parse_cidr(ipc["address"])) for ipc in result["ips"]]
        if any(addr.bits == 128 for _, addr in addrs):
            sysctls += [(f"net/ipv6/conf/{dev}/disable_ipv6", "0") for dev in ("lo", ifname)]
        self._sysctls("ctr", sysctls)
        link = self._made.get(("ctr", ifname)) or self.ctr.link(ifname)
        if link is None:
            raise internal(f'failed to lookup "{ifname}": Link not found')
        gws: dict[int, IP] = {}
        requests, failures = [], []
        for ipc, addr in addrs:
            requests.append(self.ctr.addr_message(RTM_NEWADDR, link.index, addr.ip, addr.prefixlen))
            failures.append(f'failed to add IP addr {_ipc_text(ipc)} to "{ifname}"')
            if ipc.get("gateway"):
                gws.setdefault(addr.bits, parse_ip(ipc["gateway"]))
        if not link.up:                    # made up with the veth; set up as the reference does if not
            requests.append((RTM_NEWLINK, 0, ifinfo(link.index, IFF_UP, IFF_UP)))
            failures.append(None)
        for route in result["routes"]:
            dst = parse_cidr(route["dst"])
            gw = parse_ip(route["gw"]) if route.get("gw") else gws.get(dst.bits)
            requests.append(self.ctr.route_message(Net(dst.network, dst.prefixlen), gw, link.index))
            failures.append(f"failed to add route '{go_ipnet(dst)} via {gw if gw else '<nil>'} dev {ifname}'")
        for err, what in zip(self.ctr.batch(requests), failures):
            if err:
                exc = OSError(err, posix.strerror(err))
                if what is None:
                    raise exc
                raise internal(f"{what}: {_err(exc)}")

    def ensure_bridge_addr(self, bridge: str, gw: Net, force: bool) -> None:
        if self.bridge is not None and self.bridge[0] == bridge:
            _, index, mac = self.bridge
        else:
            br = self.host.link(bridge)
            index, mac = br.index, br.mac
        want = str(gw)
        for ip, plen, _ in self.host.addrs(index):
            have = Net(parse_ip(ip), plen)
            if have.bits != gw.bits:
                continue
            if str(have) == want:
                return
            if gw.bits == 32 or have.contains(gw.ip) or gw.contains(have.ip):
                if not force:
                    raise ValueError(f'"{bridge}" already has an IP address different from {want}')
                self.host.del_addr(index, have.ip, have.prefixlen)
        try:
            self.host.add_addr(index, gw.ip, gw.prefixlen)
        except OSError as exc:
            if exc.errno != EEXIST:
                raise ValueError(f'could not add IP address to "{bridge}": {_err(exc)}') from None
        # The reference sets the MAC it read before the first port joined, which
        # pins the bridge's MAC (it no longer follows its lowest port).
        self.host.set_mac(index, mac)

    def addrs(self, side: str, name: str) -> list[tuple[str, int, int]]:
        nl = self._nl(side)
        link = nl.link(name)
        return nl.addrs(link.index) if link else []

    def routes(self, side: str, name: str) -> list[tuple[str, str | None]]:
        nl = self._nl(side)
        link = nl.link(name)
        return nl.routes(link.index) if link else []

    def del_container_link(self, ifname: str) -> list[Net]:
        """Delete CNI_IFNAME in the container; its global addresses (for the masquerade teardown)."""
        link = self.ctr.link(ifname)
        if link is None:
            return []
        addrs = [Net(parse_ip(ip), plen) for ip, plen, scope in self.ctr.addrs(link.index) if scope == 0]
        self.ctr.del_link(link.index)
        return addrs

    # --- iptables ------------------------------------------------------------------------
    def _iptables(self):
        if self._ipt is None:
            from netlab.cni.masq import KernelIptables
            self._ipt = KernelIptables()
        return self._ipt

    def masq_setup(self, net: Net, chain: str, note: str) -> None:
        from netlab.cni.masq import setup
        setup(self._iptables(), net, chain, note)

    def masq_teardown(self, nets: list[Net], chain: str, note: str, whole: bool) -> None:
        from netlab.cni.masq import teardown
        teardown(self._iptables(), nets, chain, note, whole)

    def masq_gc(self, network: str, keep: set[str]) -> None:
        from netlab.cni.masq import gc
        gc(self._iptables(), network, keep)

    def masq_teardown_stale(self, chain: str, note: str) -> None:
        from netlab.cni.masq import teardown_stale
        live = {ip for link in self.ctr.links() for ip, _, _ in self.ctr.addrs(link.index)}
        teardown_stale(self._iptables(), live, chain, note)

    # --- macspoofchk: nftables, as the reference's SpoofChecker -------------------------------
    def spoofchk_setup(self, host_veth: str, mac: str, uid: str) -> None:
        from netlab.cni.proc import run
        chain, note = f"cni-br-iface-{uid}", f'comment "macspoofchk-{uid}"'
        payload = "\n".join([
            "add table bridge nat",
            "add chain bridge nat PREROUTING { type filter hook prerouting priority dstnat; policy accept; }",
            f"add chain bridge nat {chain}",
            f"add chain bridge nat {chain}-mac",
            f'add rule bridge nat PREROUTING iifname "{host_veth}" jump {chain} {note}',
            f"add rule bridge nat {chain} jump {chain}-mac {note}",
            f"add rule bridge nat {chain}-mac ether saddr {mac} return {note}",
            f"add rule bridge nat {chain}-mac drop {note}", ""])
        rc, _, err = run(["nft", "-f", "-"], payload.encode())
        if rc != 0:
            raise internal(f"failed to setup mac spoof check: {err.decode(errors='replace').strip()}")

    def spoofchk_teardown(self, uid: str) -> None:
        from netlab.cni.proc import run
        rc, out, _ = run(["nft", "-a", "list", "table", "bridge", "nat"])
        if rc != 0:
            return
        chain, note = f"cni-br-iface-{uid}", f'comment "macspoofchk-{uid}"'
        lines, current, chains = [], None, set()
        for line in out.decode(errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["chain"]:
                current = words[1]
                chains.add(current)
            elif current == "PREROUTING" and note in line and "# handle" in line:
                lines.append(f"delete rule bridge nat PREROUTING handle {line.rsplit('handle', 1)[1].strip()}")
        for c in (chain, chain + "-mac"):
            if c in chains:
                lines += [f"flush chain bridge nat {c}", f"delete chain bridge nat {c}"]
        if lines:
            run(["nft", "-f", "-"], ("\n".join(lines) + "\n").encode())
