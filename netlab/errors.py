"""One hierarchy of errors. Library code raises these; only the CLI turns
them into a message and an exit code."""



class NetlabError(Exception):
    """Base of every error netlab raises on purpose."""


class CommandError(NetlabError):
    """A command the kernel or the tool would refuse, or one we cannot parse.

    ``message`` is what the real tool prints (``RTNETLINK answers: File
    exists``); ``hint`` is an extra line for a known mistake.
    """

    def __init__(self, message: str, *, hint: str | None = None, status: int = 2):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status  # the exit status the real tool would return

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class UnsupportedCommand(CommandError):
    """A command netlab does not model (as opposed to one the kernel refuses)."""


class LabError(NetlabError):
    """A lab or cluster file that is not valid: names the file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        text = f"{where}{self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class NotFound(NetlabError):
    """A namespace, link or lab that does not exist."""
