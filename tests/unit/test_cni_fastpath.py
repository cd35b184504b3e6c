"""The plugins' start-up shortcuts give what the plain way gives: fastjson's short
parser and escaper against json/_json, host-local's in-place write of
last_reserved_ip, and the check that decides IPAM runs in-process."""

import json
import os
import random
import sys
from pathlib import Path

import _json
import pytest

from netlab.cni import ROOT, delegate, fastjson
from netlab.cni.store import DirStore

REPO = Path(__file__).resolve().parents[2]


def outcome(fn, text):
    try:
        return ("ok", repr(fn(text)))
    except Exception as exc:               # the same error type and message as json's
        return ("error", type(exc).__name__, str(exc))


CASES = ['{}', '[]', ' {"a": 1} ', '{"a":[1,2,{"b":null}],"c":true,"d":false}', '{"a":"x\\ny"}',
         '{"a":1.5}', '{"a":-0}', '{"a":01}', '{"a":1e5}', '"s"', '12', '-', '{"a":}', '{"a" 1}',
         '{,}', '[1,]', '{"a":1,}', '[NaN, Infinity, -Infinity]', '\ufeff{}', '{"a":"\u00e9"}',
         '{"a":"\x01"}', '{"a":"\u2028"}', 'tru', 'true ', '[1 2]', '{"a":1}{', '', '   ',
         '{"a":"b"', '[[[[]]]]', '123abc', '-12', '--1', '00', '[-]', '{"k":"v","k":"w"}',
         '{"a":"\\u003c"}', '\t{"a" :\n[ 1 , 2 ]\r}\n']


@pytest.mark.parametrize("text", CASES)
def test_loads_answers_as_json_does(text):
    assert outcome(fastjson.loads, text) == outcome(json.loads, text)
    assert outcome(fastjson.loads, text.encode()) == outcome(json.loads, text)


def test_loads_on_mutated_configs():
    """Random edits of a plugin config: every one decoded (or refused) as json.loads does."""
    rng = random.Random(5)
    base = json.dumps({"cniVersion": "1.0.0", "name": "n", "isGateway": True, "mtu": -1400,
                       "x": None, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]],
                                           "routes": [{"dst": "0.0.0.0/0"}]}}, indent=2)
    alphabet = '{}[]":, \n\t-0123456789.eEtruefalsnl\\xé'
    for _ in range(3000):
        chars = list(base)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                del chars[pos]
            elif op < 0.8:
                chars.insert(pos, rng.choice(alphabet))
            else:
                chars[pos] = rng.choice(alphabet)
        text = "".join(chars)
        assert outcome(fastjson.loads, text) == outcome(json.loads, text), text


def test_the_short_parser_needs_no_extension_module():
    import subprocess
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from netlab.cni import fastjson; "
             "fastjson.loads('{\"a\": [1, true, null]}'); fastjson.dumps_go({'a': 'b'}); "
             "print('_json' in sys.modules)")
    out = subprocess.run([sys.executable, "-SE", "-c", probe, str(REPO)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("text", ['a"b', "a\\b", "\x00\x1f\x7f", "\u2028<>&", "é", "\b\f\n\r\t", "\ud800", ""])
def test_escape_is_encode_basestring(text):
    assert fastjson._escape(text) == _json.encode_basestring(text)


def test_last_reserved_is_rewritten_in_place(tmp_path):
    store = DirStore(str(tmp_path), "net")
    store.lock()
    store.write("last_reserved_ip.0", "10.0.0.10")
    inode = os.stat(tmp_path / "net/last_reserved_ip.0").st_ino
    store.write("last_reserved_ip.0", "10.0.0.9")
    store.close()
    path = tmp_path / "net/last_reserved_ip.0"
    assert path.read_text() == "10.0.0.9"                 # shorter: cut to the new length
    assert os.stat(path).st_ino == inode
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644 & ~_umask())


def test_a_symlink_in_place_of_last_reserved_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "net").mkdir()
    (tmp_path / "net/last_reserved_ip.0").symlink_to(victim)
    store = DirStore(str(tmp_path), "net")
    store.lock()
    store.write("last_reserved_ip.0", "10.0.0.2")
    store.close()
    assert victim.read_text() == "keep"
    assert not (tmp_path / "net/last_reserved_ip.0").is_symlink()
    assert (tmp_path / "net/last_reserved_ip.0").read_text() == "10.0.0.2"


def test_reads_under_the_lock_see_this_process_writes(tmp_path):
    store = DirStore(str(tmp_path), "net")
    store.lock()
    assert store.create("10.0.0.2", "c\r\neth0")
    assert store.names() == ["10.0.0.2", "lock"]
    assert store.get_by_id("c", "eth0") == ["10.0.0.2"]
    store.remove("10.0.0.2")
    assert store.get_by_id("c", "eth0") == [] and store.names() == ["lock"]
    store.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_in_process_only_for_this_checkouts_host_local(tmp_path):
    ours = Path(ROOT) / "cni_plugins/host-local"
    assert delegate.is_ours(str(ours))
    link = tmp_path / "host-local"
    link.symlink_to(ours)                                  # a symlink runs the same file
    assert delegate.is_ours(str(link))
    copy = tmp_path / "copy" / "host-local"
    copy.parent.mkdir()
    copy.write_bytes(ours.read_bytes())                    # same content, other place: executed
    assert not delegate.is_ours(str(copy))
    assert not delegate.is_ours("/usr/lib/cni/host-local")
