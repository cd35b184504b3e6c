"""CNI commands of a lab in real mode: the real executables (cni_plugins/) on the kernel.

    done = run_cni(kl, command)        # a CNI Command (netlab.commands.cni), on both sides

In the model a CNI line is netlab's plugin run on a copy of the World (its Ops are
the command's plan). In real mode the same calls ``[(plugin, env, stdin)]`` run as
the executables in ``cni_plugins/``, inside the node's namespace (``ip netns exec``),
the way a runtime runs them, with what the lab names mapped to what netlab made:

- ``CNI_NETNS=/var/run/netns/red`` -> ``/run/netns/nl-<lab>-<node>-red``;
- ``CNI_PATH`` -> ``cni_plugins/`` (bridge finds host-local there);
- the configuration comes from the node's file under the lab's run dir (the lab's
  ``files:``, LinuxBackend.WriteFile), and host-local's ``dataDir`` (default
  ``/var/lib/cni/networks``) is moved under the run dir too: nothing is written to
  the machine's /etc or /var/lib.

The model gets the Ops of its own plugin run; the kernel's exit status decides
whether the line succeeded (a side that refuses alone is a difference in `verify`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from netlab.errors import CommandError

NETNS_PREFIXES = ("/var/run/netns/", "/run/netns/")
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
PLUGIN_TIMEOUT = 30


def plugins_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "cni_plugins"


def real_env(kl, node: str, env: dict[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The plugin's environment on the kernel: the lab's CNI_* with the namespace path
    and the plugin path mapped; PATH for iptables; nothing else of ours."""
    from netlab.model import ns_key

    out = {k: v for k, v in env.items() if k.startswith("CNI_")}
    netns = out.get("CNI_NETNS", "")
    for prefix in NETNS_PREFIXES:
        if netns.startswith(prefix):
            key = ns_key(node, netns[len(prefix):])
            real = kl.linux.names.get(key)
            if real is None:
                raise CommandError(f"{netns}: the lab has no namespace "
                                   f"{netns[len(prefix):]!r} on {node}", status=1)
            out["CNI_NETNS"] = f"/run/netns/{real}"
            break
    if "CNI_PATH" in out:
        out["CNI_PATH"] = str(plugins_dir())
    out["PATH"] = os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin"
    return out


def real_conf(kl, node: str, stdin: str, stdin_path: str | None) -> str:  # type: ignore[no-untyped-def]
    """The configuration as the kernel side reads it: the node's file (under the run dir)
    where the line reads one, with ipam.dataDir moved under the run dir."""
    text = stdin
    if stdin_path is not None:
        real = kl.linux.file_path(node, stdin_path)
        if os.path.exists(real):
            with open(real, encoding="utf-8") as f:
                text = f.read()
    try:
        conf = json.loads(text)
    except ValueError:
        return text                           # the plugin says what is wrong with it
    if not isinstance(conf, dict):
        return text
    for plugin in [conf, *(p for p in conf.get("plugins") or [] if isinstance(p, dict))]:
        ipam = plugin.get("ipam")          # host-local reads it, whoever runs it
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            ipam["dataDir"] = kl.linux.file_path(node, ipam.get("dataDir") or DEFAULT_DATA_DIR)
    return json.dumps(conf)


def run_plugin(kl, node: str, plugin: str, env: dict[str, str], conf: str):  # type: ignore[no-untyped-def]
    """One plugin call in the node's root namespace; the CompletedProcess."""
    from netlab.model import ns_key

    exe = plugins_dir() / plugin
    if not exe.exists():
        raise CommandError(f"sh: {plugin}: not found (real mode runs the plugins in "
                           f"{plugins_dir()}: netlab's checkout)", status=127)
    real = kl.linux.real_name(ns_key(node))
    try:
        return subprocess.run(["ip", "netns", "exec", real, str(exe)], input=conf,
                              env=real_env(kl, node, env), capture_output=True, text=True,
                              check=False, timeout=PLUGIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CommandError(f"{plugin}: no answer within {PLUGIN_TIMEOUT} s", status=1) from None


def run_cni(kl, command):  # type: ignore[no-untyped-def]
    """The CNI line on the kernel (real plugins) and on the model (its plugin's Ops);
    (printed text, exit status) of the kernel's run. Raises CommandError when the
    kernel's plugin fails, with the error object's msg."""
    world = kl.world
    calls = command.cni_calls(world)
    ops = command.plan(world)                 # the model's run, on a copy of the World
    texts: list[str] = []
    status = 0
    for i, (plugin, env, stdin) in enumerate(calls):
        path = command.cni_stdin if i == 0 else None
        done = run_plugin(kl, command.node, plugin, env, real_conf(kl, command.node, stdin, path))
        texts.append(done.stdout or done.stderr)
        if done.returncode != 0:
            status = done.returncode
            break
    kl.twin.model.apply_all(ops)              # the kernel's state was made by the plugin
    text = "\n".join(t for t in texts if t)
    if status:
        try:
            msg = json.loads(text).get("msg")
        except (ValueError, AttributeError):
            msg = None
        first = text.strip().splitlines()[0] if text.strip() else f"exit status {status}"
        raise CommandError(msg or first, status=status)
    return text, status
