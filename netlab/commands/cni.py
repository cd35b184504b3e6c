"""CNI from the lab shell, typed the way the seed types it:

    CNI_COMMAND=ADD CNI_CONTAINERID=red CNI_NETNS=/var/run/netns/red CNI_IFNAME=eth0 \\
        CNI_PATH=/opt/cni/bin cni_plugins/bridge < /etc/cni/net.d/10-bridge.conf
    bridge add red /var/run/netns/red          # the seed's shorthand (ADD|DEL|CHECK)
    cnitool add mynet /var/run/netns/red       # cnitool add|check|del NET NETNS

The plugin is netlab's own (netlab.cni), run on the World: parsing stays pure,
and the ``plan`` runs the plugin on a copy of the World, recording the Ops it
applies (and the files host-local writes), which the Shell then applies for
real. The config comes from the lab's files (``files:`` in the lab; the node's
``/etc/cni/net.d``); ``bridge add`` without one uses the seed's 10-bridge.conf.
What is printed is what the plugin prints: the result JSON, or the error
object (exit status 1).
"""

from __future__ import annotations

import copy
import json

from netlab import ops as O
from netlab.commands.base import Command, Ctx, Output
from netlab.commands.lexer import is_operator
from netlab.errors import CommandError

PLUGINS = ("bridge", "host-local")
CONF_DIR = "/etc/cni/net.d"
SEED_CONF = {"cniVersion": "0.2.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
             "isGateway": True, "ipMasq": True,
             "ipam": {"type": "host-local", "subnet": "10.22.0.0/16",
                      "routes": [{"dst": "0.0.0.0/0"}]}}


def _assignment(word: str) -> tuple[str, str] | None:
    name, eq, value = word.partition("=")
    if eq and name and (name[0].isalpha() or name[0] == "_") and \
            all(c.isalnum() or c == "_" for c in name):
        return name, value
    return None


def maybe_parse(tokens: list[str], ctx: Ctx) -> Command | None:
    """A CNI invocation, or None when the line is something else."""
    words, stdin_path = [], None
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if is_operator(t) and t == "<":
            if i + 1 >= len(tokens):
                raise CommandError("sh: syntax error near unexpected token `newline'", status=2)
            stdin_path = tokens[i + 1]
            i += 2
            continue
        words.append(t)
        i += 1
    env: dict[str, str] = {}
    while words and not is_operator(words[0]) and _assignment(words[0]):
        k, v = _assignment(words[0])
        env[k] = v
        words = words[1:]
    if not words or any(is_operator(w) for w in words):
        return None
    tool = words[0].rsplit("/", 1)[-1]
    if tool in PLUGINS and ("CNI_COMMAND" in env or stdin_path is not None):
        return _plugin(ctx, tool, env, stdin_path)
    if tool == "bridge" and len(words) >= 2 and words[1].lower() in ("add", "del", "check"):
        if len(words) != 4:
            raise CommandError("usage: bridge add|del|check CONTAINER_ID NETNS_PATH", status=2)
        env = {"CNI_COMMAND": words[1].upper(), "CNI_CONTAINERID": words[2], "CNI_NETNS": words[3],
               "CNI_IFNAME": env.get("CNI_IFNAME", "eth0"), "CNI_PATH": "/opt/cni/bin", **env}
        return _plugin(ctx, "bridge", env, f"{CONF_DIR}/10-bridge.conf", default=SEED_CONF)
    if tool == "cnitool":
        return _cnitool(ctx, words[1:], env)
    return None


def _read(world, node: str, path: str) -> str | None:
    return world.files.get(node, {}).get(path)


def _plugin(ctx: Ctx, plugin: str, env: dict, stdin_path: str | None,
            default: dict | None = None) -> Command:
    def conf_text(world) -> str:
        if stdin_path is None:
            return ""
        text = _read(world, ctx.node, stdin_path)
        if text is None:
            if default is not None:
                return json.dumps(default)
            raise CommandError(f"sh: {stdin_path}: No such file or directory", status=1)
        return text
    return _run_command(ctx, lambda world: [(plugin, env, conf_text(world))], stdin_path)


