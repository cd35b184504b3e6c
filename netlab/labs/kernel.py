"""A lab on this machine's kernel: built step by step in namespaces netlab owns, probed
with real traffic, and removed by what its journal lists.

    kl = KernelLab(lab)                   # journal /run/netlab/<name>.json claimed
    kl.build_topology()                   # nodes, LAN switches (raises NetlabError on refusal)
    for step in lab.steps:
        record = kl.run_step(step)        # a runner.StepRecord (commands; stopped)
        seen = kl.probe_all([...])        # probe.Seen per (source label, dst, proto, port)
    kl.close(); down_lab(kl.name)

Each command line is parsed as the model parses it (netlab.commands) and its
Ops go to the kernel first, then to a model World kept alongside (which
`ip route flush`-like commands read to plan their Ops). The kernel decides: a
refusal stops the step with the kernel's words and the line. Listeners (`nc
-l`) are real sockets (LinuxBackend.AddListener). A lab's own probe commands
(ping, nc -z, curl, traceroute) run as the real tools inside the namespace, and
so do its show commands (``ip route``, ``iptables -S``, ``iptables-save``, ``bridge
fdb``, ``conntrack -L``, …: show_argv), whose output is the kernel's; the others
(``ip netns``, shell lines) are listed as skipped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from netlab.errors import CommandError, NetlabError
from netlab.labs.model import Lab, Step

REAL_PROBE_TOOLS = ("ping", "nc", "ncat", "netcat", "curl", "traceroute")
SHELL_WORDS = ("|", ">", ">>", "<", "2>", "&&", "||", ";")
RUN_DIR_ENV = "NETLAB_RUN_DIR"


def journal_dir(given: str | None = None) -> str:
    """The journal directory: ``given``, else $NETLAB_RUN_DIR, else /run/netlab."""
    import os

    from netlab.backends.journal import RUN_DIR

    return given or os.environ.get(RUN_DIR_ENV) or RUN_DIR


def real_lab_name(lab: Lab) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", lab.name).strip("-") or "lab"


class KernelFirst:
    """The backend a Shell-like loop talks to in real mode: each Op goes to the kernel,
    then to the model, so the model's World stays what the kernel holds."""

    def __init__(self, model, linux):  # type: ignore[no-untyped-def]
        self.model = model
        self.linux = linux

    @property
    def world(self):  # type: ignore[no-untyped-def]
        return self.model.world

    def apply_all(self, ops) -> None:  # type: ignore[no-untyped-def]
        for op in ops:
            self.apply(op)

    def apply(self, op) -> None:  # type: ignore[no-untyped-def]
        self.linux.apply(op)
        try:
            self.model.apply(op)
        except CommandError as exc:
            raise CommandError(f"the kernel accepted {type(op).__name__} but the model "
                               f"refused it: {exc.message}", status=2) from None


@dataclass
class UpReport:
    lab: str
    applied: int = 0
    skipped: list[str] = field(default_factory=list)      # show commands, not run
    probes_run: int = 0                                    # the lab's own ping / curl / nc
    shows_run: int = 0                                     # show commands run for real
    listeners: int = 0
    names: dict[str, str] = field(default_factory=dict)
    error: str | None = None                               # file:line: cmd: kernel's words

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": self.error is None, "applied": self.applied,
                "skipped": self.skipped, "probes_run": self.probes_run,
                "shows_run": self.shows_run,
                "listeners": self.listeners, "namespaces": self.names, "error": self.error}


