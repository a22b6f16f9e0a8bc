"""Bounds of a component's settings, declared beside the typed keyword argument they bound:

    def __init__(self, patch_size: Annotated[int, Range(1, 31)] = 3, ...)

:func:`object_displacement.build.check_settings` reads them from the constructor's hints
and refuses a value outside in one line naming the setting, before any work: a patch of
100000 px (37 GiB) or a million GrabCut iterations (minutes) never starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

SEED_MAX = 2**32 - 1
"""The largest seed every random generator we seed takes (NumPy's, OpenCV's, PatchMatch's)."""


@dataclass(frozen=True)
class Range:
    """``low <= value <= high`` (either end open when ``None``)."""

    low: float | None = None
    high: float | None = None

    def allows(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return True  # the type check says what is wrong with it
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{_shown(self.low)} or more"
        if self.low is None:
            return f"at most {_shown(self.high)}"
        return f"between {_shown(self.low)} and {_shown(self.high)}"


def _shown(bound: float | None) -> str:
    return str(int(bound)) if bound is not None and float(bound).is_integer() else f"{bound:g}"


Seed = Annotated[int, Range(0, SEED_MAX)]
"""A seed: a whole number from 0 to 2**32 - 1."""
MAX_WORKERS = 256
"""Threads a component may start (0: one per core)."""
MAX_PATCH = 31
"""PatchMatch's patch side: its memory grows with the square (100000 asked for 37 GiB)."""
MAX_ITERATIONS = 50
"""GrabCut's rounds: past a few it no longer changes the mask, a million ran for minutes."""
