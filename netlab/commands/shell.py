"""The command line a learner types: parse it, apply its Ops, print what the tool prints.

    shell = Shell(ModelBackend(world), default_node="host")
    shell.run("ip netns add red")                   # CommandResult(ok=True, ...)
    shell.run("ip -n red link set lo up")
    shell.run("ip reute")                           # ok=False, error='Object "reute" is unknown,
                                                    #   try "ip help". (hint: did you mean `ip route`?)'

A command runs in the node's own namespace unless ``ip -n NS``, ``ip -netns
NS`` or ``ip netns exec NS …`` names one created with ``ip netns add NS`` on
the same node. Shell features understood: quotes, a trailing ``&``,
``> /proc/sys/…``, ``> /dev/null``, ``2>&1``, ``| tee /proc/sys/…``, ``| grep``
/ ``head`` / ``tail`` / ``wc -l`` after a command that prints, ``sudo`` and
``sh -c "…"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.commands import bridge as bridge_cmd
from netlab.commands import ip as ip_cmd
from netlab.commands import iptables as iptables_cmd
from netlab.commands import probes, sysctl
from netlab.commands.base import (
    Command, Ctx, Output, netns_missing, unsupported, unsupported_feature,
)
from netlab.commands.lexer import is_operator, join_continuations, split, suggest
from netlab.errors import CommandError, NetlabError
from netlab.model import ROOT, split_key

Parser = Callable[[list[str], Ctx], Command]


@dataclass
class CommandResult:
    """What a command did. ``output`` is exactly what the tool prints on stdout
    (warnings included). ``error`` is one line when it failed: the tool's own
    error line and `` (hint: …)`` for a known mistake; when the tool prints
    nothing (``nc -z``, ``curl -s``) or only its usual report (ping's
    statistics), a short summary of why it failed."""
    cmd: str
    ok: bool
    error: str | None
    output: str
    status: int            # the exit status the real tool would give
    traces: list = field(default_factory=list)   # Trace objects of the probes this command ran


# --- the command table ---------------------------------------------------------------------

COMMANDS: dict[str, Parser] = {}


def register(name: str, parser: Parser) -> None:
    """Add a command (``iptables`` registers itself here when it is modelled)."""
    COMMANDS[name] = parser


def _ip(words: list[str], ctx: Ctx) -> Command:
    return ip_cmd.parse_ip(words, ctx, dispatch)


def _echo(words: list[str], ctx: Ctx) -> Command:
    newline = True
    while words and words[0] in ("-n", "-e", "-E", "-ne", "-en"):
        newline = newline and "n" not in words[0]
        words = words[1:]
    text = " ".join(words) + ("\n" if newline else "")
    return ctx.command(output=text, kind="noop")


def _shell_c(shell: str) -> Parser:
    def parse_c(words: list[str], ctx: Ctx) -> Command:
        if len(words) >= 2 and words[0] == "-c":
            return parse_words_line(words[1], ctx.in_shell(shell))
        raise unsupported_feature(f"running a shell other than `{shell} -c \"COMMAND\"`")
    return parse_c


def _sudo(words: list[str], ctx: Ctx) -> Command:
    while words and words[0].startswith("-"):
        words = words[1:]
    if not words:
        raise CommandError("usage: sudo command", status=1)
    return dispatch(words, ctx)


def _noop(words: list[str], ctx: Ctx) -> Command:
    return ctx.command(kind="noop")


def _false(words: list[str], ctx: Ctx) -> Command:
    return ctx.command(kind="noop", status=1)


def _python(words: list[str], ctx: Ctx) -> Command:
    """``python3 -m http.server PORT [--bind ADDR]``: a TCP listener."""
    if len(words) >= 2 and words[0] == "-m" and words[1] == "http.server":
        rest = words[2:]
        port, addr = 8000, "0.0.0.0"
        i = 0
        while i < len(rest):
            if rest[i] in ("--bind", "-b") and i + 1 < len(rest):
                addr = rest[i + 1]
                i += 2
                continue
            if rest[i].isdigit():
                port = int(rest[i])
            i += 1
        return ctx.command(ops=[O.AddListener(ctx.key, "tcp", port, addr)], kind="listen")
    raise unsupported("python3")


for _name, _parser in {
    "ip": _ip, "bridge": bridge_cmd.parse_bridge, "sysctl": sysctl.parse_sysctl,
    "echo": _echo, "cat": sysctl.parse_cat, "ping": probes.parse_ping, "nc": probes.parse_nc,
    "ncat": probes.parse_nc, "netcat": probes.parse_nc, "curl": probes.parse_curl,
    "traceroute": probes.parse_traceroute, "sh": _shell_c("sh"), "bash": _shell_c("bash"),
    "sudo": _sudo, "true": _noop, ":": _noop, "sleep": _noop, "false": _false,
    "python3": _python, "python": _python,
}.items():
    register(_name, _parser)
iptables_cmd.register_all(register)
from netlab.commands import files as files_cmd  # noqa: E402  (ls, cat of a node's files)
register("cat", files_cmd.parse_cat)
register("ls", files_cmd.parse_ls)

KNOWN_ELSEWHERE = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "nft",
                   "docker", "kubectl", "brctl", "ifconfig", "route", "arp", "ss", "netstat",
                   "tcpdump", "ethtool", "conntrack")


def dispatch(words: list[str], ctx: Ctx) -> Command:
    """A simple command (no pipes or redirections) to a Command."""
    if not words:
        return ctx.command(kind="noop")
    name, args = words[0], words[1:]
    tool = name.rsplit("/", 1)[-1] if name.startswith("/") else name
    parser = COMMANDS.get(tool)
    if parser is None:
        hint = None
        if tool not in KNOWN_ELSEWHERE:
            close = suggest(tool, COMMANDS)
            hint = f"did you mean `{close}`?" if close else None
        if tool in ("ifconfig", "route", "arp", "brctl"):
            hint = {"ifconfig": "use `ip addr` / `ip link`", "route": "use `ip route`",
                    "arp": "use `ip neigh`", "brctl": "use `ip link` and `bridge link`"}[tool]
        error = unsupported(tool)
        error.hint = hint
        raise error
    return parser(args, ctx)


# --- a whole line: pipes, redirections, background ------------------------------------------

def parse(line: str, *, node: str, netns: str = ROOT, stdin: str | None = None) -> Command:
    """Text to a Command (Ops, a query or a probe); raises CommandError. Pure.
    ``stdin`` is the text of a here-document given to the line."""
    return parse_words_line(line, Ctx(text=line.strip(), node=node, netns=netns, stdin=stdin))


_HEREDOC = re.compile(r"""<<(-?)\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2\s*$""")


def script_commands(text: str) -> list[tuple[int, str, str | None]]:
    """The commands of a script: (line number, command line, here-document or None).

    ``CMD <<'EOF'`` (or ``<<EOF``, ``<<-EOF``) at the end of a line gives the lines up to
    ``EOF`` to the command as its standard input."""
    lines = text.splitlines()
    out: list[tuple[int, str, str | None]] = []
    chunk: list[str] = []
    start = 1
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = _HEREDOC.search(line)
        if m is None:
            chunk.append(line)
            continue
        out += [(start + n - 1, cmd, None) for n, cmd in join_continuations("\n".join(chunk))]
        body: list[str] = []
        while i < len(lines) and (lines[i].lstrip("\t") if m.group(1) else lines[i]) != m.group(3):
            body.append(lines[i].lstrip("\t") if m.group(1) else lines[i])
            i += 1
        out.append((start + len(chunk), line[:m.start()].strip(), "".join(b + "\n" for b in body)))
        i += 1
        chunk = []
        start = i + 1
    out += [(start + n - 1, cmd, None) for n, cmd in join_continuations("\n".join(chunk))]
    return out


def parse_words_line(line: str, ctx: Ctx) -> Command:
    tokens = split(line)
    if not tokens:
        return ctx.command(kind="noop")
    background = False
    if is_operator(tokens[-1]) and tokens[-1] == "&":
        background = True
        tokens = tokens[:-1]
    from netlab.commands import cni as cni_cmd   # CNI plugins, `bridge add`, cnitool
    cni = cni_cmd.maybe_parse(tokens, ctx)
    if cni is not None:
        cni.background = background
        return cni
    if any(is_operator(t) and t in (";", "&&", "||", "&") for t in tokens):
        raise unsupported_feature("command lists (`;`, `&&`, `||`, `&` in the middle)",
                                  hint="put one command on each line")
    stages: list[list[str]] = [[]]
    for t in tokens:
        if is_operator(t) and t == "|":
            stages.append([])
        else:
            stages[-1].append(t)
    if any(not s for s in stages):
        raise CommandError("sh: syntax error near unexpected token `|'", status=2)
    first, redirect = _redirections(stages[0] if len(stages) == 1 else stages[-1])
    if not first and len(stages) > 1:        # `ip link | > FILE`: only a redirection
        raise unsupported_feature("a pipeline stage that is only a redirection",
                                  hint="write the output to a file with `CMD > FILE`")
    if len(stages) == 1:
        command = _with_redirect(first, redirect, ctx)
    else:
        command = _pipeline(stages[:-1] + [first], redirect, ctx)
    command.background = background
    return command


def _redirections(words: list[str]) -> tuple[list[str], tuple[str, str] | None]:
    """Strip ``> FILE``, ``>> FILE``, ``2> FILE``, ``2>&1``, ``&> FILE`` from a stage;
    return the words and where standard output goes, if anywhere."""
    out: list[str] = []
    target: tuple[str, str] | None = None
    i = 0
    while i < len(words):
        w = words[i]
        if not is_operator(w) or w in ("|", "&", ";", "&&", "||"):
            out.append(w)
            i += 1
            continue
        if w == "<" or w.startswith("0<"):
            raise unsupported_feature("input redirection (`<`)")
        if "&" in w[1:] and w != "&>":          # 2>&1, 1>&2, >&2: duplicating a descriptor
            i += 1
            continue
        if i + 1 >= len(words) or is_operator(words[i + 1]):
            raise CommandError("sh: syntax error near unexpected token `newline'", status=2)
        if not w.startswith("2"):
            target = (w.lstrip("1&"), words[i + 1])
        i += 2
    return out, target


def _with_redirect(words: list[str], redirect: tuple[str, str] | None, ctx: Ctx) -> Command:
    if redirect is None:
        return dispatch(words, ctx)
    path = redirect[1]
    if path == "/dev/null":
        command = dispatch(words, ctx)
        command.output = ""
        if command.query is not None:
            query = command.query

            def silent(world, query=query):  # type: ignore[no-untyped-def]
                out = query(world)
                out.text = ""
                return out
            command.query = silent
        return command
    producer, _ = _unwrap(words, ctx)
    if producer and producer[0] in ("echo", "printf"):
        # The shell opens the file before running the command: in *its* namespace,
        # even for `ip netns exec NS echo 1 > /proc/sys/…` (a classic surprise).
        value = " ".join(w for w in producer[1:] if w not in ("-n", "-e"))
        return sysctl.write_proc(ctx, path, value.replace("\\n", "").strip(), tool=ctx.shell)
    raise unsupported_feature(f"writing the output of `{words[0] if words else ''}` to {path}")


def _unwrap(words: list[str], ctx: Ctx) -> tuple[list[str], Ctx]:
    """Strip ``sudo`` and ``ip netns exec NS``: the command that really runs, and where."""
    while words:
        if words[0] == "sudo":
            words = words[1:]
            while words and words[0].startswith("-"):
                words = words[1:]
        elif len(words) >= 4 and words[0] == "ip" and words[1] == "netns" \
                and words[2] in ("exec", "exe", "ex", "e"):
            ctx = ctx.in_netns(words[3])
            words = words[4:]
        else:
            break
    return words, ctx


def _pipeline(stages: list[list[str]], redirect: tuple[str, str] | None, ctx: Ctx) -> Command:
    head, _ = _unwrap(stages[0], ctx)
    tail = stages[1:]
    consumer, where = _unwrap(tail[0], ctx) if len(tail) == 1 else ([], ctx)
    if consumer and _basename(consumer[0]) == "tee" and head[:1] in (["echo"], ["printf"]):
        paths = [w for w in consumer[1:] if not w.startswith("-")]
        if not paths:
            raise unsupported_feature("`tee` without a file")
        value = " ".join(w for w in head[1:] if w not in ("-n", "-e"))
        echo = "" if (redirect is not None and redirect[1] == "/dev/null") else value + "\n"
        return sysctl.write_proc(where, paths[0], value.strip(), tool="tee", echo_output=echo)
    if consumer and _basename(consumer[0]) in ("nc", "ncat", "netcat") \
            and head[:1] in (["echo"], ["printf"]) and "-l" not in consumer:
        # `echo hello | nc HOST PORT`: a connection; what is sent is not modelled.
        return dispatch(consumer, where)
    head = stages[0]
    command = dispatch(head, ctx)
    if command.query is None and not command.output:
        raise unsupported_feature(f"piping `{head[0]}` into `{tail[0][0]}`")
    filters = [_filter(stage) for stage in tail]
    if redirect is not None and redirect[1] != "/dev/null":
        raise unsupported_feature(f"writing output to {redirect[1]}")

    def apply(text: str) -> tuple[str, int]:
        status = 0
        for f in filters:
            text, status = f(text)
        if redirect is not None:
            text = ""
        return text, status

    if command.query is not None:
        query = command.query

        def filtered(world, query=query):  # type: ignore[no-untyped-def]
            out = query(world)
            if out.status == 0:
                out.text, status = apply(out.text)
                if status:
                    out.status, out.error = status, "(no lines matched)"
            return out
        command.query = filtered
    else:
        text, status = apply(command.output)
        command.output = text
        command.status = status
    return command


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _filter(stage: list[str]) -> Callable[[str], tuple[str, int]]:
    name, args = _basename(stage[0]), stage[1:]
    if name == "grep":
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        words = [a for a in args if not a.startswith("-") or len(a) == 1]
        if not words:
            raise CommandError("Usage: grep [OPTION]... PATTERNS [FILE]...", status=2)
        pattern = words[0]
        try:
            if "F" in flags:
                rx = re.compile(re.escape(pattern), re.I if "i" in flags else 0)
            else:
                rx = re.compile(_basic_regex(pattern) if "E" not in flags else pattern,
                                re.I if "i" in flags else 0)
        except re.error:
            raise CommandError("grep: Unmatched ( or \\(", status=2) from None
        invert, count, wordmatch = "v" in flags, "c" in flags, "w" in flags

        def grep(text: str) -> tuple[str, int]:
            lines = text.splitlines()
            if wordmatch:
                wrx = re.compile(r"\b(?:" + rx.pattern + r")\b", rx.flags)
                keep = [l for l in lines if bool(wrx.search(l)) != invert]
            else:
                keep = [l for l in lines if bool(rx.search(l)) != invert]
            if count:
                return f"{len(keep)}\n", 0 if keep else 1
            return "".join(l + "\n" for l in keep), 0 if keep else 1
        return grep
    if name in ("head", "tail"):
        n = 10
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-n" and i + 1 < len(args):
                n = int(args[i + 1]) if args[i + 1].isdigit() else n
                i += 2
                continue
            if a.startswith("-n") and a[2:].isdigit():
                n = int(a[2:])
            elif a.startswith("-") and a[1:].isdigit():
                n = int(a[1:])
            i += 1

        def cut(text: str) -> tuple[str, int]:
            lines = text.splitlines()
            part = lines[:n] if name == "head" else lines[-n:] if n else []
            return "".join(l + "\n" for l in part), 0
        return cut
    if name == "wc" and args == ["-l"]:
        return lambda text: (f"{len(text.splitlines())}\n", 0)
    if name == "cat" and not args:
        return lambda text: (text, 0)
    if name == "sort":
        return lambda text: ("".join(l + "\n" for l in sorted(text.splitlines())), 0)
    raise unsupported_feature(f"piping into `{name}`")


def _basic_regex(pattern: str) -> str:
    """grep's basic regular expressions: ``\\|``, ``\\(`` are operators, ``|`` ``(`` literal."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(nxt if nxt in "|(){}+?" else "\\" + nxt)
            i += 2
            continue
        out.append("\\" + c if c in "|(){}+?" else c)
        i += 1
    return "".join(out)


