"""The one exception type for mistakes a user can make and fix."""


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
