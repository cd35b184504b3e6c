"""The ways iptables refuses something, kept apart from how each tool words them.

``iptables`` and ``iptables-restore`` report the same problem differently
(``iptables: Index of deletion too big.`` against ``iptables-restore: line 2
failed: No chain/target/match by that name.``), so the rule language raises
these and netlab.netfilter.restore words them for the tool that ran.
"""

from __future__ import annotations

VERSION = "v1.8.9 (nf_tables)"


class NfError(Exception):
    """Base: a refusal, with the exit status the tool gives."""

    status = 2

    def for_iptables(self) -> str:
        """The line iptables prints; each kind of refusal words it its own way."""
        return f"iptables {VERSION}: {self}"

    def for_restore(self, line: int) -> str:
        """The line iptables-restore prints for a refusal at ``line``."""
        return f"iptables-restore: line {line} failed"


class XtError(NfError):
    """A parameter problem found while reading the arguments (xtables_error(PARAMETER_PROBLEM)).

    ``bare`` messages are printed without the program prefix (``Bad argument `x'``).
    """

    def __init__(self, message: str, *, bare: bool = False, status: int = 2):
        super().__init__(message)
        self.message = message.strip()
        self.bare = bare
        self.status = status

    def for_iptables(self) -> str:
        return self.message if self.bare else f"iptables {VERSION}: {self.message}"

    def for_restore(self, line: int) -> str:
        text = self.message if self.bare else f"iptables-restore {VERSION}: {self.message}"
        return f"{text} Error occurred at line: {line}"


class TableError(NfError):
    """What libiptc / the nft cache answers for a command on the table (exit 1)."""

    status = 1
    TEXTS = {
        "no_chain": "No chain/target/match by that name.",
        "bad_rule": "Bad rule (does a matching rule exist in that chain?).",
        "insert_index": "Index of insertion too big.",
        "delete_index": "Index of deletion too big.",
        "replace_index": "Index of replacement too big.",
        "chain_exists": "Chain already exists.",
        "file_exists": "File exists.",
        "bad_policy": "Bad policy name. Run `dmesg' for more information.",
        "bad_builtin": "Bad built-in chain name.",
    }
    # iptables-restore says some of them differently.
    RESTORE_TEXTS = {
        "delete_index": "No chain/target/match by that name.",
        "replace_index": "No chain/target/match by that name.",
        "bad_policy": "Bad policy name.",
    }

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind

    def for_iptables(self) -> str:
        return f"iptables: {self.TEXTS[self.kind]}"

    def for_restore(self, line: int) -> str:
        text = self.RESTORE_TEXTS.get(self.kind, self.TEXTS[self.kind])
        return f"iptables-restore: line {line} failed: {text}"


class KernelError(NfError):
    """The kernel refused the batch (EINVAL, EBUSY, EOPNOTSUPP): exit 4."""

    status = 4

    def __init__(self, operation: str, errno_text: str, what: str):
        super().__init__(operation)
        self.operation = operation      # RULE_APPEND, RULE_INSERT, RULE_REPLACE, CHAIN_DEL
        self.errno_text = errno_text    # "Invalid argument", "Device or resource busy", …
        self.what = what                # "rule in chain INPUT", "chain X"

    def for_iptables(self) -> str:
        return f"iptables {VERSION}:  {self.operation} failed ({self.errno_text}): {self.what}"

    def for_restore(self, line: int) -> str:
        return (f"iptables-restore {VERSION}: line {line}: {self.operation} failed "
                f"({self.errno_text}): {self.what}")


class RestoreError(NfError):
    """A problem with the iptables-restore file itself (not one of its rules)."""

    def __init__(self, message: str, *, status: int = 1, prefixed: bool = False,
                 with_line: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.prefixed = prefixed        # "iptables-restore v1.8.9 (nf_tables): …"
        self.with_line = with_line      # followed by "Error occurred at line: N"

    def for_iptables(self) -> str:
        return self.message

    def for_restore(self, line: int) -> str:
        text = f"iptables-restore {VERSION}: {self.message}" if self.prefixed else self.message
        return f"{text} Error occurred at line: {line}" if self.with_line else text


def invalid_argument(chain: str, operation: str = "RULE_APPEND") -> KernelError:
    return KernelError(operation, "Invalid argument", f"rule in chain {chain}")
