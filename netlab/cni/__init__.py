"""CNI: the protocol (skel, types), host-local and bridge, on a kernel or a World.

Kept light: every plugin start-up imports this package. ``invoke`` (the
in-process API for the Kubernetes layer) loads the World machinery only
when called.
"""

from netlab.cni.errors import CniError


def invoke(backend, command, netconf, *, container_id, netns, ifname, node, cni_args="",
           data_dir_state=None):
    """Run one CNI command in-process on a ModelBackend; see netlab.cni.virtual.invoke."""
    from netlab.cni.virtual import invoke as _invoke
    return _invoke(backend, command, netconf, container_id=container_id, netns=netns,
                   ifname=ifname, node=node, cni_args=cni_args, data_dir_state=data_dir_state)


__all__ = ["CniError", "invoke"]