class KernelLab:
    """One lab being built on the kernel. ``name``: the prefix of its namespaces and the
    journal's name (default: the lab's own name)."""

    def __init__(self, lab: Lab, run_dir: str | None = None, name: str | None = None,
                 host: bool = False):
        from netlab.backends.journal import Journal
        from netlab.backends.linux import LinuxBackend
        from netlab.backends.model import ModelBackend
        from netlab.model import World

        self.lab = lab
        self.name = name or real_lab_name(lab)
        self.run_dir = journal_dir(run_dir)
        # --host: the lab's first node is this namespace (netlab.backends.hostmode)
        self.host = lab.nodes[0] if host else None
        self.journal = Journal.open_new(self.name, self.run_dir)
        self.linux = LinuxBackend(self.name, self.journal, host=self.host)
        self.twin = KernelFirst(ModelBackend(World(name=lab.name)), self.linux)
        self.report = UpReport(lab=self.name)
        self._prober = None

    @property
    def world(self):  # type: ignore[no-untyped-def]
        return self.twin.world

    # --- building ---------------------------------------------------------------------
    def build_topology(self) -> None:
        from netlab.commands.shell import one_line
        from netlab.labs.build import topology_ops

        from netlab import ops as O

        files = [O.WriteFile(node, path, content) for node in self.lab.nodes
                 for path, content in self.lab.files.items()]     # under the run dir
        for op in topology_ops(self.lab) + files:
            try:
                self.twin.apply(op)
                if isinstance(op, O.AddNode) and op.node == self.host:
                    self._model_of_host()
            except NetlabError as exc:
                self.report.error = f"{self.lab.where(None)}: {type(op).__name__}: {one_line(exc)}"
                raise

    def _model_of_host(self) -> None:
        """--host: the model's host node is what this namespace holds (netlab.backends.
        snapshot), so commands on the machine's own links see them; its iptables tables
        too, unless the model cannot read them (then it starts with empty ones)."""
        from netlab.backends.snapshot import build_netns, read_raw
        from netlab.model import ns_key

        try:
            raw = read_raw(None)
        except NetlabError:          # no iptables-save, say: the model starts fresh
            return
        try:
            ns, _peers = build_netns(raw, self.host)
        except NetlabError:
            raw.iptables = None
            ns, _peers = build_netns(raw, self.host)
        self.world.namespaces[ns_key(self.host)] = ns  # type: ignore[arg-type]

    def run_step(self, step: Step, *, keep_going: bool = False):  # type: ignore[no-untyped-def]
        """The step's command lines on the kernel; a runner.StepRecord (no expectations)."""
        from netlab.commands.shell import one_line, script_commands
        from netlab.labs.runner import CommandRecord, StepRecord

        record = StepRecord(step)
        for command in step.commands:
            for offset, text, stdin in script_commands(command.text):
                line = command.line + offset - 1 if offset else command.line
                try:
                    done = self._run_line(text, step.node, stdin, line)
                except NetlabError as exc:
                    status = exc.status if isinstance(exc, CommandError) else 1
                    done = CommandRecord(text, line, False, one_line(exc), "", status or 1)
                    record.commands.append(done)
                    self.report.error = f"{self.lab.where(line)}: {text}: {one_line(exc)}"
                    if step.on_error != "continue" and not keep_going:
                        record.stopped = done
                        return record
                    continue
                record.commands.append(done)
        return record

    def _run_line(self, text: str, node: str, stdin: str | None, line: int):  # type: ignore[no-untyped-def]
        from netlab.commands.shell import parse
        from netlab.labs.runner import CommandRecord

        command = parse(text, node=node, stdin=stdin)
        world = self.twin.world
        if command.netns not in world.namespaces:
            from netlab.commands.base import netns_missing
            from netlab.model import split_key

            raise netns_missing(split_key(command.netns)[1])
        if command.kind == "probe":
            return self._run_probe_command(text, command.netns, line)
        if command.kind == "show" or (command.query is not None and not command.ops
                                      and command.plan is None):
            import shutil

            argv = show_argv(text) if not command.ops else None
            if argv is not None and shutil.which(argv[0]) is not None:   # the kernel's answer
                return self._run_show(text, command.netns, argv, line)
            self.report.skipped.append(text)
            return CommandRecord(text, line, True, None, "(not run in real mode: show commands "
                                 "print the model's view)\n", 0)
        if getattr(command, "cni_calls", None) is not None and self.host is not None \
                and command.netns.startswith(f"{self.host}/"):
            raise CommandError("--host: a CNI plugin changes this machine's namespace "
                               "without telling netlab, so `down` could not undo it; run "
                               "the lab without --host", status=2)
        if getattr(command, "cni_calls", None) is not None:   # the real plugins
            from netlab.labs.realcni import run_cni

            out, status = run_cni(self, command)
            return CommandRecord(text, line, True, None, out, status)
        for check in command.checks:
            check(world)
        ops = list(command.ops)
        if command.plan is not None:
            ops += command.plan(world)
        self.twin.apply_all(ops)
        self.report.applied += len(ops)
        self.report.listeners = len(self.linux.listeners)
        return CommandRecord(text, line, True, None, command.output or "", command.status)

    def _run_probe_command(self, text: str, key: str, line: int):  # type: ignore[no-untyped-def]
        from netlab.backends.probe import run_tool
        from netlab.labs.runner import CommandRecord

        argv = tool_argv(text)
        if argv is None:
            self.report.skipped.append(text)
            return CommandRecord(text, line, True, None, "(not run in real mode)\n", 0)
        done = run_tool(self.linux.real_name(key), argv)
        self.report.probes_run += 1
        error = None
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip().splitlines()
            error = words[-1] if words else f"exit status {done.returncode}"
        return CommandRecord(text, line, done.returncode == 0, error, done.stdout,
                             done.returncode, probed=True)

    def _run_show(self, text: str, key: str, argv: list[str], line: int):  # type: ignore[no-untyped-def]
        """A show command (``ip route``, ``iptables -S``, ``conntrack -L``, …) run as the
        real tool in the step's namespace; what it printed is the record's output."""
        from netlab.backends.probe import run_tool
        from netlab.labs.runner import CommandRecord

        done = run_tool(self.linux.real_name(key), argv)
        self.report.shows_run += 1
        error = None
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip().splitlines()
            error = words[-1] if words else f"exit status {done.returncode}"
        return CommandRecord(text, line, done.returncode == 0, error,
                             done.stdout + ("" if done.returncode == 0 else done.stderr),
                             done.returncode)

    # --- probing --------------------------------------------------------------------------
    def settle(self) -> None:
        self.linux.settle()

    def real_of(self, label: str, default_node: str) -> str | None:
        ns = self.world.resolve(label, default_node=default_node)
        return None if ns is None else self.linux.names.get(ns.key)

    def label_of(self, real: str | None) -> str | None:
        if real is None:
            return None
        for key, name in self.linux.names.items():
            if name == real:
                ns = self.world.namespaces.get(key)
                return ns.label if ns is not None else key
        return real

    def prober(self):  # type: ignore[no-untyped-def]
        from netlab.backends.probe import Prober, Records

        if self._prober is None:
            self._prober = Prober(Records())
        self._prober.records.files = {l.record: self.linux.real_name(l.key)
                                      for l in self.linux.listeners}
        return self._prober

    def probe_all(self, probes):  # type: ignore[no-untyped-def]
        """probe.KernelProbe list (sources as real names) -> probe.Seen list, concurrently."""
        return self.prober().probe_all(list(probes))

    # --- the end -----------------------------------------------------------------------------
    def finish(self, state: str) -> None:
        self.journal.set_state(state)

    def close(self) -> None:
        self.report.names = self.linux.names
        self.report.listeners = len(self.linux.listeners)
        if self._prober is not None:
            self._prober.close()
        self.linux.close()


