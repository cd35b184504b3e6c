"""The CNI error object (spec section "Error"), as an exception.

Kept free of imports: every plugin start-up path loads it.
"""


from netlab.errors import NetlabError

# Codes from the spec (0-99 reserved) and libcni's internal code.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
INTERNAL = 999


class CniError(NetlabError):
    """A CNI error: ``code``, ``msg`` and optional ``details``, printed as the spec's JSON."""

    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self) -> dict:
        out: dict = {"code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"CNI error {self.code}: {self.msg}" + (f" ({self.details})" if self.details else "")


def internal(msg: str) -> CniError:
    """Any plugin failure that is not one of the spec's own: code 999, as libcni does."""
    return CniError(INTERNAL, msg)
