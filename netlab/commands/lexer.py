"""Words of a command line, split the way a POSIX shell splits them.

Only the shell features that lab scripts use are understood: quotes,
backslash escapes, ``#`` comments, ``\\`` line continuations, and the
operators ``|``, ``>``, ``>>``, ``&``, ``;``, ``&&`` and ``||``. Nothing here
runs anything: the result is a list of words and operators.

Also here: iproute2's keyword matching (``matches``: an unambiguous prefix of
a keyword is the keyword) and the edit distance behind "did you mean" hints.
"""

from __future__ import annotations

from typing import Iterable

from netlab.errors import CommandError


class Operator(str):
    """A shell operator (``|``, ``>``, ``&`` ...) as opposed to a quoted word."""


# Characters that make a line need the careful split; the rest is str.split().
_SPECIAL = frozenset("'\"\\#|&;<>")
_OPERATOR_CHARS = "|&;<>"
_TWO_CHAR = ("&&", "||", ">>")


def split(line: str) -> list[str]:
    """Words and operators of one command line.

    ``echo 1 >/proc/x`` gives ``['echo', '1', '>', '/proc/x']`` with ``>`` an
    :class:`Operator`; a quoted ``'>'`` stays a plain word.
    """
    if not _SPECIAL.intersection(line):
        return line.split()
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t\r\n":
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
        elif c == "#" and not in_word:
            break
        elif c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                raise CommandError("sh: syntax error: unterminated quoted string", status=2)
            cur.append(line[i + 1:j])
            in_word = True
            i = j + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise CommandError("sh: syntax error: unterminated quoted string", status=2)
                c = line[i]
                if c == '"':
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '"\\$`':
                    cur.append(line[i + 1])
                    i += 2
                    continue
                cur.append(c)
                i += 1
            in_word = True
            i += 1
        elif c == "\\":
            if i + 1 < n:
                cur.append(line[i + 1])
                in_word = True
            i += 2
        elif c in _OPERATOR_CHARS:
            fd = ""
            if in_word:
                word = "".join(cur)
                if c in "<>" and word in ("0", "1", "2"):
                    fd = word               # 2>file, 1>&2: a file descriptor, not a word
                else:
                    words.append(word)
                cur, in_word = [], False
            op = line[i:i + 2] if line[i:i + 2] in _TWO_CHAR else c
            if op == "&" and line[i + 1:i + 2] == ">":
                op = "&>"
            i += len(op)
            if op in (">", ">>") and line[i:i + 1] == "&" and line[i + 1:i + 2].isdigit():
                op += line[i:i + 2]         # 2>&1
                i += 2
            words.append(Operator(fd + op))
        else:
            cur.append(c)
            in_word = True
            i += 1
    if in_word:
        words.append("".join(cur))
    return words


def is_operator(token: str) -> bool:
    return isinstance(token, Operator)


def join_continuations(text: str) -> list[tuple[int, str]]:
    """Logical lines of a script: (first physical line number, text).

    Joins lines ending in a backslash, drops blank lines and ``#`` comments.
    """
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not buf:
            start = number
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        out.append((start, " ".join(part.strip() for part in buf).strip()))
        buf = []
    if buf:
        joined = " ".join(part.strip() for part in buf).strip()
        if joined:
            out.append((start, joined))
    return out


# --- iproute2 keyword matching -------------------------------------------------------

def matches(arg: str, keyword: str) -> bool:
    """iproute2's matches(): ``arg`` is a prefix of ``keyword`` (``a`` is ``address``)."""
    return len(arg) <= len(keyword) and keyword.startswith(arg)


def first_match(arg: str, keywords: Iterable[str]) -> str | None:
    """The first keyword ``arg`` abbreviates, in the tool's own order."""
    for keyword in keywords:
        if matches(arg, keyword):
            return keyword
    return None


# --- suggestions ----------------------------------------------------------------------

def distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus transpositions)."""
    if a == b:
        return 0
    if not a or not b:
        return len(a) or len(b)
    prev2: list[int] | None = None
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggest(arg: str, candidates: Iterable[str], limit: int | None = None) -> str | None:
    """The closest candidate to a mistyped word, if it is close enough."""
    if not arg:
        return None
    if limit is None:
        limit = 1 if len(arg) <= 3 else 2
    best: tuple[int, str] | None = None
    for cand in candidates:
        if cand == arg:
            continue
        d = distance(arg.lower(), cand.lower())
        if d <= limit and (best is None or d < best[0]):
            best = (d, cand)
    return best[1] if best else None
