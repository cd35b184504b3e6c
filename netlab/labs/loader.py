"""Read a lab file (DESIGN.md §3) into a Lab, strictly.

Every mistake is a LabError naming the file and line: YAML syntax, unknown
keys (with a did-you-mean hint), wrong types, bad addresses, unknown nodes,
an unsupported ``netlab:`` version.

Format, extended from DESIGN.md with several LANs::

    netlab: 1
    name: router
    title: Two networks joined by a router
    description: markdown shown before the first step   # optional
    nodes: [a, r, b]            # default: the LAN members in order, else [host]
    lans:                       # or `lan: {...}` for a single switch
      - {name: left, nodes: [a, r], subnet: 10.0.1.0/24}        # a=.1, r=.2
      - {name: right, nodes: {r: 10.0.2.1/24, b: 10.0.2.10/24}}  # explicit
    steps:
      - title: ...
        explain: markdown
        node: r                 # default: the first node
        run: |
          ip route
        expect:
          - reach: {from: a, to: 10.0.2.10}
        on_error: stop          # or continue

A node's interface on its i-th LAN (in the order the LANs are listed) is
``eth<i>``. A LAN with a ``subnet`` and a list of nodes gives them the
subnet's addresses in order (.1, .2, …); a mapping gives each node its own
address (``null``: no address).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from netlab.errors import LabError
from netlab.labs.model import (
    CommandLine, Expectation, Lab, LanMember, LanSpec, OutputExpect, Reach, Step, TraceExpect,
)
from netlab.labs.yamlpos import PosDict, PosList, load as load_yaml, scalar_lines
from netlab.trace import OUTCOMES, VERDICTS

FORMAT_VERSION = 1
TOP_KEYS = ("netlab", "name", "title", "description", "nodes", "lan", "lans", "files", "steps",
            "cluster")
LAN_KEYS = ("name", "nodes", "subnet")
STEP_KEYS = ("title", "explain", "node", "run", "expect", "on_error")
EXPECT_KINDS = ("reach", "trace", "output")
REACH_KEYS = ("from", "to", "proto", "port", "want")
TRACE_KEYS = ("from", "to", "proto", "port", "sport", "verdict", "outcome", "delivered_to",
              "reply_verdict", "src_out", "dst_out")
OUTPUT_KEYS = ("run", "node", "contains", "equals", "not_contains")
PROTOS = ("icmp", "tcp", "udp")
ON_ERROR = ("stop", "continue")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")
DEFAULT_NODE = "host"


def did_you_mean(word: Any, choices: Any) -> str | None:
    if not isinstance(word, str):
        return None
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ('{value}')" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as a person would type it: relative to the working directory when inside it."""
    text = os.fspath(path)
    try:
        rel = os.path.relpath(text)
    except ValueError:
        return text
    return rel if not rel.startswith("..") else os.path.abspath(text)


