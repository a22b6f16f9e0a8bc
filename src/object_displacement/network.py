"""Whether a server answers, asked once and quickly: a run never waits on a network.

Model hubs and W&B retry for a minute or more when there is no network; a TCP connection
with a short timeout says the same in a few seconds.
"""

from __future__ import annotations

import functools
import socket
from urllib.parse import urlsplit

REACH_TIMEOUT_S = 3.0
"""How long a server may take to accept a connection before it counts as unreachable."""


def reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether the server of ``url`` accepts a TCP connection within ``timeout`` seconds."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


@functools.cache
def reachable_once(url: str) -> bool:
    """:func:`reachable`, asked once per process for each URL (every model of a run asks)."""
    return reachable(url)
