"""The one exception type that command-line tools turn into a clear message instead of a traceback."""


class UserError(Exception):
    """Bad input from the person running a tool: a missing file, a video without frames, a bad flag.

    The message must be one sentence that says what is wrong and, where possible, what to do.
    `common.cli.run` prints it on one line and exits with status 2.
    """
