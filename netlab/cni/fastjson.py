"""JSON for the plugins' start-up path, without importing anything.

``import json`` pulls in ``re`` and ``enum`` (several milliseconds per plugin
call, a third of the reference plugin's whole ADD), and even its C accelerator
``_json`` is a shared library to load (~0.3 ms). CNI configs and results are
small and plain, so a short parser here reads the common subset (objects,
arrays, strings without escapes, integers, true/false/null) and hands
everything else (escapes, floats, odd whitespace, any error) to ``_json``'s
scanner, or to the json package on the error path: the answer is json.loads'
for every input, and bad input raises json.JSONDecodeError as json.loads does.
``dumps_go`` prints like Go's json.MarshalIndent with four spaces,
``dumps_compact`` like json.Marshal.
"""


_WS = " \t\n\r"
_NUMBER = frozenset("0123456789-+.eE")
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


class _Other(Exception):
    """Not in the subset the short parser reads."""


def _string(s: str, i: int) -> tuple[str, int]:
    end = s.index('"', i + 1)
    text = s[i + 1:end]
    if "\\" in text or not text.isprintable():      # escapes, control characters
        raise _Other
    return text, end + 1


def _value(s: str, i: int):
    c = s[i]
    if c == '"':
        return _string(s, i)
    if c == "{":
        obj: dict = {}
        i += 1
        while s[i] in _WS:
            i += 1
        if s[i] == "}":
            return obj, i + 1
        while True:
            if s[i] != '"':
                raise _Other
            key, i = _string(s, i)
            while s[i] in _WS:
                i += 1
            if s[i] != ":":
                raise _Other
            i += 1
            while s[i] in _WS:
                i += 1
            obj[key], i = _value(s, i)
            while s[i] in _WS:
                i += 1
            if s[i] == "}":
                return obj, i + 1
            if s[i] != ",":
                raise _Other
            i += 1
            while s[i] in _WS:
                i += 1
    if c == "[":
        arr: list = []
        i += 1
        while s[i] in _WS:
            i += 1
        if s[i] == "]":
            return arr, i + 1
        while True:
            item, i = _value(s, i)
            arr.append(item)
            while s[i] in _WS:
                i += 1
            if s[i] == "]":
                return arr, i + 1
            if s[i] != ",":
                raise _Other
            i += 1
            while s[i] in _WS:
                i += 1
    if c in _LITERALS:
        word, value = _LITERALS[c]
        if not s.startswith(word, i):
            raise _Other
        return value, i + len(word)
    j = i
    while j < len(s) and s[j] in _NUMBER:
        j += 1
    digits = s[i + 1:j] if c == "-" else s[i:j]
    if not digits.isdigit() or (digits[0] == "0" and len(digits) > 1):   # floats, bad numbers
        raise _Other
    return int(s[i:j]), j


def loads(text: str | bytes):
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    try:
        i = 0
        while text[i] in _WS:
            i += 1
        obj, i = _value(text, i)
        end = len(text)
        while i < end and text[i] in _WS:
            i += 1
        if i == end:
            return obj
    except (_Other, IndexError, ValueError, RecursionError):
        pass
    return _loads_c(text)


def _loads_c(text: str):
    """json.loads' answer through _json's scanner (the json package on bad input)."""
    import _json

    class Context:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        memo: dict = {}

        @staticmethod
        def parse_constant(name):
            return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]

    idx = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _json.make_scanner(Context())(text, idx)
    except Exception:
        # Bad input: let the json package word it (the C scanner cannot raise
        # JSONDecodeError before json.decoder is loaded).
        import json
        return json.loads(text)
    rest = len(text) - len(text[end:].lstrip(_WS))
    if rest != len(text):
        from json import JSONDecodeError
        raise JSONDecodeError("Extra data", text, rest)
    return obj


# What _json.encode_basestring (json.dumps with ensure_ascii=False) escapes, and how.
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({ord("\\"): "\\\\", ord('"'): '\\"', ord("\b"): "\\b", ord("\f"): "\\f",
                 ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def _escape(text: str) -> str:
    if text.isprintable() and '"' not in text and "\\" not in text:   # nothing to escape
        return '"' + text + '"'
    return '"' + text.translate(_ESCAPES) + '"'


def _scalar(obj) -> str:
    if isinstance(obj, str):
        return _escape(obj)
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if obj is None:
        return "null"
    if isinstance(obj, (int, float)):
        return repr(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _indent(obj, pad: str) -> str:
    """``obj`` as MarshalIndent prints it at indentation ``pad`` (its own line's)."""
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        inner = pad + "    "
        items = [inner + _escape(str(k)) + ": " + _indent(v, inner) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        inner = pad + "    "
        return "[\n" + ",\n".join([inner + _indent(v, inner) for v in obj]) + "\n" + pad + "]"
    return _scalar(obj)


def _go_escape(text: str) -> str:
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text


def dumps_go(obj) -> str:
    return _go_escape(_indent(obj, ""))


def _compact(obj, out: list) -> None:
    if isinstance(obj, dict):
        out.append("{")
        for i, (k, v) in enumerate(obj.items()):
            if i:
                out.append(",")
            out.append(_escape(str(k)) + ":")
            _compact(v, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _compact(v, out)
        out.append("]")
    else:
        out.append(_scalar(obj))


def dumps_compact(obj) -> str:
    out: list = []
    _compact(obj, out)
    return _go_escape("".join(out))
