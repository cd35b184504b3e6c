"""The journal of a lab that runs for real: what netlab made, written down before it is made.

    journal = Journal.open_new("bridge")        # /run/netlab/bridge.json; LabError if up already
    journal.record("netns", "nl-bridge-host")   # on disk (temp file, fsync, rename) before
    ...                                         # the namespace is created
    Journal.load("bridge").entries              # what `netlab real down bridge` removes

Only things outside what netlab already owns are journalled: the namespaces
themselves. Links, addresses, routes and rules live inside them and go with
them. A crash between ``record`` and the change leaves an entry for something
that does not exist; removing it is then a no-op, so ``down`` is always safe.
With `real up --host`, each change to the namespace netlab runs in is journalled
too (kind ``host``, ``data``: what undoes it; netlab.backends.hostmode).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from netlab.errors import LabError

RUN_DIR = os.environ.get("NETLAB_RUN_DIR") or "/run/netlab"   # tests: a directory of their own
VERSION = 1
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")   # LAB@NODE: one node of a lab


@dataclass(frozen=True)
class Entry:
    kind: str               # "netns" (or "dir", "listener", "host"; netlab.backends.hostmode)
    name: str               # the real name (/run/netns/NAME)
    key: str | None = None  # what the lab calls it ("node/name")
    data: dict[str, Any] | None = None   # what undoes a change to the host (--host)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "key": self.key}
        if self.data is not None:
            out["data"] = self.data
        return out


@dataclass
class Journal:
    lab: str
    path: str
    entries: list[Entry] = field(default_factory=list)
    state: str = "building"         # building | up | failed

    # --- opening --------------------------------------------------------------------
    @staticmethod
    def path_for(lab: str, run_dir: str = RUN_DIR) -> str:
        if not _SAFE.match(lab):
            raise LabError(f"a lab name for real mode may only hold letters, digits, '.', '_', "
                           f"'-' (and '@' before a node's name): {lab!r}")
        return os.path.join(run_dir, f"{lab}.json")

    @classmethod
    def open_new(cls, lab: str, run_dir: str = RUN_DIR) -> "Journal":
        """A journal for a lab about to come up; refuses when one is on disk already."""
        path = cls.path_for(lab, run_dir)
        os.makedirs(run_dir, mode=0o755, exist_ok=True)
        try:                                   # claim the name: two `up`s cannot both win
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise LabError(f"lab {lab} is up already (journal {path}); "
                           f"run `netlab real down {lab}` first") from None
        journal = cls(lab=lab, path=path)
        journal._write()
        return journal

    @classmethod
    def load(cls, lab: str, run_dir: str = RUN_DIR) -> "Journal | None":
        path = cls.path_for(lab, run_dir)
        return cls.read(path)

    @classmethod
    def read(cls, path: str) -> "Journal | None":
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if not text:                   # claimed by open_new, killed before its first write
                return cls(lab=os.path.basename(path)[:-len(".json")], path=path)
            data = json.loads(text)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read the journal {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise LabError(f"{path} is not a netlab journal (version {VERSION})")
        try:
            entries = [Entry(str(e["kind"]), str(e["name"]),
                             None if e.get("key") is None else str(e["key"]),
                             e["data"] if isinstance(e.get("data"), dict) else None)
                       for e in data.get("entries", [])]
        except (KeyError, TypeError, AttributeError):
            raise LabError(f"{path}: a journal entry needs a kind and a name") from None
        return cls(lab=str(data.get("lab")), path=path, entries=entries,
                   state=str(data.get("state", "building")))

    @classmethod
    def all(cls, run_dir: str = RUN_DIR) -> list["Journal"]:
        try:
            names = sorted(os.listdir(run_dir))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                journal = cls.read(os.path.join(run_dir, name))
                if journal is not None:
                    out.append(journal)
        return out

    # --- writing ----------------------------------------------------------------------
    def record(self, kind: str, name: str, key: str | None = None,
               data: dict[str, Any] | None = None) -> None:
        """Write the entry to disk; only then may the caller make the thing."""
        entry = Entry(kind, name, key, data)
        if entry in self.entries:
            return
        self.entries.append(entry)
        self._write()

    def forget(self, kind: str, name: str, key: str | None = None) -> None:
        """Take back an entry whose thing was never made by us (it existed already)."""
        entry = Entry(kind, name, key)
        if entry in self.entries:
            self.entries.remove(entry)
            self._write()

    def amend(self, old: Entry, new: Entry) -> None:
        """Replace an entry in place (what was learnt once the thing was made)."""
        self.entries[self.entries.index(old)] = new
        self._write()

    def set_state(self, state: str) -> None:
        self.state = state
        self._write()

    def remove(self) -> None:
        """Once everything listed is gone."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        _fsync_dir(os.path.dirname(self.path))

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "lab": self.lab, "state": self.state,
                "entries": [e.to_json() for e in self.entries]}

    def _write(self) -> None:
        directory = os.path.dirname(self.path) or "."
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_json(), f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
