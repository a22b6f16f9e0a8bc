"""The web app's tab as state and transitions: pure functions, no Gradio, no browser.

A :class:`Tab` is what one browser tab did: its photo, the clicks, box or prompt that name
the object, the mask the pipeline found for them, where the object goes, and an undo
history. Each thing a user does is a function from one tab to the next (:func:`clicked`,
:func:`placed`, :func:`undone`, ...); the app's handlers only call these and the edit.

:func:`request` turns a tab into the :class:`EditRequest` the CLI builds from the same
values (both go through :func:`~object_displacement.request.make_request`), :func:`command`
into that command line, and :func:`preview` draws where the edit puts the object with the
edit's own geometry (:func:`~object_displacement.geometry.place_object`).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import place_object
from object_displacement.io import read_image
from object_displacement.request import make_request
from object_displacement.types import Box, Candidate, EditDefaults, EditRequest, Image, Mask, Move, Point
from object_displacement.visualize import CYAN, overlay

OBJECT, NOT_OBJECT, BOX, PLACE = "object", "not object", "box (2 clicks)", "place"
MODES = (OBJECT, NOT_OBJECT, BOX, PLACE)
"""What a click on the photo means, as the page's radio names it."""
MAX_UNDO = 20
"""Steps undo can take back: each keeps its mask (12 MB for a 12 MP photo) in the tab."""
GREEN, RED_MARK, WHITE = (0, 220, 0), (255, 40, 40), (255, 255, 255)
NO_PHOTO = "open a photo first (upload one or pick a sample)"
NOTHING_SELECTED = "nothing selected: click the object (or draw a box, or find by text)"
NOT_MOVED = "the object is not moved: choose 'place' and click where it should go"
OWN_KEYS = ("image", "target", "dx", "dy")
"""Settings the tab itself gives the command: the app's overrides of them never reach it."""


@dataclass(frozen=True)
class Tab:
    """One browser tab's work. Frozen: every action makes a new tab, and the old one is
    what undo goes back to. Equality leaves out the arrays (the photo and the mask)."""

    source: str = ""
    """What is read: the uploaded file's path or ``skimage:NAME``."""
    name: str = ""
    """What the shown command calls the photo."""
    pixels: Image | None = field(default=None, repr=False, compare=False)
    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()
    """One per point: 1 on the object, 0 off it."""
    corner: Point | None = None
    """The first corner of a box being drawn."""
    box: Box | None = None
    prompt: str = ""
    mask: Mask | None = field(default=None, repr=False, compare=False)
    """The object the pipeline found for the clicks, box or prompt; ``None`` until then."""
    dx: int = 0
    dy: int = 0
    """Where the object goes, ``dy > 0`` up: the move of its anchor."""
    scale: float = 1.0
    flip: bool = False
    folder: str = ""
    """Where the app writes this tab's downloads."""
    history: tuple[Tab, ...] = field(default=(), repr=False, compare=False)
    """The tabs before each step undo can take back, oldest first (each without a history)."""


@dataclass(frozen=True)
class Settings:
    """What the page edits with besides the tab: the switchable components' choices, the
    app's other overrides and the defaults of the pipeline they build."""

    components: tuple[tuple[str, str], ...] = ()
    """``(group, variant)`` pairs: ``("segmenter", "sam")``, ..."""
    overrides: tuple[str, ...] = ()
    defaults: EditDefaults = field(default_factory=EditDefaults)


def opened(source: str, name: str, defaults: EditDefaults, folder: str = "") -> Tab:
    """A tab on a new photo, read as the edit reads it: within the run's ``max_megapixels``.
    Its move starts at the run's ``scale`` and ``flip``."""
    pixels = read_image(source, max_megapixels=defaults.max_megapixels)
    return Tab(
        source=source, name=name, pixels=pixels, scale=defaults.scale, flip=defaults.flip, folder=folder
    )


def clicked(tab: Tab, x: int, y: int, mode: str) -> Tab:
    """A click at pixel ``(x, y)``: a point on the object (``object``) or off it (``not
    object``), or a corner of a box (``box (2 clicks)``: the second click closes it). The
    mask is dropped until the pipeline finds the new one (:func:`with_mask`)."""
    _need_photo(tab)
    where = (int(x), int(y))
    if mode == BOX:
        if tab.corner is None:
            return _step(tab, corner=where)
        (x0, y0), (x1, y1) = tab.corner, where
        box = (min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1)
        return _step(tab, corner=None, box=box, mask=None)
    if mode not in (OBJECT, NOT_OBJECT):
        raise ValueError(f"a click's mode is one of {MODES[:3]}, got {mode!r} (place: use placed)")
    label = 1 if mode == OBJECT else 0
    return _step(tab, points=(*tab.points, where), labels=(*tab.labels, label), mask=None)


