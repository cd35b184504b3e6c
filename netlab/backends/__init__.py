"""Backends apply Ops: ModelBackend to a World, LinuxBackend to a kernel."""

from __future__ import annotations

from typing import Iterable, Protocol

from netlab.ops import Op


class Backend(Protocol):
    def apply(self, op: Op) -> None: ...

    def apply_all(self, ops: Iterable[Op]) -> None: ...