SHOW_TOOLS = ("ip", "iptables", "iptables-save", "bridge", "conntrack", "ss", "sysctl")
# `ip` objects whose listing is the kernel's; `ip netns` lists the machine's real names,
# not the lab's, so it keeps the model's view.
IP_SHOWN = {"link", "l", "address", "addr", "a", "route", "r", "ro", "neigh", "neighbour",
            "n", "rule", "ru", "maddress", "maddr", "tunnel"}
IP_OPTIONS_WITH_VALUE = ("-n", "-netns", "--netns", "-f", "-family")
READ_VERBS = ("show", "list", "ls", "lst", "sh", "get")


def _unwrapped(words: list[str]) -> list[str]:
    """``words`` without leading ``sudo`` and ``ip netns exec NS`` (the namespace is
    entered instead)."""
    while words:
        if words[0] == "sudo":
            words = words[1:]
        elif len(words) >= 4 and words[:3] == ["ip", "netns", "exec"]:
            words = words[4:]
        else:
            break
    return words


def show_argv(text: str) -> list[str] | None:
    """The argument list of a lab's show line, to run in the step's namespace (``ip -n
    NS`` and ``ip netns exec NS`` taken off: the namespace is entered instead); None when
    the line keeps the model's view (`ip netns`, a shell line, another tool)."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if any(w in SHELL_WORDS or w == "&" for w in words):
        return None
    words = _unwrapped(words)
    if not words or words[0] not in SHOW_TOOLS:
        return None
    if words[0] == "sysctl" and any(w.startswith(("-w", "--w", "-p", "--load")) or "=" in w
                                    or w == "--system" for w in words[1:]):
        return None
    if words[0] == "ss" and any(w in ("-K", "--kill", "-E", "--events") for w in words[1:]):
        return None
    if words[0] in ("iptables", "conntrack"):
        reads = ("-L", "-S", "-C", "--list", "--list-rules", "--check", "--dump", "-V")
        ok = any(w in reads or (w.startswith("-") and not w.startswith("--") and "L" in w
                                and "Z" not in w and w[1:].isalpha()) for w in words[1:])
        return words if ok and "-Z" not in words and "--zero" not in words else None
    if words[0] == "bridge":
        verbs = [w for w in words[1:] if not w.startswith("-")]
        if verbs[:1] == ["monitor"]:
            return None
        return words if len(verbs) < 2 or verbs[1] in READ_VERBS else None
    if words[0] != "ip":
        return words
    out, rest = ["ip"], words[1:]
    while rest and rest[0].startswith("-"):
        if rest[0] in ("-n", "-netns", "--netns") and len(rest) > 1:
            rest = rest[2:]
            continue
        if rest[0] in IP_OPTIONS_WITH_VALUE and len(rest) > 1:
            out += rest[:2]
            rest = rest[2:]
            continue
        out.append(rest[0])
        rest = rest[1:]
    if not rest or rest[0] not in IP_SHOWN:
        return None
    if len(rest) > 1 and rest[1] not in READ_VERBS and rest[1] not in ("dev", "table", "type"):
        return None
    return out + rest


def tool_argv(text: str) -> list[str] | None:
    """The probe tool's argument list in a lab line (``ip netns exec NS``, ``sudo`` and a
    trailing ``&`` taken off); None when the line needs a shell."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if words[-1:] == ["&"]:
        words = words[:-1]
    words = _unwrapped(words)
    if not words or words[0] not in REAL_PROBE_TOOLS or any(w in SHELL_WORDS for w in words):
        return None
    return words


