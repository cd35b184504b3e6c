"""A payload made from its parts (restore.prepared) restores exactly as its text does: the
same tables (rules, counters, chain order) or the same error, from the same tables before,
with and without --noflush; random payloads, and kube-proxy's for random clusters."""

from __future__ import annotations

import random

import pytest

from netlab.errors import CommandError, UnsupportedCommand
from netlab.k8s import kubeproxy as K
from netlab.model.world import Netns
from netlab.netfilter.restore import Block, Prepared, apply_restore, iptables_save, prepared

from k8s_services_random import random_cluster

GOOD = ["-j ACCEPT", "-j RETURN", "", "-s 10.0.0.1/32 -j U3",
        "-m statistic --mode random --probability 0.50000000000 -j U1",
        "-m statistic --mode random --probability 0.33333333349 -j U2",
        '-m comment --comment "a b" -j U1', "-m comment --comment x -j U3",
        "-d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j U2",
        "-m mark --mark 0x4000/0x4000 -j ACCEPT", "-j MARK --set-xmark 0x4000/0x4000"]
NAT = ["-p tcp -m tcp -j DNAT --to-destination 10.1.2.3:8080",
       "-p udp -m udp --dport 53 -j DNAT --to-destination 10.1.2.4:53",
       "-j MASQUERADE", "-j MASQUERADE --random-fully"]
BAD = ["-m statistic --mode random --probability 0.33333333333 -j U2",     # not canonical
       "-j REJECT --reject-with icmp-port-unreachable", "-d 10.96.0.1 -p tcp -j U2",
       "-m set --match-set S1 src -j DROP", "-m addrtype --dst-type LOCAL -j U1",
       "-j NOPE", "-j U9", "-g U1", "--bogus", "-p tcp --dport 99999 -j ACCEPT",
       "-s 300.1.1.1/32 -j ACCEPT", "-m conntrack --ctstate NEW -j U1", "-j DROP"]