def prompted(tab: Tab, prompt: str) -> Tab:
    """The tab naming its object by text (as well as by its clicks or box)."""
    _need_photo(tab)
    return _step(tab, prompt=prompt.strip(), mask=None)


def placed(tab: Tab, x: int, y: int, anchor: str = "center") -> Tab:
    """The object's ``anchor`` moved to the clicked pixel ``(x, y)``: its centre there, or
    for ``bottom`` its bottom centre on that pixel's lower edge (standing on it)."""
    _need_photo(tab)
    if tab.mask is None or not tab.mask.any():
        raise DisplacementError("nothing selected: click the object first, then place it")
    ax, ay = anchor_point(tab.mask, anchor)
    to_x, to_y = x + 0.5, y + (1.0 if anchor == "bottom" else 0.5)
    return _step(tab, dx=_whole(to_x - ax), dy=_whole(ay - to_y))  # dy > 0 is up: rows go down


def adjusted(
    tab: Tab,
    *,
    dx: float | None = None,
    dy: float | None = None,
    scale: float | None = None,
    flip: bool | None = None,
) -> Tab:
    """The page's number fields, slider and checkbox; ``None`` keeps a value. Not a step
    undo takes back: the fields show what they hold."""
    return replace(
        tab,
        dx=tab.dx if dx is None else round(dx),
        dy=tab.dy if dy is None else round(dy),
        scale=tab.scale if scale is None else float(scale),
        flip=tab.flip if flip is None else bool(flip),
    )


def with_mask(tab: Tab, mask: Mask | None) -> Tab:
    """The tab with the mask the pipeline found for its selection (part of the step that
    changed the selection, so undo does not stop at the maskless tab)."""
    return replace(tab, mask=mask)


def cleared(tab: Tab) -> Tab:
    """The same photo with no selection and no move; undo brings them back."""
    _need_photo(tab)
    return _step(tab, points=(), labels=(), corner=None, box=None, prompt="", mask=None, dx=0, dy=0)


def undone(tab: Tab) -> Tab:
    """The tab before its last click, box, prompt, place or clear, mask included; the
    scale and flip stay as the page shows them."""
    if not tab.history:
        raise DisplacementError("nothing to undo")
    previous = tab.history[-1]
    return replace(previous, scale=tab.scale, flip=tab.flip, folder=tab.folder, history=tab.history[:-1])


def names_object(tab: Tab) -> bool:
    """Whether the tab names an object to find: a prompt, a box or a click on it."""
    return bool(tab.prompt or tab.box is not None or 1 in tab.labels)


def request(tab: Tab, defaults: EditDefaults, moving: bool = True) -> EditRequest:
    """The edit the tab asks for, built as the CLI builds it from the same values (the run's
    ``defaults`` where the tab is silent: anchor, keep-out boxes, size bound). ``moving``
    ``False``: only find the object (no move, whatever the tab's scale or flip)."""
    _need_photo(tab)
    if not names_object(tab):
        raise DisplacementError(NOTHING_SELECTED)
    return make_request(
        tab.source,
        prompt=tab.prompt or None,
        box=tab.box,
        points=list(tab.points) or None,
        labels=list(tab.labels) or None,
        dx=tab.dx if moving else None,
        dy=tab.dy if moving else None,
        scale=tab.scale if moving else 1.0,
        flip=tab.flip if moving else False,
        pixels=tab.pixels,
        defaults=defaults,
    )


def destination(tab: Tab, anchor: str = "center") -> Mask | None:
    """Where the edit puts the object: :func:`place_object`'s coverage of at least one half
    (the plan's ``moved_mask`` with the hard mask); ``None`` before a mask or a move."""
    move = Move(tab.dx, tab.dy, tab.scale, tab.flip, anchor)
    if tab.pixels is None or tab.mask is None or not tab.mask.any() or move.is_identity:
        return None
    _, alpha, _ = place_object(tab.pixels, tab.mask, move.dx, move.dy, move.scale, move.flip, anchor)
    return alpha >= 0.5


