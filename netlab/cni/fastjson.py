"""JSON for the plugins' start-up path, on the C accelerator ``_json`` alone.

``import json`` pulls in ``re`` and ``enum`` (several milliseconds per plugin
call, a third of the reference plugin's whole ADD); the C scanner and string
encoder it wraps need neither. ``loads`` raises ``json.JSONDecodeError`` like
json.loads (the error path may import json; the happy path never does).
``dumps_go`` prints like Go's json.MarshalIndent with four spaces,
``dumps_compact`` like json.Marshal.
"""


import _json

_WS = " \t\n\r"


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name):
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())


def _error(msg: str, doc: str, pos: int):
    from json import JSONDecodeError
    return JSONDecodeError(msg, doc, pos)


def loads(text: str | bytes):
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    idx = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, idx)
    except Exception:
        # Bad input: let the json package word it (only the error path imports it;
        # the C scanner cannot raise JSONDecodeError before json.decoder is loaded).
        import json
        return json.loads(text)
    rest = len(text) - len(text[end:].lstrip(_WS))
    if rest != len(text):
        raise _error("Extra data", text, rest)
    return obj


_escape = _json.encode_basestring     # ensure_ascii=False, as Go prints UTF-8


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


def _indent(obj, level: int, out: list) -> None:
    pad = "    " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        out.append("{\n")
        for i, (k, v) in enumerate(obj.items()):
            out.append(f"{pad}{_escape(str(k))}: ")
            _indent(v, level + 1, out)
            out.append(",\n" if i < len(obj) - 1 else "\n")
        out.append("    " * level + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        out.append("[\n")
        for i, v in enumerate(obj):
            out.append(pad)
            _indent(v, level + 1, out)
            out.append(",\n" if i < len(obj) - 1 else "\n")
        out.append("    " * level + "]")
    else:
        out.append(_scalar(obj))


def _go_escape(text: str) -> str:
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text


def dumps_go(obj) -> str:
    out: list = []
    _indent(obj, 0, out)
    return _go_escape("".join(out))


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
