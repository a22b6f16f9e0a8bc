"""What entry points share: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from object_displacement.errors import DisplacementError

log = logging.getLogger(__name__)

USER_ERROR_EXIT = 2


def exit_on_user_error(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a task so a :class:`DisplacementError` ends the process cleanly.

    Hydra would print a traceback for any exception; a user who mistyped a path needs
    only the message. Bugs (any other exception) keep their traceback.
    """

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except DisplacementError as err:
            log.debug("user error", exc_info=True)
            print(f"error: {err}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT)

    return wrapper
