"""The real-mode journal: written before each change, atomically, read back by `down`."""

from __future__ import annotations

import json
import os

import pytest

from netlab.backends import journal as J
from netlab.backends.journal import Entry, Journal
from netlab.errors import LabError


def test_an_entry_is_on_disk_as_soon_as_record_returns(tmp_path):
    journal = Journal.open_new("veth", str(tmp_path))
    journal.record("netns", "nl-veth-host", "host/root")
    on_disk = json.loads((tmp_path / "veth.json").read_text())
    assert on_disk["entries"] == [{"kind": "netns", "name": "nl-veth-host", "key": "host/root"}]
    assert on_disk["state"] == "building"


def test_load_gives_back_what_was_recorded_in_order(tmp_path):
    journal = Journal.open_new("bridge", str(tmp_path))
    for name in ("nl-bridge-host", "nl-bridge-host-red", "nl-bridge-host-blue"):
        journal.record("netns", name, None)
    journal.record("netns", "nl-bridge-host-red", None)      # twice: listed once
    journal.set_state("up")
    again = Journal.load("bridge", str(tmp_path))
    assert again is not None
    assert [e.name for e in again.entries] == [
        "nl-bridge-host", "nl-bridge-host-red", "nl-bridge-host-blue"]
    assert again.state == "up"
    assert again.entries[0] == Entry("netns", "nl-bridge-host")


def test_a_lab_with_a_journal_is_up_already(tmp_path):
    Journal.open_new("veth", str(tmp_path))
    with pytest.raises(LabError, match="lab veth is up already"):
        Journal.open_new("veth", str(tmp_path))


def test_remove_then_open_again(tmp_path):
    Journal.open_new("veth", str(tmp_path)).remove()
    assert Journal.load("veth", str(tmp_path)) is None
    Journal.open_new("veth", str(tmp_path))


def test_a_write_that_fails_keeps_the_previous_journal_whole(tmp_path, monkeypatch):
    journal = Journal.open_new("veth", str(tmp_path))
    journal.record("netns", "nl-veth-host")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(J.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        journal.record("netns", "nl-veth-host-red")
    monkeypatch.undo()
    kept = Journal.load("veth", str(tmp_path))
    assert [e.name for e in kept.entries] == ["nl-veth-host"]      # the old file, intact
    assert sorted(os.listdir(tmp_path)) == ["veth.json"], "no temp file left behind"


def test_all_lists_every_journal_and_skips_temp_files(tmp_path):
    Journal.open_new("a", str(tmp_path)).record("netns", "nl-a-host")
    Journal.open_new("b", str(tmp_path)).record("netns", "nl-b-host")
    (tmp_path / ".a.json.tmp123").write_text("{half")
    assert [j.lab for j in Journal.all(str(tmp_path))] == ["a", "b"]
    assert Journal.all(str(tmp_path / "none")) == []


@pytest.mark.parametrize("text", ["{half", "[]", '{"version": 99}',
                                  '{"version": 1, "entries": [{"name": "x"}]}'])
def test_a_damaged_journal_is_a_lab_error_not_a_traceback(tmp_path, text):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(LabError):
        Journal.load("x", str(tmp_path))


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "-x"])
def test_a_lab_name_cannot_escape_the_run_directory(tmp_path, name):
    with pytest.raises(LabError):
        Journal.open_new(name, str(tmp_path))


def test_a_journal_claimed_but_never_written_reads_as_empty(tmp_path):
    (tmp_path / "veth.json").write_text("")           # killed right after claiming the name
    journal = Journal.load("veth", str(tmp_path))
    assert journal is not None and journal.entries == [] and journal.lab == "veth"
    journal.remove()
    assert Journal.load("veth", str(tmp_path)) is None
