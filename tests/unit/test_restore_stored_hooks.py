"""A ``--noflush`` restore onto tables already there checks the hooks of every stored rule;
a stored rule that fits a learned template takes its hooks and jump from the template
(kube-proxy's 150,000 DNAT rules), and the checks say what the full parse says."""

from __future__ import annotations

import pytest

from netlab.errors import CommandError
from netlab.model.world import Netns
from netlab.netfilter import restore
from netlab.netfilter.restore import apply_restore, iptables_save

LEARN = ("*nat\n:KUBE-SEP-A - [0:0]\n:EMPTY - [0:0]\n-A PREROUTING -j KUBE-SEP-A\n"
         "-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n")

CASES = {
    "DNAT reached from POSTROUTING": (
        "*nat\n:X - [0:0]\n-A X -p tcp -m tcp -j DNAT --to-destination 10.0.0.2:80\n"
        "-A POSTROUTING -j X\nCOMMIT\n", "rule in chain X"),
    "DNAT reached from PREROUTING through a jump": (
        "*nat\n:X - [0:0]\n:Y - [0:0]\n-A Y -p tcp -m tcp -j DNAT --to-destination 10.0.0.2:80\n"
        "-A X -j Y\n-A PREROUTING -j X\nCOMMIT\n", None),
    "an empty chain declared again, filled and reached from POSTROUTING": (
        "*nat\n:EMPTY - [0:0]\n-A EMPTY -p tcp -m tcp -j DNAT --to-destination 10.0.0.3:80\n"
        "-A POSTROUTING -j EMPTY\nCOMMIT\n", "rule in chain EMPTY"),
    "a new chain jumping to the stored DNAT's chain, from OUTPUT": (
        "*nat\n:Z - [0:0]\n-A Z -j KUBE-SEP-A\n-A OUTPUT -j Z\nCOMMIT\n", None),
    "MASQUERADE two jumps from PREROUTING and from POSTROUTING": (
        "*nat\n:X - [0:0]\n:Y - [0:0]\n-A POSTROUTING -j Y\n-A PREROUTING -j Y\n-A Y -j X\n"
        "-A X -j MASQUERADE\nCOMMIT\n", "rule in chain X"),
    "MASQUERADE two jumps from POSTROUTING only": (
        "*nat\n:X - [0:0]\n:Y - [0:0]\n-A POSTROUTING -j Y\n-A Y -j X\n"
        "-A X -j MASQUERADE\nCOMMIT\n", None),
    "the stored DNAT's chain jumped to from POSTROUTING": (
        "*nat\n-A POSTROUTING -j KUBE-SEP-A\nCOMMIT\n", "rule in chain KUBE-SEP-A"),
}


def outcome(payload: str, templates: bool) -> tuple[str | None, str]:
    if not templates:
        restore._TEMPLATES.clear()
        restore.stored_meta.cache_clear()
    ns = Netns(node="host", name="root")
    apply_restore(ns, LEARN, False)
    if not templates:
        restore._TEMPLATES.clear()
        restore.stored_meta.cache_clear()
    try:
        apply_restore(ns, payload, True)
    except CommandError as e:
        return str(e), iptables_save(ns)
    return None, iptables_save(ns)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_stored_rules_hooks_with_and_without_templates(case):
    payload, error = CASES[case]
    restore.stored_meta.cache_clear()
    quick = outcome(payload, templates=True)
    full = outcome(payload, templates=False)
    assert quick == full
    assert (quick[0] is None) if error is None else (error in quick[0])


def test_a_stored_rule_that_fits_a_template_gets_its_meta_from_it():
    restore.stored_meta.cache_clear()
    apply_restore(Netns(node="host", name="root"), LEARN, False)
    body = "-p tcp -m tcp -j DNAT --to-destination 10.9.9.9:8080"
    meta = restore._templated_meta(body)
    assert meta is not None and meta.hooks == frozenset({"PREROUTING", "OUTPUT"})
    jump = restore._templated_meta("-j KUBE-SEP-B")
    assert jump is None or jump.jump == "KUBE-SEP-B"


ON_THEIR_OWN = [c for c, (payload, _e) in CASES.items()
                if "KUBE-SEP-A" not in payload and "EMPTY" not in payload]   # no LEARN chains


@pytest.mark.parametrize("case", ON_THEIR_OWN, ids=ON_THEIR_OWN)
def test_the_same_payloads_on_fresh_tables(case):
    payload, error = CASES[case]
    ns = Netns(node="host", name="root")
    try:
        apply_restore(ns, payload, False)
        got = None
    except CommandError as e:
        got = str(e)
    assert (got is None) if error is None else (error in got)


KEEP = "*nat\n:KEEP - [0:0]\n-A KEEP -j RETURN\n-A PREROUTING -j KEEP\nCOMMIT\n"
FAILED = "iptables-restore v1.8.9 (nf_tables): line {}: RULE_APPEND failed (Invalid argument): " \
         "rule in chain {}"
# Several refused rules: the one named is the one the earlier implementation named (the
# first in the chains' order on tables already there, else the first added).
SEVERAL = [
    ("*nat\n:B - [0:0]\n:A - [0:0]\n-A B -j MASQUERADE\n-A A -j MASQUERADE\n-A PREROUTING -j B\n"
     "-A PREROUTING -j A\nCOMMIT\n", (4, "B"), (4, "B")),
    ("*nat\n:B - [0:0]\n:A - [0:0]\n-A A -p tcp -j DNAT --to-destination 1.2.3.4\n"
     "-A B -p tcp -j DNAT --to-destination 1.2.3.5\n-A POSTROUTING -j B\n-A POSTROUTING -j A\n"
     "COMMIT\n", (4, "A"), (5, "B")),
]


@pytest.mark.parametrize("payload, fresh, based", SEVERAL)
def test_which_of_several_refused_rules_is_named(payload, fresh, based):
    for keep, want in ((False, fresh), (True, based)):
        ns = Netns(node="host", name="root")
        if keep:
            apply_restore(ns, KEEP, False)
        with pytest.raises(CommandError) as caught:
            apply_restore(ns, payload, keep)
        assert str(caught.value) == FAILED.format(*want)
    ns = Netns(node="host", name="root")
    apply_restore(ns, KEEP, False)
    with pytest.raises(CommandError) as caught:
        apply_restore(ns, "*nat\n-A KEEP -j MASQUERADE\n:Z - [0:0]\n-A Z -j MASQUERADE\n"
                          "-A OUTPUT -j Z\nCOMMIT\n", True)
    assert str(caught.value) == FAILED.format(2, "KEEP")