def load_lab(path: str | os.PathLike[str], *, shown_as: str | None = None) -> Lab:
    shown = shown_as or display_path(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabError("no such lab file", path=shown) from None
    except IsADirectoryError:
        raise LabError("is a directory, not a lab file", path=shown) from None
    except (OSError, UnicodeDecodeError) as err:
        raise LabError(f"cannot read the lab file: {err}", path=shown) from None
    return parse_lab(text, shown)


def parse_lab(text: str, path: str = "<lab>") -> Lab:
    data = load_yaml(text, path)
    return _LabReader(path).read(data)


class _LabReader:
    def __init__(self, path: str):
        self.path = path

    # --- small checks ----------------------------------------------------------------
    def fail(self, message: str, line: int | None, hint: str | None = None) -> LabError:
        return LabError(message, path=self.path, line=line, hint=hint)

    def mapping(self, value: Any, what: str, line: int) -> PosDict:
        if not isinstance(value, PosDict):
            raise self.fail(f"{what} must be a mapping (key: value), not {type_name(value)}", line)
        return value

    def keys(self, data: PosDict, allowed: tuple[str, ...], what: str,
             required: tuple[str, ...] = ()) -> None:
        for key in data:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"{what} takes: {', '.join(allowed)}"
                raise self.fail(f"unknown key '{key}' in {what}", data.line_of(key), hint)
        for key in required:
            if key not in data:
                raise self.fail(f"{what} needs '{key}'", data.line)

    def string(self, data: PosDict, key: str, what: str, default: str | None = None,
               empty_ok: bool = False) -> str | None:
        if key not in data or data[key] is None and default is not None:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(f"'{key}' in {what} must be a string, not {type_name(value)}",
                            data.value_line(key))
        if not isinstance(value, str):
            raise self.fail(f"'{key}' in {what} must be a string, not {type_name(value)}",
                            data.value_line(key), hint=f"quote it: {key}: \"{value}\"")
        if not value.strip() and not empty_ok:
            raise self.fail(f"'{key}' in {what} is empty", data.value_line(key))
        return value

    def integer(self, data: PosDict, key: str, what: str, low: int, high: int) -> int | None:
        if key not in data or data[key] is None:
            return None
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"'{key}' in {what} must be a number, not {type_name(value)}",
                            data.value_line(key))
        if not low <= value <= high:
            raise self.fail(f"'{key}' in {what} must be between {low} and {high}, not {value}",
                            data.value_line(key))
        return value

    def choice(self, data: PosDict, key: str, what: str, choices: tuple[str, ...],
               default: str | None) -> str | None:
        if key not in data or data[key] is None:
            return default
        value = data[key]
        if value not in choices or not isinstance(value, str):
            raise self.fail(f"'{key}' in {what} must be one of {', '.join(choices)}, "
                            f"not {type_name(value)}", data.value_line(key),
                            did_you_mean(value, choices))
        return value

    def name(self, value: Any, what: str, line: int) -> str:
        if not isinstance(value, str):
            hint = "quote it" if isinstance(value, (bool, int, float)) else None
            raise self.fail(f"{what} must be a name, not {type_name(value)}", line, hint)
        if not NAME_RE.match(value):
            raise self.fail(f"{what} '{value}' is not a valid name", line,
                            "a letter, then letters, digits, '-' or '_', at most 15 in all "
                            "(it names an interface on the LAN)")
        return value

    def known_node(self, value: str, nodes: list[str], line: int) -> str:
        if value not in nodes:
            hint = did_you_mean(value, nodes)
            raise self.fail(f"unknown node '{value}' (nodes: {', '.join(nodes)})", line, hint)
        return value

    # --- the lab -----------------------------------------------------------------------
    def read(self, data: Any) -> Lab:
        if data is None:
            raise self.fail("the lab file is empty", 1,
                            "a lab starts with: netlab: 1, name, title, steps")
        data = self.mapping(data, "a lab file", getattr(data, "line", 1))
        if "kind" in data and "netlab" in data:
            raise self.fail("unknown key 'kind' in the lab", data.line_of("kind"),
                            "this looks like a cluster file: use `netlab cluster`")
        self.keys(data, TOP_KEYS, "the lab")
        self.version(data)
        for key in ("name", "title"):
            if key not in data:
                raise self.fail(f"the lab needs '{key}'", data.line)
        name = self.string(data, "name", "the lab")
        title = self.string(data, "title", "the lab")
        description = self.string(data, "description", "the lab", default="", empty_ok=True)
        cluster = None
        if "cluster" in data:                # the machines are a Kubernetes cluster
            from netlab.k8s.lab import parse_lab_cluster
            for key in ("nodes", "lan", "lans"):
                if key in data:
                    raise self.fail(f"'{key}' and 'cluster' exclude each other: a cluster "
                                    "names its nodes", data.line_of(key))
            cluster = parse_lab_cluster(data["cluster"], self.path, data.line_of("cluster"))
            nodes, lans = [n.name for n in cluster.nodes], []
        else:
            lan_items = self.lan_items(data)
            nodes = self.nodes(data, lan_items)
            lans = self.lans(lan_items, nodes)
        steps = self.steps(data, nodes)
        return Lab(path=self.path, name=name, title=title, description=description or "",
                   nodes=nodes, lans=lans, steps=steps, cluster=cluster, files=self.files(data))

    def files(self, data: PosDict) -> dict[str, str]:
        """``files: {/etc/cni/net.d/10-bridge.conf: "..."}``: files every node starts with."""
        if "files" not in data or data["files"] is None:
            return {}
        items = self.mapping(data["files"], "'files'", data.value_line("files"))
        out = {}
        for path in items:
            if not isinstance(path, str) or not path.startswith("/"):
                raise self.fail(f"a file in 'files' needs an absolute path, not {path!r}",
                                items.line_of(path), "for example: /etc/cni/net.d/10-bridge.conf")
            out[path] = self.string(items, path, "'files'", empty_ok=True)
        return out

    def version(self, data: PosDict) -> None:
        if "netlab" not in data:
            raise self.fail("the lab needs 'netlab: 1' (the version of the lab format)",
                            data.line)
        value = data["netlab"]
        line = data.value_line("netlab")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"'netlab' must be the format version 1, not {type_name(value)}", line)
        if value != FORMAT_VERSION:
            raise self.fail(f"lab format version {value} is not supported "
                            f"(this netlab reads netlab: {FORMAT_VERSION})", line)

    # --- nodes and LANs -------------------------------------------------------------------
    def lan_items(self, data: PosDict) -> list[tuple[PosDict, int]]:
        if "lan" in data and "lans" in data:
            raise self.fail("give either 'lan' (one switch) or 'lans' (a list), not both",
                            data.line_of("lans"))
        if "lan" in data:
            if data["lan"] is None:
                return []
            return [(self.mapping(data["lan"], "'lan'", data.value_line("lan")), 0)]
        if "lans" not in data or data["lans"] is None:
            return []
        items = data["lans"]
        if not isinstance(items, PosList):
            raise self.fail(f"'lans' must be a list of LANs, not {type_name(items)}",
                            data.value_line("lans"),
                            "for a single switch write lan: {nodes: [...], subnet: ...}"
                            if isinstance(items, dict) else None)
        return [(self.mapping(item, "a LAN", items.line_of(i)), i) for i, item in enumerate(items)]

    def nodes(self, data: PosDict, lan_items: list[tuple[PosDict, int]]) -> list[str]:
        if "nodes" not in data or data["nodes"] is None:
            found: list[str] = []
            for lan, _ in lan_items:
                for node, line in self.lan_node_names(lan):
                    if node not in found:
                        found.append(self.name(node, "a node", line))
            return found or [DEFAULT_NODE]
        items = data["nodes"]
        if not isinstance(items, PosList):
            raise self.fail(f"'nodes' must be a list of node names, not {type_name(items)}",
                            data.value_line("nodes"),
                            "nodes: [host]" if isinstance(items, str) else None)
        if not items:
            raise self.fail("'nodes' is empty: a lab needs at least one node",
                            data.value_line("nodes"))
        nodes: list[str] = []
        for i, item in enumerate(items):
            node = self.name(item, "a node", items.line_of(i))
            if node in nodes:
                raise self.fail(f"node '{node}' is listed twice", items.line_of(i))
            nodes.append(node)
        return nodes

    def lan_node_names(self, lan: PosDict) -> list[tuple[Any, int]]:
        members = lan.get("nodes")
        if isinstance(members, PosList):
            return [(m, members.line_of(i)) for i, m in enumerate(members)]
        if isinstance(members, PosDict):
            return [(m, members.line_of(m)) for m in members]
        return []

    def lans(self, lan_items: list[tuple[PosDict, int]], nodes: list[str]) -> list[LanSpec]:
        lans: list[LanSpec] = []
        per_node: dict[str, int] = {}
        for lan, index in lan_items:
            self.keys(lan, LAN_KEYS, "a LAN", required=("nodes",))
            name = lan.get("name", f"lan{index}")
            name = self.name(name, "a LAN", lan.value_line("name") if "name" in lan else lan.line)
            if name in nodes:
                raise self.fail(f"LAN '{name}' has the name of a node", lan.line_of("name"),
                                "give the LAN another name")
            if any(other.name == name for other in lans):
                raise self.fail(f"two LANs are called '{name}'", lan.line_of("name"))
            subnet = self.subnet(lan)
            members = self.members(lan, name, subnet, nodes, per_node)
            lans.append(LanSpec(name=name, subnet=str(subnet) if subnet else None,
                                members=tuple(members), line=lan.line))
        return lans

    def subnet(self, lan: PosDict) -> ipaddress.IPv4Network | None:
        if "subnet" not in lan or lan["subnet"] is None:
            return None
        value = lan["subnet"]
        line = lan.value_line("subnet")
        if not isinstance(value, str) or "/" not in value:
            raise self.fail(f"'subnet' must be an IPv4 network like 192.168.1.0/24, "
                            f"not {type_name(value)}", line)
        try:
            return ipaddress.IPv4Network(value)
        except ValueError:
            pass
        try:
            net = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            raise self.fail(f"'subnet' is not an IPv4 network: '{value}'", line,
                            "write it as ADDRESS/PREFIX, e.g. 192.168.1.0/24") from None
        raise self.fail(f"'subnet' {value} has host bits set", line, f"did you mean {net}?")

    def members(self, lan: PosDict, name: str, subnet: ipaddress.IPv4Network | None,
                nodes: list[str], per_node: dict[str, int]) -> list[LanMember]:
        raw = lan["nodes"]
        line = lan.value_line("nodes")
        pairs: list[tuple[str, int, Any]] = []   # node, line, address as written (or None)
        if isinstance(raw, PosList):
            for i, item in enumerate(raw):
                node = self.known_node(self.name(item, "a node", raw.line_of(i)), nodes,
                                       raw.line_of(i))
                if any(p[0] == node for p in pairs):
                    raise self.fail(f"node '{node}' is on LAN '{name}' twice", raw.line_of(i))
                pairs.append((node, raw.line_of(i), None))
        elif isinstance(raw, PosDict):
            for node in raw:
                self.known_node(self.name(node, "a node", raw.line_of(node)), nodes,
                                raw.line_of(node))
                pairs.append((node, raw.line_of(node), raw[node]))
        else:
            raise self.fail(f"'nodes' of a LAN must be a list of nodes or a mapping "
                            f"node: address, not {type_name(raw)}", line)
        if not pairs:
            raise self.fail(f"LAN '{name}' has no nodes", line)
        auto = isinstance(raw, PosList) and subnet is not None
        if auto:
            capacity = subnet.num_addresses - (2 if subnet.prefixlen < 31 else 0)
            if len(pairs) > capacity:
                raise self.fail(f"{len(pairs)} nodes do not fit in {subnet}", line)
            hosts = subnet.hosts()
        members: list[LanMember] = []
        seen: dict[str, str] = {}
        for node, node_line, written in pairs:
            if auto:
                address = f"{next(hosts)}/{subnet.prefixlen}"
            else:
                address = self.member_address(written, node, subnet, node_line)
            if address is not None:
                ip = address.split("/")[0]
                if ip in seen:
                    raise self.fail(f"{ip} is given to both '{seen[ip]}' and '{node}'", node_line)
                seen[ip] = node
            index = per_node.get(node, 0)
            per_node[node] = index + 1
            members.append(LanMember(node=node, dev=f"eth{index}", address=address))
        return members

    def member_address(self, written: Any, node: str, subnet: ipaddress.IPv4Network | None,
                       line: int) -> str | None:
        if written is None:
            return None
        if not isinstance(written, str):
            raise self.fail(f"the address of '{node}' must be like 192.168.1.11/24, "
                            f"not {type_name(written)}", line)
        text = written if "/" in written or subnet is None else f"{written}/{subnet.prefixlen}"
        if "/" not in text:
            raise self.fail(f"the address of '{node}' needs a prefix length: '{written}'", line,
                            f"e.g. {written}/24, or give the LAN a subnet")
        try:
            iface = ipaddress.IPv4Interface(text)
        except ValueError:
            raise self.fail(f"the address of '{node}' is not an IPv4 address/prefix: "
                            f"'{written}'", line) from None
        net = iface.network
        if subnet is not None and (iface.ip not in subnet or net.prefixlen != subnet.prefixlen):
            raise self.fail(f"the address of '{node}' ({iface}) is not in the LAN's subnet "
                            f"{subnet}", line)
        if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
            what = "network" if iface.ip == net.network_address else "broadcast"
            raise self.fail(f"{iface.ip} is the {what} address of {net}, not a host address",
                            line)
        return f"{iface.ip}/{net.prefixlen}"

    # --- steps ----------------------------------------------------------------------------
    def steps(self, data: PosDict, nodes: list[str]) -> list[Step]:
        if "steps" not in data or data["steps"] is None:
            return []
        items = data["steps"]
        if not isinstance(items, PosList):
            raise self.fail(f"'steps' must be a list of steps, not {type_name(items)}",
                            data.value_line("steps"), "each step starts with '- title: ...'")
        return [self.step(self.mapping(item, "a step", items.line_of(i)), i + 1, nodes)
                for i, item in enumerate(items)]

    def step(self, data: PosDict, number: int, nodes: list[str]) -> Step:
        what = f"step {number}"
        self.keys(data, STEP_KEYS, what, required=("title",))
        title = self.string(data, "title", what)
        explain = self.string(data, "explain", what, default="", empty_ok=True) or ""
        node = nodes[0]
        if "node" in data:
            node = self.known_node(self.name(data["node"], "'node'", data.value_line("node")),
                                   nodes, data.value_line("node"))
        on_error = self.choice(data, "on_error", what, ON_ERROR, "stop")
        commands = self.commands(data, what)
        expect = self.expectations(data, what, nodes)
        return Step(number=number, title=title, explain=explain, node=node,
                    commands=tuple(commands), expect=tuple(expect), on_error=on_error,
                    line=data.line)

    def commands(self, data: PosDict, what: str) -> list[CommandLine]:
        if "run" not in data or data["run"] is None:
            return []
        value = data["run"]
        pieces: list[tuple[int, str]] = []
        if isinstance(value, str):
            pieces = self.script_lines(data.node["run"], value, data.value_line("run"))
        elif isinstance(value, PosList):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise self.fail(f"a command in 'run' must be a string, not {type_name(item)}",
                                    value.line_of(i), "quote it")
                pieces += self.script_lines(value.node[i], item, value.line_of(i))
        else:
            raise self.fail(f"'run' in {what} must be commands (a '|' block or a list), "
                            f"not {type_name(value)}", data.value_line("run"))
        return self.join_lines(pieces)

    def script_lines(self, node: Any, value: str, line: int) -> list[tuple[int, str]]:
        if getattr(node, "style", None) == ">":
            raise self.fail("'run' is a folded block ('>'): its lines would be joined into one",
                            line, "use a literal block 'run: |', one command per line")
        return scalar_lines(node, value, line)

    def join_lines(self, pieces: list[tuple[int, str]]) -> list[CommandLine]:
        """One command per line; '#' comments and blank lines skipped; a trailing '\\' continues."""
        out: list[CommandLine] = []
        pending: tuple[int, str] | None = None
        for line, text in pieces:
            if pending is not None:
                start, before = pending
                text = before + " " + text.strip()
                line = start
                pending = None
            stripped = text.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                pending = (line, stripped[:-1].rstrip())
                continue
            out.append(CommandLine(stripped, line))
        if pending is not None:   # a '\\' on the last line: the shell runs what is there
            out.append(CommandLine(pending[1], pending[0]))
        return out

    # --- expectations ----------------------------------------------------------------------
    def expectations(self, data: PosDict, what: str, nodes: list[str]) -> list[Expectation]:
        if "expect" not in data or data["expect"] is None:
            return []
        items = data["expect"]
        if not isinstance(items, PosList):
            raise self.fail(f"'expect' in {what} must be a list, not {type_name(items)}",
                            data.value_line("expect"), "each expectation starts with '- reach:'")
        out: list[Expectation] = []
        for i, item in enumerate(items):
            line = items.line_of(i)
            item = self.mapping(item, "an expectation", line)
            if len(item) != 1:
                kinds = ", ".join(map(str, item)) or "nothing"
                raise self.fail(f"an expectation is one of {', '.join(EXPECT_KINDS)}; "
                                f"found {kinds}", line, "write each as its own '- kind: {...}'")
            kind = next(iter(item))
            if kind not in EXPECT_KINDS:
                raise self.fail(f"unknown expectation '{kind}'", line,
                                did_you_mean(kind, EXPECT_KINDS)
                                or f"expectations: {', '.join(EXPECT_KINDS)}")
            body = self.mapping(item[kind], f"'{kind}'", item.value_line(kind))
            reader = {"reach": self.reach, "trace": self.trace, "output": self.output}[kind]
            out.append(reader(body, line, nodes))
        return out

    def endpoints(self, data: PosDict, what: str, nodes: list[str]) -> tuple[str, str, str, int | None]:
        source = self.string(data, "from", what)
        if "/" in source:
            self.known_node(source.split("/", 1)[0], nodes, data.value_line("from"))
        to = self.string(data, "to", what)
        try:
            ipaddress.IPv4Address(to)
        except ValueError:
            hint = "give the port as 'port: N'" if ":" in to else None
            raise self.fail(f"'to' in {what} must be an IPv4 address, not '{to}'",
                            data.value_line("to"), hint) from None
        proto = self.choice(data, "proto", what, PROTOS, "icmp")
        port = self.integer(data, "port", what, 1, 65535)
        if proto in ("tcp", "udp") and port is None:
            raise self.fail(f"{what} with proto {proto} needs a 'port'", data.line)
        if proto == "icmp" and port is not None:
            raise self.fail(f"{what} has a port but proto icmp", data.line_of("port"),
                            "add 'proto: tcp' or 'proto: udp'")
        return source, to, proto, port

    def reach(self, data: PosDict, line: int, nodes: list[str]) -> Reach:
        self.keys(data, REACH_KEYS, "'reach'", required=("from", "to"))
        source, to, proto, port = self.endpoints(data, "'reach'", nodes)
        want = True
        if "want" in data:
            if not isinstance(data["want"], bool):
                raise self.fail(f"'want' in 'reach' must be true or false, not "
                                f"{type_name(data['want'])}", data.value_line("want"))
            want = data["want"]
        return Reach(source=source, to=to, proto=proto, port=port, want=want, line=line)

    def trace(self, data: PosDict, line: int, nodes: list[str]) -> TraceExpect:
        self.keys(data, TRACE_KEYS, "'trace'", required=("from", "to"))
        source, to, proto, port = self.endpoints(data, "'trace'", nodes)
        sport = self.integer(data, "sport", "'trace'", 1, 65535)
        if sport is not None and proto == "icmp":
            raise self.fail("'trace' has a sport but proto icmp", data.line_of("sport"))
        verdict = self.choice(data, "verdict", "'trace'", VERDICTS, None)
        outcome = self.choice(data, "outcome", "'trace'", OUTCOMES, None)
        reply_verdict = self.choice(data, "reply_verdict", "'trace'", VERDICTS, None)
        delivered_to = self.string(data, "delivered_to", "'trace'")
        src_out, dst_out = (self.endpoint_text(data, key) for key in ("src_out", "dst_out"))
        if all(v is None for v in (verdict, outcome, reply_verdict, delivered_to, src_out,
                                   dst_out)):
            raise self.fail("'trace' needs something to check: verdict, outcome, delivered_to, "
                            "reply_verdict, src_out or dst_out", line)
        return TraceExpect(source=source, to=to, proto=proto, port=port, sport=sport,
                           verdict=verdict, outcome=outcome, delivered_to=delivered_to,
                           reply_verdict=reply_verdict, line=line, src_out=src_out,
                           dst_out=dst_out)

    def endpoint_text(self, data: PosDict, key: str) -> str | None:
        """``IP`` or ``IP:PORT``, as a trace prints the packet's ends."""
        text = self.string(data, key, "'trace'")
        if text is None:
            return None
        ip, _, port = text.partition(":")
        try:
            ipaddress.IPv4Address(ip)
            if port and not 0 < int(port) < 65536:
                raise ValueError(port)
        except ValueError:
            raise self.fail(f"'{key}' in 'trace' must be IP or IP:PORT, not {text!r}",
                            data.value_line(key)) from None
        return text

    def output(self, data: PosDict, line: int, nodes: list[str]) -> OutputExpect:
        self.keys(data, OUTPUT_KEYS, "'output'", required=("run",))
        run = self.string(data, "run", "'output'")
        if "\n" in run.strip():
            raise self.fail("'run' in 'output' is one command", data.value_line("run"))
        node = None
        if "node" in data:
            node = self.known_node(self.name(data["node"], "'node'", data.value_line("node")),
                                   nodes, data.value_line("node"))
        checks = {key: self.string(data, key, "'output'", empty_ok=True)
                  for key in ("contains", "equals", "not_contains")}
        if all(v is None for v in checks.values()):
            raise self.fail("'output' needs contains, equals or not_contains", line)
        return OutputExpect(run=run.strip(), node=node, line=line, **checks)