USER = ["U1", "U2", "U3"]
ODD = ["KUBE-SVC-X", "has space", "x" * 29, "DNAT", "-bad", "PREROUTING", "INPUT"]
BUILTIN = {"filter": ["INPUT", "FORWARD", "OUTPUT"],
           "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]}


def random_sections(rnd: random.Random):
    """Mostly payloads that load (so the tables are compared), now and then a line or a
    name that fails somewhere (so the errors are compared)."""
    sections = []
    odd = rnd.random() < 0.3
    for table in rnd.sample(["filter", "nat"], rnd.randint(1, 2)):
        if odd and rnd.random() < 0.1:
            table = rnd.choice(["mangle", "raw", "bogus"])
        chains = rnd.sample(USER, rnd.randint(0, 3))
        if odd and rnd.random() < 0.3:
            chains.insert(rnd.randrange(len(chains) + 1), rnd.choice(ODD))
        if odd and chains and rnd.random() < 0.2:           # a chain declared twice
            chains.insert(rnd.randrange(len(chains) + 1), rnd.choice(chains))
        if rnd.random() < 0.1:                              # many new chains
            chains += [f"N{i}" for i in range(rnd.randint(2, 80))]
        runs = []
        pool = GOOD + (NAT if table == "nat" else [])
        for _ in range(rnd.randint(0, 8)):
            chain = rnd.choice(chains + BUILTIN.get(table, ["INPUT"]))
            if odd and rnd.random() < 0.1:
                chain = rnd.choice(ODD + ["NOCHAIN"])
            bodies = [rnd.choice(BAD) if odd and rnd.random() < 0.1 else rnd.choice(pool)
                      for _ in range(rnd.randint(1, 4))]
            runs.append((chain, bodies))
        if rnd.random() < 0.5:
            runs.insert(rnd.randrange(len(runs) + 1), random_block(rnd, table, chains, odd))
        sections.append((table, chains, runs))
    return sections


# Columns of one shape each, mostly (a Block's fast path), now and then one of mixed shapes
# or a rule of another shape (its lines then go one by one).
SHAPED = [["-s 10.0.0.%d/32 -j U%d" % (i, 1 + i % 3) for i in range(1, 9)],
          ["-m statistic --mode random --probability 0.%011d -j U%d" % (10 ** 10 * 5 // i, 1 + i % 3)
           for i in range(2, 10)],
          ["-j U%d" % (1 + i % 3) for i in range(8)]]
SHAPED_NAT = [["-p tcp -m tcp -j DNAT --to-destination 10.1.2.%d:80%d" % (i, i) for i in range(8)],
              ["-p udp -m udp -j DNAT --to-destination 10.1.2.%d:53" % i for i in range(8)]]


def random_block(rnd: random.Random, table: str, chains: list[str], odd: bool) -> Block:
    pool = SHAPED + (SHAPED_NAT if table == "nat" else [])
    names = chains + (BUILTIN.get(table, ["INPUT"]) if rnd.random() < 0.2 else [])
    if odd and rnd.random() < 0.2:
        names = names + [rnd.choice(ODD + ["NOCHAIN"])]
    if not names:
        return Block([], [])
    rows = [rnd.choice(names) for _ in range(rnd.randint(0, 6))]
    columns = []
    for _ in range(rnd.randint(1, 3)):
        shape = rnd.choice(pool)
        column = [rnd.choice(shape) for _ in rows]
        if column and rnd.random() < 0.15:
            column[rnd.randrange(len(column))] = rnd.choice(GOOD + BAD)
        columns.append(column)
    return Block(rows, columns)


def before(rnd: random.Random) -> Netns:
    ns = Netns(node="n", name="root")
    if rnd.random() < 0.7:
        apply_restore(ns, "*nat\n:U1 - [0:0]\n:U2 - [0:0]\n:U3 - [0:0]\n-A U1 -j U2\n"
                          "-A PREROUTING -j U1\nCOMMIT\n*filter\n:U1 - [0:0]\n:U2 - [0:0]\n"
                          ":U3 - [0:0]\n-A INPUT -j U1\n-A U1 -j ACCEPT\nCOMMIT\n", noflush=True)
    return ns


def outcome(ns: Netns, payload: str, noflush: bool) -> str:
    try:
        apply_restore(ns, payload, noflush=noflush)
    except (CommandError, UnsupportedCommand) as exc:
        return f"error {type(exc).__name__} {exc}"
    return iptables_save(ns, counters=True)


def same(sections, seed: int, noflush: bool) -> str:
    payload = prepared(sections)
    text = str(payload)
    assert type(text) is str and text == payload
    got = outcome(before(random.Random(seed)), payload, noflush)
    assert got == outcome(before(random.Random(seed)), text, noflush)
    return got


def test_random_payloads_restore_as_their_text(monkeypatch):
    import netlab.netfilter.restore as R

    blocks = {True: 0, False: 0}
    real = R._Restore.fast_block

    def counted(self, number, block):
        done = real(self, number, block)
        blocks[done] += bool(block.chains and block.columns)
        return done

    monkeypatch.setattr(R._Restore, "fast_block", counted)
    rnd = random.Random(6)
    errors = fine = 0
    for seed in range(3000):
        sections = random_sections(rnd)
        got = same(sections, seed, noflush=rnd.random() < 0.7)
        errors += got.startswith("error")
        fine += not got.startswith("error")
    assert errors > 100 and fine > 300           # both kinds of outcome were compared
    assert blocks[True] > 300 and blocks[False] > 300       # Blocks whole and line by line


def test_the_parts_go_with_the_payload_only_when_they_cut_back_into_its_lines():
    kept = prepared([("nat", ["U1"], [("U1", ["-j ACCEPT", ""])])])
    assert type(kept) is Prepared and kept == "*nat\n:U1 - [0:0]\n-A U1 -j ACCEPT\n-A U1\nCOMMIT\n"
    for sections in ([("nat", ["U1"], [("U1", ["-j ACCEPT\n-A U1 -j DROP"])])],
                     [("nat", ["U1\n"], [])], [("nat", [], [("U 1", ["-j ACCEPT"])])]):
        payload = prepared(sections)
        assert type(payload) is str
        same(sections, 1, noflush=True)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("style", ["save", "kube-proxy"])
def test_kube_proxy_payloads_restore_as_their_text(seed, style):
    cluster = random_cluster(seed, large=seed % 10 == 3)
    ports = K.service_ports(cluster)
    for node in cluster.nodes:
        payload = K.sync_payload(ports, node.name, cluster.spec.pod_cidr, style=style)
        assert type(payload) is Prepared
        dumps = []
        for text in (payload, str(payload)):
            ns = Netns(node=node.name, name="root")
            apply_restore(ns, K.kubelet_payload(), noflush=True)
            apply_restore(ns, K.startup_payload(), noflush=True)
            dumps.append(outcome(ns, text, noflush=True))
        assert dumps[0] == dumps[1]


def text_of(sections) -> str:
    """prepared's text by its definition, a line at a time."""
    lines = []
    for table, chains, runs in sections:
        lines.append(f"*{table}")
        lines += [f":{chain} - [0:0]" for chain in chains]
        for run in runs:
            pairs = run.runs() if type(run) is Block else [(run[0], run[1])]
            lines += [f"-A {chain} {body}" if body else f"-A {chain}"
                      for chain, bodies in pairs for body in bodies]
        lines.append("COMMIT")
    return "".join(line + "\n" for line in lines)


def test_the_text_is_its_parts_line_by_line():
    rnd = random.Random(11)
    for _ in range(2000):
        sections = random_sections(rnd)
        assert str(prepared(sections)) == text_of(sections)
    assert prepared([]) == "" and text_of([]) == ""



def test_a_shaped_template_fits_only_lines_of_its_shape():
    """A template ``shaped`` (fast_block then skips the per-line shape checks) fits no line
    of another _shape: the rules it fits, their values replaced by random text (blanks,
    dashes, "m", digits), fit it only when their shape is still the template's."""
    import netlab.netfilter.restore as R

    R._TEMPLATES.clear()
    rnd = random.Random(5)
    bodies = []
    for seed in range(300):                 # random payloads' templates and kube-proxy's
        ns = before(random.Random(seed))
        outcome(ns, prepared(random_sections(rnd)), noflush=True)
        bodies += iptables_save(ns).splitlines()
    for seed in (3, 13):
        cluster = random_cluster(seed, large=True)
        ns = Netns(node="n", name="root")
        for payload in K.node_payloads(cluster, cluster.nodes[0].name):
            apply_restore(ns, payload, noflush=True)
        bodies += iptables_save(ns).splitlines()
    pieces = ["", " ", "-", "m", "-m", "m ", "-m ", "--", " --", "x", "1", "0.5", "10.0.0.1", "KUBE"]
    checked = set()
    for line in set(bodies):
        if not line.startswith("-A "):
            continue
        rest = line[3:].partition(" ")[2]
        shape = R._shape(rest)
        for buckets in R._TEMPLATES.values():
            template = R._first_fit(buckets.get(shape, []), rest)
            if template is None or not template.shaped:
                continue
            checked.add(template.regex.pattern)
            m = template.regex.fullmatch(rest)
            for _ in range(200):
                text = rest
                for g in range(template.regex.groups, 0, -1):
                    value = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 4)))
                    if rnd.random() < 0.5:
                        value = m.group(g) + value if rnd.random() < 0.5 else value + m.group(g)
                    text = text[:m.start(g)] + value + text[m.end(g):]
                if template.regex.fullmatch(text):
                    assert R._shape(text) == shape, (template.regex.pattern, text)
    assert len(checked) >= 5
