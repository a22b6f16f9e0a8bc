"""The one exception type for mistakes a user can make and fix, and how its message is shown."""

import re


class DisplacementError(Exception):
    """Bad input or an impossible request; the message says what to change.

    Entry points print it as one line on stderr and exit with code 2. Anything else that
    escapes is a bug and keeps its traceback.
    """


class WriteError(DisplacementError, OSError):
    """A file could not be written (full disk, read-only file system, no permission).

    Still an :class:`OSError`, so code that copes with failed writes keeps working.
    """

    def __str__(self) -> str:
        return str(self.strerror)


MAX_MESSAGE_CHARS = 1000
"""The longest message shown: a 10,000-character prompt quoted in full would make a 10 kB line."""
LONG_VALUE = 200
"""A quoted value longer than this (not a path) is shown by its start and its length."""


def message(err: BaseException) -> str:
    """``err``'s message on one line: a long quoted value (a 10,000-character prompt) is
    shortened to its start and its length, a path never (the user needs all of it), and a
    line still over :data:`MAX_MESSAGE_CHARS` loses its middle."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = re.sub(rf"'([^']{{{LONG_VALUE + 1},}})'", _shortened, text)
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    cut = len(text) - MAX_MESSAGE_CHARS + 40
    return f"{text[: MAX_MESSAGE_CHARS - 100]} [... {cut} characters ...] {text[-60:]}"


def _shortened(quoted: re.Match[str]) -> str:
    value = quoted.group(1)
    if "/" in value and " " not in value:  # a path
        return quoted.group(0)
    return f"'{value[:40]}...' ({len(value)} characters)"
