"""The plugin side of the CNI protocol: environment, stdin, checks, dispatch, output.

``main(name, handlers)`` is what a plugin executable calls. The checks run in
the order libcni's skel (1.1.2) runs them, with its codes and messages, so a
runtime sees the same errors from our plugins as from the reference ones:

1. required env vars (code 4), 2. read stdin, 3. decode JSON (6),
4. network ``name`` (7), 5. container ID (3 empty, 4 bad), 6. ifname (4),
7. dispatch (4 for an unknown command), 8. cniVersion (6 not a string,
1 unsupported), CHECK below 0.4.0 (1), 9. the command: a CniError keeps its
code, anything else is 999.

GC and STATUS (spec 1.1.0) need only CNI_COMMAND and CNI_PATH.
Only stdlib imports: this is on every plugin's start-up path.
"""


import sys

from netlab.cni.errors import (
    DECODING_FAILURE, INCOMPATIBLE_VERSION, INVALID_ENV, INVALID_NETWORK_CONFIG,
    UNKNOWN_CONTAINER, CniError, internal,
)
from netlab.cni import fastjson
from netlab.cni.types import SUPPORTED_VERSIONS, at_least, check_supported, go_compact, go_json

REQUIRED = {   # env var -> commands that need it (libcni's table, plus GC and STATUS)
    "CNI_CONTAINERID": ("ADD", "CHECK", "DEL"),
    "CNI_NETNS": ("ADD", "CHECK"),
    "CNI_IFNAME": ("ADD", "CHECK", "DEL"),
    "CNI_PATH": ("ADD", "CHECK", "DEL", "GC", "STATUS"),
}
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class Args:
    """One invocation: what libcni's skel calls CmdArgs, plus the decoded config.
    (A plain class: dataclasses pulls in inspect, too slow for a plugin's start-up.)"""

    def __init__(self, command: str, container_id: str = "", netns: str = "", ifname: str = "",
                 args: str = "", path: list[str] | None = None, stdin: bytes = b"",
                 conf: dict | None = None, version: str = "0.1.0", env: dict | None = None):
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args
        self.path = path or []
        self.stdin = stdin
        self.conf = conf or {}
        self.version = version
        self.env = env or {}


def valid_name(text: str) -> bool:
    """``^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$``: usable as a file name, never ``..`` or ``/``."""
    return bool(text) and text[0] in ALNUM and all(c in NAME_CHARS for c in text)


def check_ifname(name: str) -> None:
    if not name:
        raise CniError(INVALID_ENV, "interface name is empty")
    if len(name) > 15:
        raise CniError(INVALID_ENV, "interface name is too long",
                       "interface name should be less than 16 characters")
    if name in (".", ".."):
        raise CniError(INVALID_ENV, "interface name is . or ..")
    if any(c in "/:" or c.isspace() for c in name):
        raise CniError(INVALID_ENV, "interface name contains / or : or whitespace characters")


_GO_KIND = {str: "string", bool: "bool", int: "number", float: "number", list: "array",
            dict: "object"}


def go_type_error(field_name: str, value, want: str = "string") -> str:
    kind = _GO_KIND.get(type(value), "value")
    return f"json: cannot unmarshal {kind} into Go struct field .{field_name} of type {want}"


def go_decode_error(text: str, exc) -> str:
    """Word a JSON syntax error the way Go's encoding/json does."""
    if not text.strip() or exc.pos >= len(text):
        return "unexpected end of JSON input"
    ch = text[exc.pos]
    where = {
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Expecting ',' delimiter": "after object key:value pair",
        "Extra data": "after top-level value",
    }.get(exc.msg, "looking for beginning of value")
    return f"invalid character {ch!r} {where}"


def decode_config(stdin: bytes) -> dict:
    text = stdin.decode("utf-8", "replace")
    try:
        conf = fastjson.loads(text)
    except ValueError as exc:
        raise CniError(DECODING_FAILURE, "error unmarshall network config: " + go_decode_error(text, exc))
    if not isinstance(conf, dict):
        kind = _GO_KIND.get(type(conf), "value")
        raise CniError(DECODING_FAILURE, "error unmarshall network config: json: cannot unmarshal "
                       f"{kind} into Go value of type struct {{ Network string \"json:\\\"name\\\"\" }}")
    name = conf.get("name")
    if name is not None and not isinstance(name, str):
        raise CniError(DECODING_FAILURE, "error unmarshall network config: " + go_type_error("name", name))
    if not name:
        raise CniError(INVALID_NETWORK_CONFIG, "missing network name")
    if not valid_name(name):
        raise CniError(INVALID_NETWORK_CONFIG, "invalid characters found in network name", name)
    return conf


def config_version(conf: dict) -> str:
    version = conf.get("cniVersion")
    if version is None or version == "":
        return "0.1.0"
    if not isinstance(version, str):
        raise CniError(DECODING_FAILURE, "decoding version from network config: "
                       + go_type_error("cniVersion", version))
    return version


