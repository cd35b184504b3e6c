"""Every rule of tests/data/iptables/rule_cases.txt, typed as ``iptables -t T -A CHAIN …``,
gives on the model what it gave on the real iptables v1.8.9 (nf_tables): the same exit
status, and the line ``iptables -S`` prints or the same error message.

The expectations (rule_cases.json) were recorded by record_rules.py in a throwaway
namespace that had the chains MYCHAIN and OTHER and the sets S and KUBE-CLUSTER-IP.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from netlab.backends.model import ModelBackend
from netlab.commands.shell import Shell

DATA = json.loads((Path(__file__).parents[1] / "data" / "iptables" / "rule_cases.json")
                  .read_text())

# Real iptables has these extensions; netlab says it does not model them.
NOT_MODELLED = {"-m owner", "-m pkttype", "-m sctp", "-p sctp"}
# Where the model knowingly differs, and why.
DIVERGES = {
    "-p tcp -m tcp --dport 80 -m tcp --sport 90 -j ACCEPT":
        "iptables-nft merges two tcp matches that both have ports into one; the model keeps "
        "both as typed",
    '-i "eth 0" -j ACCEPT':
        "the model keeps rules as iptables-save text and reads them back; iptables-save "
        "prints this name unquoted (-i eth 0), which cannot be read back (the real "
        "iptables-restore cannot read it either)",
    '-m physdev --physdev-in "" -j ACCEPT':
        "as above: iptables-save prints the empty name as nothing (--physdev-in  -j)",
}


def norm(text: str) -> str:
    """The meaningful lines of an error, as one line."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("Try `")]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


def _cases():
    for case in DATA["cases"]:
        marks = []
        if case["args"] in DIVERGES:
            marks.append(pytest.mark.xfail(reason=DIVERGES[case["args"]], strict=True))
        yield pytest.param(case, marks=marks,
                           id=f"{case['table']} {case['chain']} {case['args']}"[:120])


def test_the_data_is_from_the_machine_the_model_copies():
    assert DATA["iptables"] == "iptables v1.8.9 (nf_tables)"
    assert len(DATA["cases"]) > 600


@pytest.fixture(scope="module")
def shell_factory():
    def make(table: str) -> Shell:
        shell = Shell(ModelBackend())
        for line in (f"iptables -t {table} -N MYCHAIN", f"iptables -t {table} -N OTHER",
                     "ipset create KUBE-CLUSTER-IP hash:ip,port", "ipset create S hash:net"):
            assert shell.run(line).ok, line
        return shell
    return make


@pytest.mark.parametrize("case", list(_cases()))
def test_rule_as_the_real_iptables(case, shell_factory):
    shell = shell_factory(case["table"])
    typed = f"iptables -t {case['table']} -A {case['chain']} {case['args']}"
    result = shell.run(typed)
    if any(word in f" {case['args']}" for word in NOT_MODELLED) and not result.ok \
            and "netlab does not model" in (result.error or ""):
        pytest.skip(f"not modelled: {result.error}")
    assert result.status == case["status"], result.error
    if case["status"] == 0:
        listed = shell.run(f"iptables -t {case['table']} -S {case['chain']}")
        assert listed.output.splitlines()[-1] == case["stdout"]
    else:
        got = norm((result.error or "").split(" (hint:")[0])
        assert got == norm(case["stderr"])


def test_arguments_are_the_shell_words_of_the_recorded_line():
    # record_rules.py split the args with shlex, as the Shell's lexer does.
    case = next(c for c in DATA["cases"] if "'a\"b'" in c["args"])
    assert shlex.split(case["args"])[3] == 'a"b'
