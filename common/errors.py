"""The one exception type that command-line tools turn into a clear message instead of a traceback."""


class UserError(Exception):
    """Bad input from the person running a tool: a missing file, a video without frames, a bad flag.

    The message must be one sentence that says what is wrong and, where possible, what to do.
    `common.cli.run` prints it on one line and exits with status 2.
    """


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (at most `limit` characters), or its type's
    name when the message is empty (e.g. `EOFError` from `torch.load` on a 0-byte file)."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0].strip()[:limit] if lines else type(err).__name__