def parse_env(environ) -> Args:
    command = environ.get("CNI_COMMAND", "")
    missing = [var for var, cmds in REQUIRED.items() if command in cmds and not environ.get(var)]
    if missing:
        raise CniError(INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
    path = [p for p in environ.get("CNI_PATH", "").split(":") if p]
    return Args(command=command, container_id=environ.get("CNI_CONTAINERID", ""),
                netns=environ.get("CNI_NETNS", ""), ifname=environ.get("CNI_IFNAME", ""),
                args=environ.get("CNI_ARGS", ""), path=path, stdin=b"", env=dict(environ))


def parse_cni_args(text: str, known: tuple[str, ...]) -> dict[str, str]:
    """``K1=V1;K2=V2`` as libcni's LoadArgs reads it: unknown keys are an error
    unless ``IgnoreUnknown`` is true."""
    values: dict[str, str] = {}
    if not text:
        return values
    unknown = []
    for pair in text.split(";"):
        kv = pair.split("=")
        if len(kv) != 2:
            raise internal(f'ARGS: invalid pair "{pair}"')
        key, value = kv
        if key == "IgnoreUnknown":
            low = value.lower()
            if low not in ("1", "true", "0", "false"):
                raise internal(f"boolean unmarshal error: invalid input {value}")
            values[key] = "true" if low in ("1", "true") else ""
        elif key in known:
            values[key] = value
        else:
            unknown.append(pair)
    if unknown and not values.get("IgnoreUnknown"):
        raise internal("ARGS: unknown args [" + " ".join(f'"{u}"' for u in unknown) + "]")
    return values


def dispatch(args: Args, handlers: dict) -> dict | None:
    """Checks 3-9 and the call; returns what to print (already in the config's version)."""
    from netlab.cni.types import to_version

    if args.command != "VERSION":
        args.conf = decode_config(args.stdin)
        if args.command not in ("GC", "STATUS"):
            if not args.container_id:
                raise CniError(UNKNOWN_CONTAINER, "missing containerID")
            if not valid_name(args.container_id):
                raise CniError(INVALID_ENV, "invalid characters in containerID", args.container_id)
            check_ifname(args.ifname)
    if args.command == "VERSION":
        return version_info(args.stdin)
    if args.command not in COMMANDS or args.command not in handlers:
        raise CniError(INVALID_ENV, f"unknown CNI_COMMAND: {args.command}")
    version = config_version(args.conf)
    if args.command in ("CHECK", "GC", "STATUS"):
        needed = "0.4.0" if args.command == "CHECK" else "1.1.0"
        try:
            ok = at_least(version, needed)
        except CniError as exc:
            raise CniError(DECODING_FAILURE, exc.msg) from None
        if not ok:
            raise CniError(INCOMPATIBLE_VERSION, f"config version does not allow {args.command}")
        if not any(at_least(v, version) for v in SUPPORTED_VERSIONS):
            raise CniError(INCOMPATIBLE_VERSION, f"plugin version does not allow {args.command}")
    check_supported(version)
    args.version = version
    result = handlers[args.command](args)
    if result is None or args.command != "ADD":
        return None
    return to_version(result, version)


def version_info(stdin: bytes) -> dict:
    """VERSION: the spec's answer; cniVersion echoes the config's when it is one we know."""
    version = "1.0.0"
    try:
        conf = fastjson.loads(stdin or b"{}")
        if isinstance(conf, dict) and conf.get("cniVersion") in SUPPORTED_VERSIONS:
            version = conf["cniVersion"]
    except ValueError:
        pass
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def main(name: str, handlers: dict, environ=None, stdin=None, stdout=None,
         stderr=None) -> int:
    """Run one plugin invocation; returns the exit status (0 ok, 1 error object printed)."""
    if environ is None:
        from netlab.cni.sysos import environ as _environ
        environ = _environ()
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if not environ.get("CNI_COMMAND"):
        stderr.write(f"CNI {name} plugin version netlab\n"
                     f"CNI protocol versions supported: {', '.join(SUPPORTED_VERSIONS)}\n")
        return 0
    try:
        args = parse_env(environ)
        args.stdin = (stdin if stdin is not None else sys.stdin.buffer).read()
        out = dispatch(args, handlers)
    except CniError as exc:
        stdout.write(go_json(exc.to_json()))
        stdout.flush()
        return 1
    except Exception as exc:  # any other failure is the spec's "internal" error, never a traceback
        stdout.write(go_json(internal(str(exc) or type(exc).__name__).to_json()))
        stdout.flush()
        return 1
    if args.command == "VERSION":
        stdout.write(go_compact(out) + "\n")
    elif out is not None:
        stdout.write(go_json(out))
    stdout.flush()
    return 0
