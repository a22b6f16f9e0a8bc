"""Turning the user's target settings into a :class:`Target`: their form first (pure), then
against the photo once it is read."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import clip_box
from object_displacement.types import Box, Point, Target

log = logging.getLogger(__name__)


NO_TARGET = (
    "no target: give target.box=[x0,y0,x1,y1], target.point=[x,y], target.points=[[x,y],...] "
    "with target.labels=[1,...] or target.prompt=TEXT"
)


def parse_target(
    prompt: str | None = None,
    point: Sequence[float] | None = None,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
) -> Target | None:
    """The :class:`Target` the user's values name, checked for form but not yet against a
    photo (:func:`fit_target` does that once it is read); ``None`` when they name nothing.

    A prompt combines with a point or a box. Given both a point and a box, the point (the
    more specific cue) wins, so ``target.point=[x,y]`` overrides a box set elsewhere.
    ``points=[[x,y],...]`` with ``labels=[1,0,...]`` (SAM's clicks; labels default to 1)
    stand alone or refine a box.
    """
    points, labels = _listed(points, "target.points"), _listed(labels, "target.labels")
    if not has_target(prompt, point, box, points, labels) and not labels:
        return None
    text = str(prompt).strip() if prompt is not None else ""
    clicks, marks = _parse_clicks(points, labels)
    if point is not None:
        _ignored("target.point", box=box)
        where = _point(point)
        if clicks:
            return Target(prompt=text or None, points=(where, *clicks), labels=(1, *marks))
        return Target(prompt=text or None, point=where)
    if box is not None:
        return Target(prompt=text or None, box=_box(box), points=clicks, labels=marks)
    if 1 in marks or text:
        return Target(prompt=text or None, points=clicks, labels=marks)
    raise DisplacementError(NO_TARGET)


def fit_target(target: Target, width: int, height: int) -> Target:
    """``target`` checked against a ``width`` x ``height`` photo: every point inside it, the
    box clipped to it (a box wholly outside is refused)."""
    for where in (*((target.point,) if target.point is not None else ()), *target.points):
        _inside(where, width, height)
    if target.box is None:
        return target
    return replace(target, box=_clipped(target.box, width, height))


def make_target(width: int, height: int, **values: Any) -> Target:
    """The checked target for a ``width`` x ``height`` photo from the user's values
    (:func:`parse_target`'s keywords); naming nothing is an error."""
    target = parse_target(**values)
    if target is None:
        raise DisplacementError(NO_TARGET)
    return fit_target(target, width, height)


def has_target(
    prompt: str | None = None,
    point: Sequence[float] | None = None,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
) -> bool:
    """Whether the user named a target at all (a blank prompt is none; clicks count)."""
    named = point is not None or box is not None or (points is not None and len(points) > 0)
    return named or bool(str(prompt).strip() if prompt is not None else "")


def _parse_clicks(
    points: Sequence[Sequence[float]] | None, labels: Sequence[int] | None
) -> tuple[tuple[Point, ...], tuple[int, ...]]:
    points, labels = _listed(points, "target.points"), _listed(labels, "target.labels")
    if not points:
        if labels:
            raise DisplacementError("target.labels needs target.points, one label per point")
        return (), ()
    if all(not _is_sequence(p) for p in points):  # [200, 150]: one point, not a list of them
        raise DisplacementError(
            f"target.points needs a list of points [[x, y], ...], got {_shown(points)}: "
            f"write target.points=[{_shown(points)}] (or target.point={_shown(points)})"
        )
    clicks = tuple(_point(p, "target.points") for p in points)
    try:
        marks = tuple(1 for _ in clicks) if labels is None else tuple(_whole(m) for m in labels)
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


def parse_boxes(value: object, name: str = "keep_out") -> tuple[Box, ...]:
    """``keep_out`` boxes checked for form: a list of ``[x0, y0, x1, y1]`` (pixels), each
    with x0 < x1 and y0 < y1. ``None`` or ``[]``: none."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise DisplacementError(f"{name} needs a list of boxes [[x0,y0,x1,y1], ...], got {value!r}")
    return tuple(_box(box, name) for box in value)


def fit_boxes(boxes: Sequence[Box], width: int, height: int, name: str = "keep_out") -> tuple[Box, ...]:
    """``boxes`` clipped to a ``width`` x ``height`` photo; one wholly outside is refused."""
    return tuple(_clipped(box, width, height, name) for box in boxes)


def keep_out_boxes(value: object, width: int, height: int) -> tuple[Box, ...]:
    """The checked ``keep_out`` boxes of a ``width`` x ``height`` photo: regions the fill
    must not copy from (another face, a sign), clipped to the photo."""
    return fit_boxes(parse_boxes(value), width, height)


def _is_sequence(value: object) -> bool:
    """A list of values: a list, tuple or NumPy array, not a text (``'20'`` is no point)."""
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes)


def _listed(value: Any, name: str) -> list[Any] | None:
    """``value`` (a list, tuple or NumPy array of values) as a list; a text is refused,
    never read character by character (``labels="10"`` is not ``[1, 0]``)."""
    if value is None:
        return None
    if not _is_sequence(value):
        raise DisplacementError(
            f"{name} needs a list, got {_shown(value)}: write {name}=[...] without quotes"
        )
    return np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value)


def _whole(value: Any) -> int:
    """A label: a whole number (``1``, ``0``, or their text in a manifest)."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(value)
    return int(float(value))


def _numbers(value: Sequence[float], count: int, name: str) -> list[int]:
    try:  # a list of numbers (a manifest's cells give them as texts); never one text
        numbers = [float(v) for v in value] if _is_sequence(value) else []
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        raise DisplacementError(f"{name} needs {count} numbers of pixels, got {_shown(value)}")
    return [round(n) for n in numbers]


def _shown(value: object) -> str:
    """A value as a message shows it: a list as ``[1, 2]``, a text quoted, at most 80 characters."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    text = str(list(value)) if _is_sequence(value) else repr(value)  # type: ignore[arg-type]
    return text if len(text) <= 80 else text[:77] + "..."


def _point(point: Sequence[float], name: str = "target.point") -> Point:
    x, y = _numbers(point, 2, name)
    return (x, y)


def _inside(point: Point, width: int, height: int) -> None:
    x, y = point
    if not (0 <= x < width and 0 <= y < height):
        raise DisplacementError(f"point {[x, y]} is outside the {width}x{height} image")


def _box(box: Sequence[float], name: str = "target.box") -> Box:
    x0, y0, x1, y1 = _numbers(box, 4, name)
    if x1 <= x0 or y1 <= y0:
        raise DisplacementError(f"{_box_name(name)} {[x0, y0, x1, y1]} is empty: need x0 < x1 and y0 < y1")
    return (x0, y0, x1, y1)


def _clipped(box: Box, width: int, height: int, name: str = "target.box") -> Box:
    clipped = clip_box(box, width, height)
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise DisplacementError(f"{_box_name(name)} {list(box)} is outside the {width}x{height} image")
    return clipped


def _box_name(name: str) -> str:
    return "box" if name == "target.box" else f"{name} box"