# --- up and down -----------------------------------------------------------------------------

def up_lab(lab: Lab, run_dir: str | None = None, name: str | None = None,
           host: bool = False) -> UpReport:
    """Build the lab on the kernel and leave it up. The journal stays on disk whatever
    happens, so `down` can clean; raises NetlabError when the lab is up already.
    ``host``: the lab's first node is this namespace (`real up --host`)."""
    kl = KernelLab(lab, run_dir, name, host=host)
    try:
        try:
            kl.build_topology()
        except NetlabError:
            kl.finish("failed")
            return kl.report
        for step in lab.steps:
            record = kl.run_step(step)
            if record.stopped is not None:
                kl.finish("failed")
                return kl.report
        kl.finish("up")
        return kl.report
    finally:
        kl.close()


def down_lab(name: str, run_dir: str | None = None,
             undone: list[int] | None = None) -> list[str]:
    """Remove what the lab's journal lists; the namespaces removed. No journal: nothing.
    ``undone`` (a list) gets the number of changes undone on the host (--host labs)."""
    from netlab.backends.journal import Journal

    journal = Journal.load(name, journal_dir(run_dir))
    if journal is None:
        return []
    return remove(journal, undone)


def down_all(run_dir: str | None = None, undone: list[int] | None = None) -> list[str]:
    from netlab.backends.journal import Journal

    removed: list[str] = []
    problems: list[str] = []
    for journal in Journal.all(journal_dir(run_dir)):
        try:
            removed += remove(journal, undone)
        except NetlabError as exc:                  # the others still go
            problems.append(exc.message if hasattr(exc, "message") else str(exc))
    if problems:
        raise NetlabError("; ".join(problems))
    return removed


