"""The CLI: exit codes 0/1/2, the JSON shapes of DESIGN.md, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app
from tests.unit.lab_text import HEAD, VETH_STEP

REPO = Path(__file__).resolve().parents[2]
VETH = "steps:\n" + VETH_STEP


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_line_error(result, prefix: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]


# --- lab list / show ---------------------------------------------------------------------------
def test_lab_list():
    result = invoke("lab", "list")
    assert result.exit_code == 0
    assert "02-veth" in result.stdout and "Two network namespaces joined by a veth pair" in result.stdout


def test_lab_list_json():
    data = json.loads(invoke("lab", "list", "--json").stdout)
    ids = [lab["id"] for lab in data["labs"]]
    assert ids[:4] == ["01-switch-and-router", "02-veth", "03-bridge", "04-lan-through-host"]
    assert all({"id", "name", "title", "steps", "path"} <= set(lab) for lab in data["labs"])


def test_lab_show_prints_steps_explanations_and_commands():
    result = invoke("lab", "show", "veth")
    assert result.exit_code == 0
    out = result.stdout
    assert "Step 1: Create two network namespaces" in out
    assert "ip link add veth-red type veth peer name veth-blue" in out
    assert "A veth pair is two interfaces" in out


def test_lab_show_json():
    data = json.loads(invoke("lab", "show", "02", "--json").stdout)
    assert data["name"] == "veth" and data["nodes"] == ["host"]
    step = data["steps"][1]
    assert step["commands"][0] == {"cmd": "ip link add veth-red type veth peer name veth-blue",
                                   "line": step["commands"][0]["line"]}
    assert data["steps"][2]["expect"][0]["kind"] == "reach"


# --- lab run / check ----------------------------------------------------------------------------
def test_lab_run_json_shape(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH + "    expect:\n      - reach: {from: red, to: 192.168.15.2}\n")
    result = invoke("lab", "run", path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (step,) = data["steps"]
    assert step["title"] == "a veth pair"
    assert all({"cmd", "ok", "error", "output"} <= set(c) for c in step["commands"])
    assert step["expect"][0]["kind"] == "reach" and step["expect"][0]["ok"] is True
    assert {"kind", "ok", "detail"} <= set(step["expect"][0])


def test_lab_run_text_shows_commands_and_checks(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH + "    expect:\n      - reach: {from: red, to: 192.168.15.2}\n")
    result = invoke("lab", "run", path, "--step")     # stdin is not a TTY: no waiting
    assert result.exit_code == 0, result.output
    assert "$ ip netns add red" in result.stdout
    assert "✓ red → 192.168.15.2 (icmp): reached" in result.stdout
    assert "1 expectations passed" in result.stdout


def test_failed_expectation_exits_1(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH + "    expect:\n      - reach: {from: red, to: 10.9.9.9}\n")
    for command in ("run", "check"):
        result = invoke("lab", command, path)
        assert result.exit_code == 1, (command, result.output)
    result = invoke("lab", "check", path)
    assert f"{path}:17: ✗ red → 10.9.9.9 (icmp): not reached" in result.stdout


def test_check_passes_with_exit_0(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH + "    expect:\n      - reach: {from: red, to: 192.168.15.2}\n")
    result = invoke("lab", "check", path)
    assert result.exit_code == 0 and "1 expectations passed" in result.stdout


def test_check_json(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH + "    expect:\n      - reach: {from: red, to: 10.9.9.9}\n")
    result = invoke("lab", "check", path, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["steps"][0]["expect"][0]["ok"] is False


def test_refused_command_is_bad_input_with_file_and_line(tmp_path: Path):
    path = write(tmp_path, HEAD + "steps:\n  - title: a\n    run: |\n      ip netns add red\n"
                 "      ip netns add red\n")
    one_line_error(invoke("lab", "run", path), f"netlab: {path}:8: ip netns add red: ")
    one_line_error(invoke("lab", "check", path), f"netlab: {path}:8: ip netns add red: ")
    result = invoke("lab", "run", path, "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["stopped"]["line"] == 8


def test_bad_lab_file_is_one_line(tmp_path: Path):
    path = write(tmp_path, HEAD + "stpes: []\n")
    for args in (("lab", "run", path), ("lab", "check", path), ("lab", "show", path),
                 ("trace", path, "--from", "host", "--to", "10.0.0.1"), ("show", path)):
        one_line_error(invoke(*args),
                       f"netlab: {path}:4: unknown key 'stpes' in the lab (hint: did you mean")


def test_yaml_syntax_error_is_one_line(tmp_path: Path):
    path = write(tmp_path, HEAD + "steps:\n  - title: [a\n")
    one_line_error(invoke("lab", "check", path), f"netlab: {path}:6: YAML syntax error")


def test_unknown_lab():
    one_line_error(invoke("lab", "run", "no-such-lab"), "netlab: no lab called 'no-such-lab'")
    one_line_error(invoke("lab", "run", "labs/no-such.yaml"), "netlab: labs/no-such.yaml: no such lab file")


def test_real_backend_of_lab_run_needs_root(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    one_line_error(invoke("lab", "run", "02", "--backend", "real"),
                   "netlab: real mode needs root (run with sudo)")
    one_line_error(invoke("lab", "check", "02", "--backend", "real"),
                   "netlab: real mode needs root (run with sudo)")


def test_usage_errors_exit_2():
    assert invoke("lab", "run").exit_code == 2
    assert invoke("trace", "02", "--to", "1.2.3.4").exit_code == 2     # --from missing


# --- trace -------------------------------------------------------------------------------------
def test_trace_json_is_the_trace(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH)
    result = invoke("trace", path, "--from", "red", "--to", "192.168.15.2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"packet", "from", "paths"}
    assert data["packet"]["proto"] == "icmp" and data["packet"]["dst"] == "192.168.15.2"
    (path0,) = data["paths"]
    assert path0["verdict"] == "delivered" and path0["outcome"] == "success"
    assert {"probability", "hops", "packet_out"} <= set(path0)


def test_trace_text_groups_hops_by_namespace(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH)
    result = invoke("trace", path, "--from", "red", "--to", "192.168.15.2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("icmp echo-request 192.168.15.1 > 192.168.15.2 from ")
    assert "└── host" in lines            # the node, then its namespaces (netlab/viz/text.py)
    assert "    ├── netns red" in lines and "    └── netns blue" in lines
    assert "verdict: delivered to " in result.stdout and "outcome: success" in result.stdout
    assert any(line.startswith("reply: icmp echo-reply") for line in lines)


def test_trace_port_means_tcp(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH)
    data = json.loads(invoke("trace", path, "--from", "red", "--to", "192.168.15.2:80",
                             "--sport", "40001", "--json").stdout)
    assert data["packet"]["proto"] == "tcp" and data["packet"]["dport"] == 80
    assert data["packet"]["sport"] == 40001
    assert data["paths"][0]["outcome"] == "refused"      # nothing listens on port 80


def test_trace_after_step(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH + "  - title: down\n    run: ip -n red link set veth-red down\n")
    after_1 = json.loads(invoke("trace", path, "--from", "red", "--to", "192.168.15.2",
                                "--after-step", "1", "--json").stdout)
    after_2 = json.loads(invoke("trace", path, "--from", "red", "--to", "192.168.15.2",
                                "--json").stdout)
    assert after_1["paths"][0]["outcome"] == "success"
    assert after_2["paths"][0]["outcome"] != "success"


def test_trace_goes_on_past_a_refused_command(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH.replace("      ip netns add blue\n",
                                              "      ip netns add blue\n      ip netns add blue\n"))
    result = invoke("trace", path, "--from", "red", "--to", "192.168.15.2", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["paths"][0]["outcome"] == "success"


@pytest.mark.parametrize("args,message", [
    (("--from", "green", "--to", "192.168.15.2"), "netlab: no namespace called 'green'"),
    (("--from", "red", "--to", "192.168.15"), "netlab: --to: '192.168.15' is not an IPv4 address"),
    (("--from", "red", "--to", "192.168.15.2:x"), "netlab: --to: 'x' is not a port"),
    (("--from", "red", "--to", "192.168.15.2", "--proto", "tcp"), "netlab: --proto tcp needs a port"),
    (("--from", "red", "--to", "192.168.15.2:80", "--proto", "icmp"),
     "netlab: --proto icmp takes no port"),
    (("--from", "red", "--to", "192.168.15.2", "--proto", "sctp"), "netlab: --proto: 'sctp'"),
    (("--from", "red", "--to", "192.168.15.2", "--pick", "3"), "netlab: --pick 3: the trace has 1"),
    (("--from", "red", "--to", "192.168.15.2", "--after-step", "9"), "netlab: "),
])
def test_trace_bad_input(tmp_path: Path, args, message):
    path = write(tmp_path, HEAD + VETH)
    one_line_error(invoke("trace", path, *args), message)


# --- show --------------------------------------------------------------------------------------
def test_show_json(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH)
    data = json.loads(invoke("show", path, "--json").stdout)
    names = [ns["name"] for ns in data["namespaces"]]
    assert names == ["host", "host/red", "host/blue"]
    red = data["namespaces"][1]
    assert "192.168.15.1/24" in red["addr"] and "192.168.15.0/24 dev veth-red" in red["route"]


def test_show_one_namespace_text(tmp_path: Path):
    path = write(tmp_path, HEAD + VETH)
    result = invoke("show", path, "--ns", "blue")
    assert result.exit_code == 0
    assert "== host/blue" in result.stdout and "$ ip -n blue addr" in result.stdout
    assert "192.168.15.2/24" in result.stdout and "host/red" not in result.stdout


def test_show_leaves_switches_out():
    data = json.loads(invoke("show", "04", "--json").stdout)
    assert [ns["kind"] for ns in data["namespaces"]].count("switch") == 0
    assert {"host", "node2"} <= {ns["name"] for ns in data["namespaces"]}


# --- help and start-up ---------------------------------------------------------------------------
@pytest.mark.parametrize("args", [(), ("lab",), ("lab", "list"), ("lab", "show"), ("lab", "run"),
                                  ("lab", "check"), ("trace",), ("show",)])
def test_every_command_has_help_with_examples(args):
    result = invoke(*args, "--help")
    assert result.exit_code == 0 and "Examples" in result.stdout and "$ netlab" in result.stdout


def test_cli_import_does_not_load_heavy_modules():
    code = ("import sys, netlab.cli.main; "
            "print(sorted(m for m in ('scapy', 'pyroute2', 'networkx', 'netlab.dataplane', "
            "'netlab.commands', 'rich.markdown') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_module_runs_as_a_program():
    proc = subprocess.run([sys.executable, "-m", "netlab.cli.main", "lab", "check", "02"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_test_command_is_what_ci_runs():
    command = ("python3 -m venv .venv && .venv/bin/pip install -q '.[test]' && "
               ".venv/bin/python -m pytest -q")
    assert command in (REPO / "README.md").read_text()
    assert command in (REPO / ".ci" / "run").read_text()