def _run_command(ctx: Ctx, calls, stdin_path: str | None = None) -> Command:
    """A Command whose plan runs plugin calls ``[(plugin, env, stdin)]`` on a copy of the World."""
    box: dict = {"text": "", "status": 0}

    def plan(world) -> list[O.Op]:
        text, status, ops = run_plugins(world, ctx.node, calls(world))
        box.update(text=text, status=status)
        return ops

    def query(world) -> Output:
        text = box["text"] + ("\n" if box["text"] and not box["text"].endswith("\n") else "")
        error = None
        if box["status"]:
            try:
                error = json.loads(box["text"]).get("msg")
            except ValueError:
                error = box["text"].strip().splitlines()[0] if box["text"].strip() else None
        return Output(text=text, status=box["status"], error=error)

    command = ctx.command(plan=plan, query=query)
    command.cni_calls = calls           # type: ignore[attr-defined]  # real mode runs these
    command.cni_stdin = stdin_path      # type: ignore[attr-defined]  # (netlab.labs.realcni)
    return command


class _Recorder:
    """A ModelBackend on a copy of the World that remembers the Ops applied to it."""

    def __init__(self, world):
        from netlab.backends.model import ModelBackend
        self.inner = ModelBackend(copy.deepcopy(world))
        self.ops: list[O.Op] = []

    @property
    def world(self):
        return self.inner.world

    def apply(self, op: O.Op) -> None:
        self.inner.apply(op)
        self.ops.append(op)


def run_plugins(world, node: str, calls) -> tuple[str, int, list[O.Op]]:
    """Run the calls in order on a copy of ``world``; (printed text, status, Ops to apply).
    Stops at the first failure, whose Ops are dropped (a failed ADD changes nothing)."""
    import io
    from netlab.cni import skel
    from netlab.cni.store import Files
    from netlab.cni.virtual import _handlers

    rec = _Recorder(world)
    texts, ops = [], []
    for plugin, env, stdin in calls:
        before = copy.deepcopy(rec.world.files.get(node, {}))
        start = len(rec.ops)
        files = Files(rec.world.files.setdefault(node, {}))
        out, err = io.StringIO(), io.StringIO()
        status = skel.main(plugin, _handlers(rec, node, files, plugin, env.get("CNI_CONTAINERID", "")),
                           environ=env,
                           stdin=io.BytesIO(stdin.encode()), stdout=out, stderr=err)
        texts.append(out.getvalue() or err.getvalue())
        if status:
            return "\n".join(t for t in texts if t), status, ops
        ops += rec.ops[start:]
        after = rec.world.files.get(node, {})
        for path in sorted(set(before) | set(after)):
            if before.get(path) != after.get(path):
                ops.append(O.WriteFile(node, path, after.get(path)))
    return "\n".join(t for t in texts if t), 0, ops


def _cnitool(ctx: Ctx, args: list[str], env: dict) -> Command:
    """``cnitool add|check|del NET NETNS``: the network by name from /etc/cni/net.d
    (a .conf, or a .conflist whose plugins run in order, and in reverse for del)."""
    if len(args) != 3 or args[0] not in ("add", "check", "del"):
        raise CommandError("cnitool: usage: cnitool add|check|del <net> <netns>", status=1)
    verb, net, netns = args
    import hashlib
    cid = env.get("CNI_CONTAINERID") or \
        ("cnitool-" + hashlib.sha512(netns.encode()).hexdigest())[:len("cnitool-") + 20]
    ifname = env.get("CNI_IFNAME", "eth0")

    def calls(world):
        conf = _find_network(world, ctx.node, env.get("NETCONFPATH", CONF_DIR), net)
        plugins = conf.get("plugins")
        base = {"cniVersion": conf.get("cniVersion", "0.1.0"), "name": conf.get("name", net)}
        confs = [dict(p, **base) for p in plugins] if plugins is not None else [conf]
        if verb == "del":
            confs = confs[::-1]
        e = {"CNI_COMMAND": verb.upper(), "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
             "CNI_IFNAME": ifname, "CNI_PATH": env.get("CNI_PATH", "/opt/cni/bin")}
        if env.get("CNI_ARGS"):
            e["CNI_ARGS"] = env["CNI_ARGS"]
        return [(c.get("type", ""), e, json.dumps(c)) for c in confs]
    return _run_command(ctx, calls)


def _find_network(world, node: str, conf_dir: str, name: str) -> dict:
    prefix = conf_dir.rstrip("/") + "/"
    for path, text in sorted(world.files.get(node, {}).items()):
        if not path.startswith(prefix) or not path.endswith((".conf", ".conflist", ".json")):
            continue
        try:
            conf = json.loads(text)
        except ValueError:
            continue
        if isinstance(conf, dict) and conf.get("name") == name:
            return conf
    raise CommandError(f'cnitool: no net configuration with name "{name}" in {conf_dir}', status=1)