# --- the Shell ---------------------------------------------------------------------------

def one_line(exc: BaseException) -> str:
    """The error as one line: the tool's first line, then `` (hint: …)``."""
    if isinstance(exc, CommandError):
        lines = exc.message.strip().splitlines() or [type(exc).__name__]
        hint = " ".join(exc.hint.split()) if exc.hint else None
        return lines[0] if not hint else f"{lines[0]} (hint: {hint})"
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0]


class Shell:
    """Runs command lines against a ModelBackend, as a person at a terminal would."""

    def __init__(self, backend: ModelBackend, default_node: str = "host"):
        self.backend = backend
        self.default_node = default_node

    @property
    def world(self):  # type: ignore[no-untyped-def]
        return self.backend.world

    def run(self, line: str, node: str | None = None, stdin: str | None = None) -> CommandResult:
        """One command line. Never raises for a bad command: ok=False and a one-line error.
        ``stdin``: the text of a here-document given to it."""
        node = node or self.default_node
        text = line.strip()
        try:
            self._ensure_node(node)
            command = parse(line, node=node, stdin=stdin)
            return self._execute(command)
        except CommandError as exc:
            return CommandResult(text, False, one_line(exc), "", exc.status or 1)
        except NetlabError as exc:
            return CommandResult(text, False, one_line(exc), "", 1)
        except Exception as exc:  # a bug in netlab: still one line, never a traceback
            return CommandResult(text, False,
                                 f"netlab: internal error: {type(exc).__name__}: {exc}", "", 70)

    def run_script(self, text: str, node: str | None = None,
                   stop_on_error: bool = True) -> list[CommandResult]:
        """Several lines: blank lines and # comments skipped, ``\\`` continuations joined,
        here-documents (``iptables-restore <<'EOF'`` … ``EOF``) given to their command."""
        results = []
        for _number, line, stdin in script_commands(text):
            result = self.run(line, node=node, stdin=stdin)
            results.append(result)
            if stop_on_error and not result.ok:
                break
        return results

    # --- internals --------------------------------------------------------------------
    def _ensure_node(self, node: str) -> None:
        world = self.backend.world
        if f"{node}/{ROOT}" not in world.namespaces:
            self.backend.apply(O.AddNode(node))

    def _execute(self, command: Command) -> CommandResult:
        world = self.backend.world
        if command.netns not in world.namespaces:
            node, name = split_key(command.netns)
            error = netns_missing(name)
            close = suggest(name, [ns.name for ns in world.namespaces.values()
                                   if ns.node == node and ns.kind == "netns"])
            error.hint = f"did you mean `{close}`?" if close else \
                f"create it first: `ip netns add {name}`"
            raise error
        for check in command.checks:
            check(world)
        ops = list(command.ops)
        if command.plan is not None:
            ops += command.plan(world)
        if ops:
            try:
                self.backend.apply_all(ops)
            except CommandError as exc:
                if exc.hint is None and command.explain is not None:
                    exc.hint = command.explain(self.backend.world, exc)
                raise
        output, status, error, traces = command.output, command.status, None, []
        if command.query is not None:
            result: Output = command.query(self.backend.world)
            output += result.text
            status, error, traces = result.status, result.error, result.traces
            for op in result.ops:
                try:
                    self.backend.apply(op)
                except CommandError:
                    pass
        if status and not error:
            error = f"exit status {status}"
        return CommandResult(command.text, status == 0, error if status else None, output,
                             status, traces)
