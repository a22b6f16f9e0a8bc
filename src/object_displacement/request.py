"""Turning what a user said into an :class:`EditRequest`: pure, no Hydra, no photo read.

Every entry point hands its values here: the command line's settings, a manifest row's
cells (text), the API's keyword arguments, the app's tab. A value the user left out
(``None`` or an empty cell) takes the run's :class:`EditDefaults`. A value that cannot be
meant is refused with one line that says what to change, never guessed.
"""

from __future__ import annotations

import math
from typing import Any

from object_displacement.errors import DisplacementError
from object_displacement.targets import parse_boxes, parse_target
from object_displacement.types import MAX_MEGAPIXELS, EditDefaults, EditRequest, Image, Move

MAX_SCALE = 100.0
ANCHORS = ("center", "bottom")
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}
NO_DEFAULTS = EditDefaults()
"""A run that sets nothing: centre anchor, no scale, flip or keep-out, the default size bound."""


def make_defaults(
    scale: Any = 1.0,
    flip: Any = False,
    anchor: Any = "center",
    keep_out: Any = None,
    max_megapixels: Any = MAX_MEGAPIXELS,
) -> EditDefaults:
    """A run's checked defaults (its config's ``scale``, ``flip``, ``anchor``, ``keep_out``
    and ``max_megapixels``)."""
    return EditDefaults(
        scale=factor(scale),
        flip=boolean(flip, "flip"),
        anchor=anchor_name(anchor),
        keep_out=parse_boxes(keep_out),
        max_megapixels=megapixels(max_megapixels),
    )


def make_request(
    source: str,
    *,
    prompt: Any = None,
    point: Any = None,
    box: Any = None,
    points: Any = None,
    labels: Any = None,
    dx: Any = None,
    dy: Any = None,
    scale: Any = None,
    flip: Any = None,
    anchor: Any = None,
    keep_out: Any = None,
    pixels: Image | None = None,
    defaults: EditDefaults = NO_DEFAULTS,
) -> EditRequest:
    """The request for one edit; ``None`` (or ``""``) takes the value of ``defaults``.

    ``source`` is what is read (a path or ``skimage:NAME``), or only a name when ``pixels``
    holds the photo already."""
    move = make_move(
        dx,
        dy,
        defaults.scale if _unset(scale) else scale,
        defaults.flip if _unset(flip) else flip,
        defaults.anchor if _unset(anchor) else anchor,
    )
    return EditRequest(
        source=str(source),
        target=parse_target(prompt or None, _unset_to_none(point), _unset_to_none(box), points, labels),
        move=move,
        keep_out=defaults.keep_out if keep_out is None else parse_boxes(keep_out),
        max_megapixels=defaults.max_megapixels,
        pixels=pixels,
    )


def make_move(dx: Any, dy: Any, scale: Any = 1.0, flip: Any = False, anchor: Any = "center") -> Move:
    """A checked :class:`Move` from user settings."""
    move = Move(pixels(dx, "dx"), pixels(dy, "dy"), factor(scale), boolean(flip, "flip"), anchor_name(anchor))
    asked = {name: v for name, v in (("dx", dx), ("dy", dy)) if not _unset(v) and float(v) != 0}
    if asked and move.is_identity:
        given = " ".join(f"{name}={v}" for name, v in asked.items())
        raise DisplacementError(
            f"{given} rounds to a move of 0 pixels: move by at least 1 pixel, or leave "
            "dx and dy unset to write the mask"
        )
    return move


def factor(scale: Any) -> float:
    """A scale factor above 0 and at most :data:`MAX_SCALE`; ``None`` is 1."""
    value = _number(scale if scale is not None else 1.0)
    if isinstance(scale, bool) or not 0 < value <= MAX_SCALE:
        raise DisplacementError(f"scale must be a factor above 0 and at most {MAX_SCALE:g}, got {scale!r}")
    return value


def anchor_name(anchor: Any) -> str:
    if anchor not in ANCHORS:
        raise DisplacementError(f"anchor must be center or bottom, got {anchor!r}")
    return str(anchor)


def boolean(value: Any, name: str) -> bool:
    """``true``/``false`` (or yes/no, on/off, 1/0); anything else is refused, not guessed."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise DisplacementError(f"{name} must be true or false, got {value!r}")


def pixels(value: Any, name: str) -> int:
    """A displacement in whole pixels; ``None`` is 0."""
    if _unset(value):
        return 0
    number = _number(value)
    if isinstance(value, bool) or not math.isfinite(number):
        raise DisplacementError(f"{name} must be a number of pixels, got {value!r}")
    return round(number)


def megapixels(value: Any) -> float | None:
    """The bound on a photo's size in megapixels: a number above 0, or ``None`` for none."""
    if value is None:
        return None
    number = _number(value)
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise DisplacementError(f"max_megapixels must be a number above 0 (or null: no bound), got {value!r}")
    return number


def _number(value: Any) -> float:
    """``value`` as a float; NaN when it is no number, so one range check refuses both."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _unset_to_none(value: Any) -> Any:
    return None if _unset(value) else value