def preview(tab: Tab, anchor: str = "center") -> Image:
    """The photo with the selected mask, the clicks, the box and, once placed, the outline
    of where the edit puts the object (:func:`destination`)."""
    view = selection_view(tab)
    where = destination(tab, anchor)
    if where is not None:
        contours, _ = cv2.findContours(where.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(view, contours, -1, CYAN, 2)
    return view


def selection_view(tab: Tab) -> Image:
    """The photo with the selected mask tinted, the clicks (green on the object, red off
    it), the box and a box's first corner."""
    _need_photo(tab)
    assert tab.pixels is not None
    view = tab.pixels.copy() if tab.mask is None else overlay(tab.pixels, tab.mask)
    radius = max(3, round(max(view.shape[:2]) / 150))  # visible on a phone photo and a thumbnail
    for (x, y), label in zip(tab.points, tab.labels, strict=True):
        cv2.circle(view, (x, y), radius, GREEN if label else RED_MARK, -1, cv2.LINE_AA)
        cv2.circle(view, (x, y), radius, WHITE, 1, cv2.LINE_AA)
    if tab.box is not None:
        cv2.rectangle(view, tab.box[:2], (tab.box[2] - 1, tab.box[3] - 1), GREEN, 2)
    if tab.corner is not None:
        cv2.drawMarker(view, tab.corner, GREEN, cv2.MARKER_CROSS, radius * 4, 2)
    return view


def command(tab: Tab, settings: Settings) -> str:
    """The ``displace`` command that makes the tab's edit ("" until the tab names an
    object): its target and move, ``scale``/``flip`` where they differ from the run's, then
    the components and the app's overrides. The anchor is the run's (an override, if any)."""
    if tab.pixels is None or not names_object(tab):
        return ""
    parts = ["displace", f"image={tab.name}"]
    if tab.prompt:
        parts.append(f"target.prompt={hydra_text(tab.prompt)}")
    if tab.box is not None:
        parts.append(f"target.box={_listed(tab.box)}")
    if tab.points:
        parts += [f"target.points={_listed(tab.points)}", f"target.labels={_listed(tab.labels)}"]
    parts += [f"dx={tab.dx}", f"dy={tab.dy}"]
    written = set(OWN_KEYS)
    if tab.scale != settings.defaults.scale:
        parts.append(f"scale={float(tab.scale)!r}")  # repr: the shortest text that reads back the same
        written.add("scale")
    if tab.flip != settings.defaults.flip:
        parts.append(f"flip={str(tab.flip).lower()}")
        written.add("flip")
    parts += [f"{group}={name}" for group, name in settings.components]
    parts += [o for o in settings.overrides if _override_key(o).split(".")[0] not in written]
    return " ".join(shlex.quote(p) for p in parts)


def hydra_text(text: str) -> str:
    """``text`` as a Hydra override value: quoted unless plain words (a comma would make
    a list, brackets a sequence)."""
    if re.fullmatch(r"[\w .\-/]*", text) and text == text.strip():
        return text
    return "'" + text.replace("'", "\\'") + "'"


def anchor_point(mask: Mask, anchor: str) -> tuple[float, float]:
    """The point of the object that ``dx``/``dy`` move, in edge coordinates, as
    :func:`place_object` takes it: the centre of its box, or of the box's bottom edge."""
    x0, y0, x1, y1 = Candidate(mask).bbox
    return (x0 + x1) / 2, (float(y1) if anchor == "bottom" else (y0 + y1) / 2)


def _step(tab: Tab, **changes: object) -> Tab:
    """``tab`` changed by a step undo can take back."""
    history = (*tab.history, replace(tab, history=()))[-MAX_UNDO:]
    return replace(tab, history=history, **changes)  # type: ignore[arg-type]


def _need_photo(tab: Tab) -> None:
    if tab.pixels is None:
        raise DisplacementError(NO_PHOTO)


def _whole(value: float) -> int:
    """The nearest whole number, halves up (``round`` takes halves to even)."""
    return math.floor(value + 0.5)


def _listed(values: object) -> str:
    """``(1, 2)`` or ``((1, 2),)`` as the command line writes a list: ``[1,2]``, ``[[1,2]]``."""
    if isinstance(values, tuple | list):
        return "[" + ",".join(_listed(v) for v in values) + "]"
    return str(values)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
