"""The emulated kubelet: a pod's network namespace, its network, its listeners and
its /etc/resolv.conf.

A pod's namespace is called ``<namespace>.<pod>`` on its node (a dot never appears
in a Kubernetes namespace's name, so the names cannot collide), e.g. ``node1/shop.frontend-…``.

Attaching a pod is one function, ``attach_pod``: the container runtime creates the
namespace, runs the loopback plugin (``lo`` up) and then the CNI network: the
``bridge`` plugin with ``host-local`` IPAM, run in-process by ``netlab.cni.invoke``
with the network configuration flannel's plugin hands it (``netconf``) and the
CNI_ARGS kubelet sets (``cni_args``). What the plugin does (veth, addresses,
routes, the bridge's gateway address, ip_forward) is whatever netlab's bridge
plugin does, so a cluster's pods are wired exactly as the CNI lab's are.

A cluster build attaches its pods with ``attach_pods``, where each node's kubelet
(``NodeKubelet``) replays the plugin's run instead of running it when the plugin
would do the very same (netlab.cni.replay): the first nodes run the plugin in full
for their first two pods (the first creates cni0, the second shows the steady state);
those runs become templates, trusted once two nodes gave the same; a later node's
first and second pods are replayed when the node's state matches, but for its own
values, the state those runs started from, and every further pod while the node is
as the replays left it. The same World and the same Ops come out (the oracle:
tests/unit/test_k8s_cni_replay.py). ``NETLAB_CNI_REPLAY=0`` (or ``attach_pods(...,
replay=False)``) runs the plugin in full for every pod, to compare.
"""

from __future__ import annotations

import hashlib
from socket import inet_aton

from netlab import ops as O
from netlab.errors import LabError
from netlab.k8s.cluster import Cluster, Node
from netlab.k8s.objects import Pod
from netlab.model import ns_key

BRIDGE = "cni0"
IFNAME = "eth0"
NETWORK_NAME = "cbr0"                   # flannel's network name in /etc/cni/net.d
# host-local's default data dir. Each node keeps its own files (World.files[node]), as
# each machine has its own /var/lib: the dataDir is per node by being on the node.
DATA_DIR = "/var/lib/cni/networks"


def netns_name(pod: Pod) -> str:
    return f"{pod.namespace}.{pod.name}"


def netns_path(pod: Pod) -> str:
    """CNI_NETNS as the runtime passes it (a bind mount named after the namespace)."""
    return f"/var/run/netns/{netns_name(pod)}"


def pod_netns_key(pod: Pod) -> str:
    return ns_key(pod.node, netns_name(pod)) if not pod.host_network else ns_key(pod.node)


def container_id(pod: Pod) -> str:
    """The sandbox's id: 64 hex digits, derived from the pod so every run agrees."""
    return hashlib.sha256(f"sandbox:{pod.namespace}/{pod.name}".encode()).hexdigest()


def netconf(cluster: Cluster, node: Node) -> dict:
    """The bridge plugin's configuration on ``node``, as flannel's CNI plugin builds it
    from kube-flannel's cni-conf.json (``delegate: {hairpinMode, isDefaultGateway}``)
    and flanneld's subnet.env, and passes it on (flannel-io/cni-plugin, flannel_linux.go):

    - ``isGateway`` true (flannel's default for a bridge delegate; isDefaultGateway
      implies it): cni0 gets the range's .1 and the node forwards;
    - ``ipMasq`` false: flannel sets it to the opposite of flanneld's ``--ip-masq``, and
      kube-flannel.yml runs flanneld with ``--ip-masq`` (flanneld masquerades traffic
      leaving the pod network itself), so the plugin adds no CNI- chain. kubenet's
      bridge config has ``"ipMasq": false`` too (kubelet's ``--non-masquerade-cidr``
      rule does the job there);
    - ``mtu``: flanneld's FLANNEL_MTU, the VTEP's for vxlan (1450), eth0's otherwise;
    - ``ipam``: host-local on the node's podCIDR, with a route to the whole pod
      network (the flannel network); the default route comes from isDefaultGateway.
    """
    from netlab.k8s.build import VXLAN_MTU
    conf = {
        "cniVersion": "1.0.0", "name": NETWORK_NAME, "type": "bridge", "bridge": BRIDGE,
        "isGateway": True, "isDefaultGateway": True, "ipMasq": False, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                 "routes": [{"dst": cluster.spec.pod_cidr}], "dataDir": DATA_DIR},
    }
    if cluster.spec.network == "vxlan":
        conf["mtu"] = VXLAN_MTU
    return conf


