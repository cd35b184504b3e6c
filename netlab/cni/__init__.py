"""CNI: the protocol (skel, types), host-local and bridge, on a kernel or a World.

Kept light: every plugin start-up imports this package. ``invoke`` (the
in-process API for the Kubernetes layer) loads the World machinery only
when called.
"""

from __future__ import annotations

from netlab.cni.errors import CniError


def invoke(backend, command: str, netconf: dict, *, container_id: str, netns: str, ifname: str,
           node: str, cni_args: str = "", data_dir_state: dict | None = None) -> dict:
    """Run one CNI command (ADD, DEL, CHECK, STATUS, GC, VERSION) in-process on a
    ModelBackend, as a runtime would run the plugin ``netconf["type"]`` (bridge or
    host-local). Returns the result dict (ADD; ``{}`` otherwise); raises
    CniError(code, msg, details). Details: netlab.cni.virtual.invoke."""
    from netlab.cni.virtual import invoke as _invoke
    return _invoke(backend, command, netconf, container_id=container_id, netns=netns,
                   ifname=ifname, node=node, cni_args=cni_args, data_dir_state=data_dir_state)


__all__ = ["CniError", "invoke"]
