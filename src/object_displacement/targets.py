"""Turning the user's target settings into a checked :class:`Target`."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from object_displacement.errors import DisplacementError
from object_displacement.geometry import clip_box
from object_displacement.types import Target

log = logging.getLogger(__name__)


def make_target(
    width: int,
    height: int,
    prompt: str | None = None,
    point: Sequence[float] | None = None,
    box: Sequence[float] | None = None,
) -> Target:
    """Build the target for a ``width`` x ``height`` image, checking it lies inside.

    A prompt combines with a point or a box. Given both a point and a box, the point (the
    more specific cue) wins, so ``target.point=[x,y]`` overrides a box set elsewhere.
    """
    text = str(prompt).strip() if prompt is not None else ""
    if point is not None:
        _ignored("target.point", box=box)
        return Target(prompt=text or None, point=_check_point(point, width, height))
    if box is not None:
        return Target(prompt=text or None, box=_check_box(box, width, height))
    if text:
        return Target(prompt=text)
    raise DisplacementError(
        "no target: give target.box=[x0,y0,x1,y1], target.point=[x,y] or target.prompt=TEXT"
    )


def has_target(
    prompt: str | None = None, point: Sequence[float] | None = None, box: Sequence[float] | None = None
) -> bool:
    """Whether the user named a target at all (a blank prompt is none)."""
    return point is not None or box is not None or bool(str(prompt).strip() if prompt is not None else "")


def _ignored(used: str, **others: object) -> None:
    for name, value in others.items():
        if value is not None:
            log.info("using %s; ignoring target.%s=%s", used, name, value)


def _numbers(value: Sequence[float], count: int, name: str) -> list[int]:
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        raise DisplacementError(f"target.{name} needs {count} numbers of pixels, got {_shown(value)}")
    return [round(n) for n in numbers]


def _shown(value: object) -> str:
    return str(list(value)) if isinstance(value, Sequence) and not isinstance(value, str) else repr(value)


def _check_point(point: Sequence[float], width: int, height: int) -> tuple[int, int]:
    x, y = _numbers(point, 2, "point")
    if not (0 <= x < width and 0 <= y < height):
        raise DisplacementError(f"point {[x, y]} is outside the {width}x{height} image")
    return (x, y)


def _check_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = _numbers(box, 4, "box")
    if x1 <= x0 or y1 <= y0:
        raise DisplacementError(f"box {[x0, y0, x1, y1]} is empty: need x0 < x1 and y0 < y1")
    clipped = clip_box((x0, y0, x1, y1), width, height)
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise DisplacementError(f"box {[x0, y0, x1, y1]} is outside the {width}x{height} image")
    return clipped