def cni_args(pod: Pod, cid: str | None = None) -> str:
    """CNI_ARGS as kubelet sets them (pkg/kubelet/dockershim/network/cni, in its order)."""
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={cid or container_id(pod)}")


def attach_pod(backend, cluster: Cluster, pod: Pod, node: Node | None = None) -> dict | None:
    """Start ``pod``'s sandbox on ``backend`` (a ModelBackend, or anything with its
    ``world`` and ``apply``) as the runtime and the CNI plugins do, and open the
    listeners of its containers' ports. Returns the bridge plugin's result (None for a
    hostNetwork pod). The plugin's address must be the one the control plane gave the
    pod (both follow host-local's order): a difference is a bug, reported as such."""
    result = None
    if not pod.host_network:
        node = node or cluster.node(pod.node)
        result = _sandbox(backend, cluster, pod, node, netconf(cluster, node))
    for op in listener_ops(pod):
        backend.apply(op)
    return result


def _sandbox(backend, cluster: Cluster, pod: Pod, node: Node, conf: dict) -> dict:
    """The namespace, lo and the CNI network of a pod: the full plugin run."""
    from netlab.cni import CniError, invoke
    backend.apply(O.AddNetns(node.name, netns_name(pod)))
    backend.apply(O.SetLinkUp(pod_netns_key(pod), "lo", True))    # the loopback plugin
    try:
        result = invoke(backend, "ADD", conf, container_id=container_id(pod),
                        netns=netns_path(pod), ifname=IFNAME, node=node.name,
                        cni_args=cni_args(pod))
    except CniError as exc:
        raise LabError(f"pod {pod.key} on {node.name}: the bridge plugin failed: {exc.msg}",
                       path=cluster.spec.path) from None
    got = [ip["address"].split("/")[0] for ip in result.get("ips", [])]
    if got != [pod.ip]:
        raise LabError(f"pod {pod.key} on {node.name}: host-local gave {got}, the control "
                       f"plane expected {pod.ip}", path=cluster.spec.path)
    return result


