"""Turning the user's target settings into a checked :class:`Target`."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from object_displacement.errors import DisplacementError
from object_displacement.geometry import clip_box
from object_displacement.types import Box, Target

log = logging.getLogger(__name__)


def make_target(
    width: int,
    height: int,
    prompt: str | None = None,
    point: Sequence[float] | None = None,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
) -> Target:
    """Build the target for a ``width`` x ``height`` image, checking it lies inside.

    A prompt combines with a point or a box. Given both a point and a box, the point (the
    more specific cue) wins, so ``target.point=[x,y]`` overrides a box set elsewhere.
    ``points=[[x,y],...]`` with ``labels=[1,0,...]`` (SAM's clicks; labels default to 1)
    stand alone or refine a box.
    """
    text = str(prompt).strip() if prompt is not None else ""
    clicks, marks = _check_clicks(points, labels, width, height)
    if point is not None:
        _ignored("target.point", box=box)
        if clicks:
            clicks, marks = ((_check_point(point, width, height), *clicks), (1, *marks))
            return Target(prompt=text or None, points=clicks, labels=marks)
        return Target(prompt=text or None, point=_check_point(point, width, height))
    if box is not None:
        return Target(prompt=text or None, box=_check_box(box, width, height), points=clicks, labels=marks)
    if 1 in marks:
        return Target(prompt=text or None, points=clicks, labels=marks)
    if text:
        return Target(prompt=text, points=clicks, labels=marks)
    raise DisplacementError(
        "no target: give target.box=[x0,y0,x1,y1], target.point=[x,y], target.points=[[x,y],...] "
        "with target.labels=[1,...] or target.prompt=TEXT"
    )


def has_target(
    prompt: str | None = None,
    point: Sequence[float] | None = None,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
) -> bool:
    """Whether the user named a target at all (a blank prompt is none; clicks count)."""
    named = point is not None or box is not None or bool(points)
    return named or bool(str(prompt).strip() if prompt is not None else "")


def _check_clicks(
    points: Sequence[Sequence[float]] | None, labels: Sequence[int] | None, width: int, height: int
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    if not points:
        if labels:
            raise DisplacementError("target.labels needs target.points, one label per point")
        return (), ()
    clicks = tuple(_check_point(p, width, height) for p in points)
    try:
        marks = tuple(1 for _ in clicks) if labels is None else tuple(int(m) for m in labels)
    except (TypeError, ValueError):
        marks = ()
    if len(marks) != len(clicks) or any(m not in (0, 1) for m in marks):
        raise DisplacementError(
            f"target.labels needs one 1 (on the object) or 0 (not) per point, got {list(marks)}"
        )
    return clicks, marks


def _ignored(used: str, **others: object) -> None:
    for name, value in others.items():
        if value is not None:
            log.info("using %s; ignoring target.%s=%s", used, name, value)


def keep_out_boxes(value: object, width: int, height: int) -> tuple[Box, ...]:
    """The checked ``keep_out`` boxes: regions of a ``width`` x ``height`` image the fill
    must not copy from (another face, a sign), each ``[x0, y0, x1, y1]`` in pixels and
    clipped to the image. ``None`` or ``[]``: none."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise DisplacementError(f"keep_out needs a list of boxes [[x0,y0,x1,y1], ...], got {value!r}")
    return tuple(_check_box(box, width, height, "keep_out") for box in value)


def _numbers(value: Sequence[float], count: int, name: str) -> list[int]:
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        raise DisplacementError(f"{name} needs {count} numbers of pixels, got {_shown(value)}")
    return [round(n) for n in numbers]


def _shown(value: object) -> str:
    return str(list(value)) if isinstance(value, Sequence) and not isinstance(value, str) else repr(value)


def _check_point(point: Sequence[float], width: int, height: int) -> tuple[int, int]:
    x, y = _numbers(point, 2, "target.point")
    if not (0 <= x < width and 0 <= y < height):
        raise DisplacementError(f"point {[x, y]} is outside the {width}x{height} image")
    return (x, y)


def _check_box(box: Sequence[float], width: int, height: int, name: str = "target.box") -> Box:
    x0, y0, x1, y1 = _numbers(box, 4, name)
    shown = "box" if name == "target.box" else f"{name} box"
    if x1 <= x0 or y1 <= y0:
        raise DisplacementError(f"{shown} {[x0, y0, x1, y1]} is empty: need x0 < x1 and y0 < y1")
    clipped = clip_box((x0, y0, x1, y1), width, height)
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise DisplacementError(f"{shown} {[x0, y0, x1, y1]} is outside the {width}x{height} image")
    return clipped
