"""A lab whose machines are a Kubernetes cluster: the lab file's ``cluster:`` key.

    cluster:
      nodes: [{name: node1, ip: 192.168.1.11}, {name: node2, ip: 192.168.1.12}]
      podCIDR: 10.244.0.0/16          # every key of a cluster file (DESIGN.md §3) …
      manifests: |                    # … and the manifests, as YAML documents
        apiVersion: v1
        kind: Pod
        ...

The lab's nodes are the cluster's; its steps run on them and its expectations
name pods by their namespaces (``node1/shop.web``: ``<node>/<namespace>.<pod>``).
Errors in the manifests carry the lab file's own line numbers.
"""

from __future__ import annotations

from netlab.errors import LabError
from netlab.k8s.cluster import Cluster, build_cluster
from netlab.k8s.manifests import CLUSTER_KEYS, load_documents, parse_cluster, read_object
from netlab.k8s.objects import Manifests
from netlab.labs.yamlpos import PosDict

LAB_CLUSTER_KEYS = tuple(k for k in CLUSTER_KEYS if k not in ("netlab", "kind")) + ("manifests",)


def parse_lab_cluster(value, path: str, line: int) -> Cluster:
    if not isinstance(value, PosDict):
        raise LabError("'cluster' must be a mapping: the keys of a cluster file and "
                       "'manifests'", path=path, line=line)
    for key in value:
        if key not in LAB_CLUSTER_KEYS:
            raise LabError(f"unknown key '{key}' in 'cluster'", path=path,
                           line=value.line_of(key), hint="keys: " + ", ".join(LAB_CLUSTER_KEYS))
    doc = PosDict(value.line)
    doc.update({"netlab": 1, "kind": "Cluster"})
    doc.key_line.update(value.key_line)
    doc.node.update(value.node)
    for k, v in value.items():
        if k != "manifests":
            doc[k] = v
    spec = parse_cluster(doc, path)
    manifests = Manifests()
    text = value.get("manifests")
    if text is not None:
        if not isinstance(text, str):
            raise LabError("'manifests' must be a block of YAML documents (manifests: |)",
                           path=path, line=value.line_of("manifests"))
        node = value.node.get("manifests")
        start = node.start_mark.line + 1 if node is not None and node.style == "|" else \
            value.line_of("manifests") - 1
        for obj in load_documents("\n" * start + text, path):
            read_object(obj, path, manifests)
    return build_cluster(spec, manifests)