def replay_enabled() -> bool:
    """The CNI replay (see the module's docstring) unless NETLAB_CNI_REPLAY=0."""
    import os
    value = os.environ.get("NETLAB_CNI_REPLAY", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def attach_pods(rec, cluster: Cluster, pods=None, replay: bool | None = None) -> None:
    """``attach_pod`` for each pod (default: the cluster's, in placement order) on ``rec``
    (netlab.k8s.build.Recorder), replaying a steady-state plugin run where the plugin
    would do the same again (``NodeKubelet``); ``replay`` False (or NETLAB_CNI_REPLAY=0)
    runs the plugin for every pod."""
    kubelets = Kubelets(rec, cluster, replay)
    try:
        for pod in cluster.pods if pods is None else pods:
            kubelets.attach(pod)
    finally:
        kubelets.close()


class Kubelets:
    """The kubelets of the nodes of one cluster build on ``rec`` (a Recorder: every Op
    applied while they work must go through it, so they see what touched a node)."""

    def __init__(self, rec, cluster: Cluster, replay: bool | None = None):
        self.rec, self.cluster = rec, cluster
        self.replay = replay_enabled() if replay is None else replay
        if self.replay:
            rec.tracking = True
        self.nodes = {n.name: n for n in cluster.nodes}
        self.kubelets: dict[str, NodeKubelet] = {}
        self.shared: dict[str, Shared] = {}

    def close(self) -> None:
        """No more pods: the Recorder stops counting what touches each namespace."""
        self.rec.tracking = False
        self.kubelets.clear()

    def attach(self, pod: Pod):
        k = self.kubelets.get(pod.node)
        if k is not None and not pod.host_network:
            return k.attach(pod)
        node = self.nodes[pod.node]
        if pod.host_network or not self.replay:
            return attach_pod(self.rec, self.cluster, pod, node=node)
        k = self.kubelets[node.name] = NodeKubelet(self.rec, self.cluster, node, self.shared)
        return k.attach(pod)


class Shared:
    """What the nodes whose netconf is the same but for the node's own values share:
    ``trusted``, the steady-state template, once two runs on different nodes gave the very
    same one; ``pair``, that template with the Shape of the node's state it ran on (after
    the node's first pod), once two nodes gave the very same of both."""

    def __init__(self):
        self.trusted = None
        self.pair = None
        self.candidate = None           # (template, shape, node)

    def offer(self, template, shape, node: str) -> None:
        if self.pair is not None:
            return
        c = self.candidate
        if c is not None and c[2] != node and c[0].signature == template.signature:
            if self.trusted is None:
                self.trusted = c[0]
            if shape is not None and c[1] is not None and shape.signature == c[1].signature:
                self.pair = (c[0], c[1])
                return
        self.candidate = (template, shape, node)


def _distinct(values) -> list[str]:
    out: list[str] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


def _args_shape(text: str) -> tuple | None:
    """CNI_ARGS as far as the plugins read them: the keys, and the values of all but
    the kubelet's K8S_* metadata (which neither bridge nor host-local reads)."""
    shape = []
    for pair in text.split(";") if text else ():
        if pair.count("=") != 1:
            return None
        key, value = pair.split("=")
        shape.append((key, None if key.startswith("K8S_") else value))
    return tuple(shape)


def _args_match(text: str, shape: tuple) -> bool:
    """``_args_shape(text) == shape``, without making the shape."""
    pairs = text.split(";") if text else []
    if len(pairs) != len(shape):
        return False
    for pair, (key, value) in zip(pairs, shape):
        k, _, v = pair.partition("=")
        if k != key or "=" in v or (value is not None and v != value):
            return False
    return True


class _Names:
    namespace, name = "namespace", "name"


# The CNI_ARGS shape of a pod whose namespace, name and container id hold no ";" or "=".
_PLAIN_ARGS = _args_shape(cni_args(_Names(), "id"))


def _ip_int(text: str) -> int | None:
    try:
        return int.from_bytes(inet_aton(text), "big") if text.count(".") == 3 else None
    except OSError:
        return None


class NodeKubelet:
    """One node's kubelet in a cluster build. A pod is replayed (netlab.cni.replay)
    when all of these hold, else the plugin runs in full (and that run may give a
    template):

    - templates: a node's first run (``first_run``: it touched only the node's namespace,
      the pod's and the node's files; no iptables state) and a steady-state run
      (``Capture.run``: the node's namespace gained one link and nothing else changed),
      each with the Shape of the node's state before it; shared by the nodes whose
      netconf differs only in the node's own values and trusted once two nodes gave the
      very same template and Shape (``Shared``); every template also reproduces its own
      run exactly (namespaces, link, files, result, Ops);
    - the node's first pod: its namespace and files match the first template's Shape
      but for its own values (``_node_params``, the MACs and addresses its links had);
      its second pod: the same for the steady template's Shape (the node's values now
      with the first pod's) — or, without those, the node's own second run is made
      exactly by the shared template or gives one of its own;
    - further pods: nothing but the replays touched the node's namespace or files since
      (the Recorder's count of Ops per namespace): the bridge, its ports, the sysctls,
      host-local's files are as the run and the replays left them;
    - the same netconf, ifname and CNI_ARGS shape (``_args_shape``; no IP= or MAC=), a
      valid container id, no namespace of the pod's name yet;
    - host-local: one range set of one range, no requested IP, no resolvConf; the IP is
      the range's first (first pod: no ``last_reserved_ip`` yet) or the one after
      ``last_reserved_ip.0`` (in the range, so no wrap and no exhaustion), not the
      gateway, not reserved, and the control plane's IP for the pod; the container holds
      no reservation in the network's data dir; the template's run wrote exactly the
      reservation and ``last_reserved_ip.0`` (and, first, the ``lock``).
    """

    def __init__(self, rec, cluster: Cluster, node: Node, shared: dict):
        self.rec, self.cluster, self.node = rec, cluster, node
        self.root_key = ns_key(node.name)
        self.conf = netconf(cluster, node)
        self.runs = 0
        self.misses = 0
        self.template = None
        self.seq = None
        self.node_params = None
        self.shared = shared
        self.first = None               # (the node's values before its first pod, that pod's)
        self.key = None
        self.adopted = False
        self.first_replayed = False
        self._ipam_conf = None
        self._range = None

    def _node_params(self, bridge: bool = True) -> list[str] | None:
        """The node's own values in its pods' runs: its name, its range's network, gateway
        and last address (host-local's reading of the netconf), the bridge's MAC (once
        there is a bridge: ``bridge``)."""
        base = self._ipam()[1]
        if base is None:
            return None
        if not bridge:
            return list(base)
        link = self.rec.world.namespaces[self.root_key].links.get(
            self.conf.get("bridge") or BRIDGE)
        return None if link is None else [*base, link.mac]

    def _ipam(self) -> tuple:
        """host-local's reading of the netconf (CNI_ARGS aside: the replay's CNI_ARGS have
        no IP= or MAC=, see ``_args_shape``), and the node's values from its one range (or
        None), once."""
        if self._ipam_conf is None:
            from netlab.cni import hostlocal
            try:
                conf = hostlocal.load_config(self.conf, "")
            except Exception:
                conf = None
            base = None
            if conf is not None and len(conf.ranges) == 1 and len(conf.ranges[0]) == 1:
                r = conf.ranges[0][0]
                base = (self.node.name, str(r.subnet.network), str(r.gateway),
                        str(r.subnet.last))
            self._ipam_conf = (conf, base)
        return self._ipam_conf

    def _key(self) -> str:
        """The netconf with the node's own value (its pod range) taken out."""
        if self.key is None:
            self.key = repr(self.conf).replace(repr(self.node.pod_cidr), "'*'")
        return self.key

    def attach(self, pod: Pod):
        """Returns the plugin's result, or for a replay the Deferred its result (and
        its Ops) can be made from."""
        if self.template is None and self.runs == 1 and not self.adopted:
            self._adopt(pod)
        result = self._replay(pod) if self.template is not None else None
        if result is not None:
            return result
        result = self._full(pod)
        for op in listener_ops(pod):
            self.rec.apply(op)
        return result

    def _first(self, pod: Pod):
        """The node's first pod: replayed when the node is as the nodes whose first run
        gave the shared first-pod template were before theirs (``Shared.pair`` of the
        netconf's "first" entry), else the full run (which may give that template). Keeps
        the values that make the node's state after it its own (see ``_shape_params``)."""
        from netlab.cni.replay import Capture, Shape, Template, first_run
        world = self.rec.world
        root = world.namespaces[self.root_key]
        pre = _distinct(x for link in root.links.values()
                        for x in (link.mac, *(a.ip for a in link.addresses)))
        links, counter = set(root.links), world.mac_counter
        shared = self.shared.setdefault(("first", self._key()), Shared())
        base = self._node_params(bridge=False)
        params0 = _distinct([*base, *pre]) if base is not None else None
        if params0 is not None and shared.pair is not None:
            done = self._replay_first(pod, shared.pair, params0)
            if done is not None:
                macs = done.params[len(done.params) - done.template.template.macs:]
                self._after_first(pre, pod, links, macs)
                self.first_replayed = True
                return done
        capture = None
        if params0 is not None and shared.pair is None:
            capture = Capture(self.rec.backend, self.node.name, self.rec.ops_log)
        self.runs += 1
        result = _sandbox(self.rec, self.cluster, pod, self.node, self.conf)
        now, world.mac_counter = world.mac_counter, counter
        macs = [world.new_mac() for _ in range(now - counter)]
        world.mac_counter = now
        self._after_first(pre, pod, links, macs)
        if capture is not None:
            run = first_run(capture, self.rec.backend, pod_netns_key(pod), result,
                            container_id(pod), netns_name(pod), pod.ip, IFNAME, params0)
            if run is not None and self._hostlocal(pod, None) and sorted(run.files) == sorted(
                    [(self.prefix + "lock", ""), (self.prefix + pod.ip,
                                                  container_id(pod) + "\r\n" + IFNAME),
                     (self.last_path, pod.ip)]):
                try:
                    shared.offer(Template(self.rec.backend, run),
                                 Shape((capture.root, capture.files), params0), self.node.name)
                except AssertionError:
                    pass
        return result

    def _after_first(self, pre, pod: Pod, links: set, macs) -> None:
        self.runs = 1
        root = self.rec.world.namespaces[self.root_key]
        self.first = (pre, [container_id(pod), netns_name(pod), pod.ip,
                            *(name for name in root.links if name not in links), *macs])

    def _replay_first(self, pod: Pod, pair, params0):
        """The first pod's replay: the node's state (its namespace and files) matches the
        shared Shape but for its own values, and host-local would give the range's first
        address (no reservation, no ``last_reserved_ip`` yet)."""
        template, shape = pair
        if not shape.matches(self._state(), params0) or not self._hostlocal(pod, None):
            return None
        world = self.rec.world
        node = self.node.name
        name = netns_name(pod)
        if ns_key(node, name) in world.namespaces:
            return None
        cid = container_id(pod)
        if not ((cid.isalnum() and cid.isascii()) or _valid_name(cid)) or \
                not _args_match(cni_args(pod, cid), self.args):
            return None
        tree = world.files.get(node, {})
        first = self.start if self.start != self.gateway else self.start + 1
        if self.last_path in tree or _ip_int(pod.ip) != first or first > self.end or \
                self.prefix + pod.ip in tree or self.reserved:
            return None
        bound = template.bind(params0)
        world.files.setdefault(node, {})
        params = bound.replay(world, world.namespaces[self.root_key], node, cid, name, pod.ip)
        done = _Deferred(bound, params)
        self.rec.replayed(done)
        return done

    def _shape_params(self, node_params: list[str]) -> list[str]:
        """The node's values in its state after its first pod: its own (node_params), the
        MACs and addresses its links had before it, and that pod's container id, netns
        name, IP, the links it added and the MACs the model drew for it."""
        pre, first = self.first
        return _distinct([*node_params, *pre, *first])

    def _state(self):
        from netlab.cni.replay import _state
        world = self.rec.world
        return _state(world.namespaces[self.root_key]), dict(world.files.get(self.node.name, {}))

    def _adopt(self, pod: Pod) -> bool:
        """The node's second pod without a full run: when the node's state is, but for its
        own values, that of the nodes whose run gave the shared template (``Shared.pair``),
        the plugin does here what it did there."""
        self.adopted = True
        shared = self.shared.get(self._key())
        if shared is None or shared.pair is None or self.first is None:
            return False
        node_params = self._node_params()
        if node_params is None:
            return False
        template, shape = shared.pair
        if not shape.matches(self._state(), self._shape_params(node_params)) or \
                not self._hostlocal(pod, None):
            return False
        self.template = template.bind(node_params)
        self.node_params = node_params
        self.seq = self.rec.touched.get(self.root_key)
        return True

    def _full(self, pod: Pod) -> dict:
        from netlab.cni.replay import Capture, Shape, Template
        if not self.runs:
            return self._first(pod)
        capture = None
        if self.misses < 3:
            capture = Capture(self.rec.backend, self.node.name, self.rec.ops_log)
        self.runs += 1
        self.template = None
        result = _sandbox(self.rec, self.cluster, pod, self.node, self.conf)
        if capture is None:
            return result
        node_params = self._node_params()
        run = None
        if node_params is not None:
            run = capture.run(self.rec.backend, pod_netns_key(pod), result, container_id(pod),
                              netns_name(pod), pod.ip, node_params)
        if run is not None and self._hostlocal(pod, run):
            shared = self.shared.setdefault(self._key(), Shared())
            template = shared.trusted
            if template is None or not template.reproduces(run):
                template = Template(self.rec.backend, run)
            if shared.pair is None:
                shape = None
                if self.first is not None and self.runs == 2:
                    try:
                        shape = Shape((capture.root, capture.files),
                                      self._shape_params(node_params))
                    except AssertionError:
                        shape = None
                shared.offer(template, shape, self.node.name)
            self.template = template.bind(node_params)
        if self.template is None:
            self.misses += 1
            return result
        self.misses = 0
        self.node_params = node_params
        self.seq = self.rec.touched.get(self.root_key)
        return result

    def _range_facts(self) -> bool:
        """host-local's range as the preconditions need it (its bounds and gateway, the
        network's data dir and last_reserved_ip file), once; False when it has more than
        one range, requested IPs or a resolvConf."""
        if self._range is None:
            from netlab.cni.store import DEFAULT_DATA_DIR, LAST_PREFIX
            from netlab.cni.sysos import join
            conf = self._ipam()[0]
            self._range = conf is not None and len(conf.ranges) == 1 and \
                len(conf.ranges[0]) == 1 and not conf.requested and \
                not conf.ipam.get("resolvConf")
            if self._range:
                r = conf.ranges[0][0]
                self.start, self.end, self.gateway = r.start.value, r.end.value, r.gateway.value
                self.prefix = join(conf.data_dir or DEFAULT_DATA_DIR, conf.name) + "/"
                self.last_path = self.prefix + LAST_PREFIX + "0"
        return self._range

    def _hostlocal(self, pod: Pod, run) -> bool:
        """The host-local facts the preconditions need, from the run."""
        from netlab.cni.store import LINE_BREAK
        if not self._range_facts():
            return False
        if run is not None and sorted(run.files) != sorted(
                [(self.prefix + pod.ip, container_id(pod) + LINE_BREAK + IFNAME),
                 (self.last_path, pod.ip)]):
            return False
        tree = self.rec.world.files.get(self.node.name, {})
        n = len(self.prefix)
        self.reserved = {v.strip() for k, v in tree.items() if k.startswith(self.prefix)
                         and "/" not in k[n:] and _ip_int(k[n:]) is not None}
        self.args = _args_shape(cni_args(pod))
        if self.args == _PLAIN_ARGS:
            self.args = _PLAIN_ARGS
        self.last = (None, None)
        # IP= and MAC= (the only keys the plugins read) change what they do: no replay.
        return self.args is not None and not any(k in ("IP", "MAC") for k, _ in self.args)

    def _replay(self, pod: Pod):
        rec = self.rec
        if rec.touched.get(self.root_key) != self.seq:
            return None
        world = rec.backend.world
        name = f"{pod.namespace}.{pod.name}"                 # netns_name
        node = self.node.name
        key = f"{node}/{name}"                               # ns_key
        if key in world.namespaces:
            return None
        cid = container_id(pod)
        if cid.isalnum() and cid.isascii():
            # CNI_ARGS with no ";" or "=" in the pod's namespace, name or container id
            # have the shape of any such pod's: the one the replay's was checked to be.
            if self.args is not _PLAIN_ARGS or ";" in name or "=" in name:
                if not _args_match(cni_args(pod, cid), self.args):
                    return None
        elif not _valid_name(cid) or not _args_match(cni_args(pod, cid), self.args):
            return None
        tree = world.files.get(node)
        if tree is None:
            return None
        text = tree.get(self.last_path)
        if text is not self.last[0]:         # a string read before: its address known
            self.last = (text, _ip_int((text or "").strip()))
        last = self.last[1]
        ip = _ip_int(pod.ip)
        mine = cid + "\r\n" + IFNAME                         # host-local's LINE_BREAK
        if last is None or ip != last + 1 or not self.start <= last < self.end or \
                ip == self.gateway or self.prefix + pod.ip in tree or \
                mine in self.reserved or cid in self.reserved:
            return None
        template = self.template
        params = template.replay(world, world.namespaces[self.root_key], node, cid, name, pod.ip)
        self.reserved.add(mine)
        if tree.get(self.last_path) is pod.ip:
            self.last = (pod.ip, ip)
        done = _Deferred(template, params)
        rec.replayed(done)
        if pod.ports:
            for op in listener_ops(pod, key):   # on the namespace the replay just made
                rec.apply_new(op)
        return done


def _valid_name(text: str) -> bool:
    from netlab.cni.skel import valid_name
    return valid_name(text)


def _Deferred(template, params):
    from netlab.cni.replay import Deferred
    global _Deferred
    _Deferred = Deferred
    return Deferred(template, params)


def listener_ops(pod: Pod, key: str | None = None) -> list[O.Op]:
    """A pod listens on the ports its containers declare (SCTP is not modelled); ``key``:
    its namespace's key (``pod_netns_key``), if the caller has it."""
    key = key or pod_netns_key(pod)
    seen = set()
    ops: list[O.Op] = []
    for p in pod.ports:
        proto = p.protocol.lower()
        if proto in ("tcp", "udp") and (proto, p.port) not in seen:
            seen.add((proto, p.port))
            ops.append(O.AddListener(key, proto, p.port))
    return ops


def resolv_conf(cluster: Cluster, pod: Pod) -> str:
    """/etc/resolv.conf as kubelet writes it for dnsPolicy ClusterFirst."""
    domain = cluster.spec.cluster_domain
    return (f"search {pod.namespace}.svc.{domain} svc.{domain} {domain}\n"
            f"nameserver {cluster.dns_ip}\n"
            "options ndots:5\n")