def remove(journal, undone: list[int] | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    """Every process in the lab's namespaces (its listeners) killed, then the changes
    made to the host undone (--host: netlab.backends.hostmode), then the namespaces,
    then the listeners' log directory; last the journal itself — kept, listing what is
    left, when a change to the host could not be undone."""
    import shutil

    from netlab.backends.hostmode import host_entry, undo_host
    from netlab.backends.linux import kill_all, netns_inode, pids_in, remove_netns

    netns = [e.name for e in journal.entries if e.kind == "netns"]
    inodes = {i for i in (netns_inode(n) for n in netns) if i is not None}
    pids = pids_in(inodes) if inodes else []
    state_dir = journal.path[:-len(".json")] + ".d"
    if host_entry(journal) is not None:           # a listener on the host: by its log path
        pids += [p for p in _listeners_of(state_dir) if p not in pids]
    # A listener whose namespace is gone already (removed by someone else) keeps it alive:
    # the journal's pid, if that process is still our listener (its log is in our dir).
    for entry in journal.entries:
        if entry.kind == "listener" and entry.name.isdigit() and int(entry.name) not in pids \
                and _runs_with(int(entry.name), state_dir):
            pids.append(int(entry.name))
    if pids:
        kill_all(pids)
    count, problems = undo_host(journal)
    if undone is not None:
        undone.append(count)
    removed = []
    for name in reversed(netns):
        if remove_netns(name):
            removed.append(name)
    for entry in journal.entries:
        if entry.kind == "dir" and entry.name.startswith(journal.path[:-len(".json")]):
            shutil.rmtree(entry.name, ignore_errors=True)
    if problems:
        raise NetlabError(f"lab {journal.lab}: could not undo {len(problems)} changes to the "
                          f"host (kept in {journal.path}; `down` tries again): {problems[0]}")
    journal.remove()
    return removed


def _listeners_of(state_dir: str) -> list[int]:
    """The processes whose command line names the lab's log directory (its listeners),
    wherever they run: with --host they run in the machine's own namespace."""
    import os

    from netlab.backends.linux import LISTENER_SCRIPT

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and \
                _runs_with(int(entry), state_dir + os.sep) and \
                _runs_with(int(entry), LISTENER_SCRIPT):
            found.append(int(entry))
    return found


# --- `lab run --backend real` ---------------------------------------------------------------

class KernelRunner:
    """The Runner's interface (``steps()``, ``backend.world``) on the kernel: each step's
    commands on the kernel, its reach/trace expectations checked with real probes. An
    output expectation reads the model's rendering, so it is reported, not checked. The
    lab is removed by ``close()``."""

    def __init__(self, lab: Lab, run_dir: str | None = None, name: str | None = None):
        self.lab = lab
        self.kl = KernelLab(lab, run_dir, name)
        self.backend = self.kl.twin
        self._sports = iter(range(44000, 65000))
        try:
            self.kl.build_topology()
        except BaseException:
            self.close()
            raise

    @property
    def world(self):  # type: ignore[no-untyped-def]
        return self.kl.world

    def steps(self, *, until: int | None = None, check_expect: bool = True,
              keep_going: bool = False):  # type: ignore[no-untyped-def]
        for step in self.lab.steps[:until]:
            record = self.kl.run_step(step, keep_going=keep_going)
            if check_expect and record.stopped is None:
                record.expect = self.check(step)
            yield record
            if record.stopped is not None:
                return

    def check(self, step: Step) -> list:
        from netlab.backends.probe import KernelProbe
        from netlab.labs.expect import ExpectResult, probe_text
        from netlab.labs.model import Reach, TraceExpect

        probes = [e for e in step.expect if isinstance(e, (Reach, TraceExpect))]
        if probes:
            self.kl.settle()
        wanted = []
        for exp in probes:
            real = self.kl.real_of(exp.source, step.node)
            wanted.append(None if real is None else KernelProbe(
                real, exp.to, exp.proto, exp.port,
                sport=next(self._sports) if exp.proto != "icmp" else None))
        runnable = iter(self.kl.probe_all([p for p in wanted if p is not None]))
        seen = {id(e): (next(runnable) if p is not None else None)
                for e, p in zip(probes, wanted)}
        out = []
        for exp in step.expect:
            if not isinstance(exp, (Reach, TraceExpect)):
                out.append(ExpectResult("output", True, f"`{exp.run}`: not checked in real "
                                        "mode (output checks read the model)", exp.line))
                continue
            what = probe_text(exp.source, exp.to, exp.proto, exp.port) + " [kernel]"
            s = seen[id(exp)]
            if s is None:
                out.append(ExpectResult(exp.kind, False, f"{what}: no namespace called "
                                        f"'{exp.source}'", exp.line))
            elif isinstance(exp, Reach):
                reached = s.outcome == "success"
                detail = f"{what}: " + ("reached" if reached else f"not reached ({s.outcome})")
                if reached != exp.want:
                    detail += f" — expected {'reached' if exp.want else 'not reached'}"
                out.append(ExpectResult("reach", reached == exp.want, detail, exp.line))
            else:
                out.append(self._check_trace(exp, s, step, what))
        return out

    def _check_trace(self, exp, s, step: Step, what: str):  # type: ignore[no-untyped-def]
        from netlab.labs.expect import ExpectResult

        problems = []
        if exp.outcome is not None and s.outcome != exp.outcome:
            problems.append(f"outcome {s.outcome}, expected {exp.outcome}")
        listened = exp.proto != "icmp" and s.outcome == "success"
        if listened and exp.delivered_to is not None:
            got = self.kl.label_of(s.delivered_to)
            ns = self.world.resolve(exp.delivered_to, default_node=step.node)
            want = ns.label if ns is not None else exp.delivered_to
            if got != want:
                problems.append(f"delivered_to {got or 'none'}, expected {want}")
        if listened and exp.src_out is not None and s.src != exp.src_out.split(":")[0]:
            problems.append(f"src_out {s.src}, expected {exp.src_out}")
        if listened and exp.dst_out is not None:
            got_dst = s.dst if ":" in exp.dst_out else (s.dst or "").split(":")[0]
            if got_dst != exp.dst_out:
                problems.append(f"dst_out {got_dst}, expected {exp.dst_out}")
        detail = f"{what}: {s.outcome}" + (f" ({s.detail})" if s.detail else "")
        if problems:
            detail = f"{what}: " + "; ".join(problems) + f" ({s.detail})"
        return ExpectResult("trace", not problems, detail, exp.line)

    def close(self) -> None:
        try:
            self.kl.close()
        finally:
            down_lab(self.kl.name, self.kl.run_dir)


def _runs_with(pid: int, path: str) -> bool:
    """The process ``pid`` has ``path`` in its command line (our listener, not a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return path.encode() in f.read()
    except OSError:
        return False
