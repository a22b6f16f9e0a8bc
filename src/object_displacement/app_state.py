"""The web app's tab as state and transitions: pure functions, no Gradio, no browser.

A :class:`Tab` is what one browser tab did: its photo, the clicks, box or prompt that name
the object, the mask the pipeline found for them and the brush strokes that fix it, where
the object goes, the edits made before on the same photo ("edit the result"), and an undo
and redo history. Each thing a user does is a function from one tab to the next
(:func:`clicked`, :func:`stroked`, :func:`dragged`, :func:`undone`, :func:`edited` ...);
the app's handlers only call these and the edit.

:func:`request` turns a tab into the :class:`EditRequest` the CLI builds from the same
values (both go through :func:`~object_displacement.request.make_request`), :func:`command`
into that command line (a brushed mask is a file the command reads with ``segmenter=mask``),
and :func:`destination` is where the edit puts the object, by the edit's own geometry
(:func:`~object_displacement.geometry.place_object`).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import place_object
from object_displacement.io import read_image
from object_displacement.request import make_request
from object_displacement.types import Box, Candidate, EditDefaults, EditRequest, Image, Mask, Move, Point

OBJECT, NOT_OBJECT, BOX, PLACE = "object", "not object", "box (2 clicks)", "place"
BRUSH_ON, BRUSH_OFF = "brush +", "brush -"
MODES = (OBJECT, NOT_OBJECT, BOX, PLACE, BRUSH_ON, BRUSH_OFF)
"""What a click (or a stroke, for the brushes) on the photo means, as the page's radio
names it. In every mode but the brushes, a press on the selected object drags it."""
MAX_UNDO = 30
"""Steps undo can take back. Each keeps its masks packed to a bit a pixel (1.5 MB each for
a 12 MP photo), so a tab's history stays under 100 MB whatever the user does."""
MIN_OBJECT_FRACTION = 0.001
"""A selection smaller than this share of the photo (and under :data:`MIN_OBJECT_PIXELS`)
is warned about: a speck, not an object (37 px on a flat photo was called a success)."""
MIN_OBJECT_PIXELS = 400
MAX_STROKE_POINTS = 2000
"""Points one brush stroke keeps (the browser thins a stroke to this many)."""
NO_PHOTO = "open a photo first (upload one or pick a sample)"
NOTHING_SELECTED = "nothing selected: click the object (or draw a box, or find by text)"
NOT_MOVED = "the object is not moved: choose 'place' and click where it should go"
OWN_KEYS = ("image", "target", "dx", "dy", "output")
"""Settings the tab itself gives the command: the app's overrides of them never reach it."""


@dataclass(frozen=True)
class Stroke:
    """One brush stroke: a polyline of photo pixels painted ``radius`` px around, onto the
    object (``add``) or off it."""

    points: tuple[Point, ...]
    radius: int
    add: bool = True


class Packed:
    """A mask kept at one bit a pixel in the undo history (8 times smaller than ``bool``)."""

    def __init__(self, mask: Mask) -> None:
        self.shape = mask.shape
        self.bits = np.packbits(mask, axis=None)

    def unpack(self) -> Mask:
        count = self.shape[0] * self.shape[1]
        return np.unpackbits(self.bits, count=count).astype(bool).reshape(self.shape)


@dataclass(frozen=True)
class Saved:
    """A tab in the undo or redo history: without its own histories, its masks packed."""

    tab: Tab
    found: Packed | None = None
    mask: Packed | None = None


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
    found: Mask | None = field(default=None, repr=False, compare=False)
    """The object the pipeline found for the clicks, box or prompt; ``None`` until then."""
    strokes: tuple[Stroke, ...] = ()
    """Brush strokes painted over what was found, in order."""
    mask: Mask | None = field(default=None, repr=False, compare=False)
    """The object the edit moves: what was found with the strokes painted on it."""
    dx: int = 0
    dy: int = 0
    """Where the object goes, ``dy > 0`` up: the move of its anchor."""
    scale: float = 1.0
    flip: bool = False
    folder: str = ""
    """Where the app writes this tab's downloads."""
    result: Image | None = field(default=None, repr=False, compare=False)
    """The last move's output, which "edit the result" opens as the next photo."""
    made: str = ""
    """The command line that made ``result`` (as it was at that Move, whatever came after)."""
    earlier: tuple[str, ...] = ()
    """The commands of the edits that made this photo ("edit the result"), in order: each
    writes the next one's photo."""
    history: tuple[Saved, ...] = field(default=(), repr=False, compare=False)
    """The tabs before each step undo can take back, oldest first."""
    future: tuple[Saved, ...] = field(default=(), repr=False, compare=False)
    """The steps undo took back, the next one for redo first."""

    @property
    def step(self) -> int:
        """Which edit of the photo's chain this tab makes: 1 on an opened photo."""
        return len(self.earlier) + 1

    @property
    def brushed(self) -> bool:
        """Whether the mask is painted: the edit then moves the mask as it is, and the
        command reads it from a file (``segmenter=mask``)."""
        return bool(self.strokes)


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


def moved(tab: Tab, output: Image | None, command_line: str) -> Tab:
    """The tab after a Move made ``output`` by ``command_line`` (not a step undo takes back)."""
    return replace(tab, result=output, made=command_line)


def edited(tab: Tab, source: str) -> Tab:
    """The tab on its last Move's output (written at ``source``), to move another object:
    nothing selected, the same scale and flip, the command that made it (writing
    ``source``) last in its chain. Undo does not go back across it."""
    if tab.result is None:
        raise DisplacementError("nothing to edit yet: Move first, then edit the result")
    return Tab(
        source=source,
        name=Path(source).name,
        pixels=tab.result,
        scale=tab.scale,
        flip=tab.flip,
        folder=tab.folder,
        earlier=(*tab.earlier, tab.made),
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
        return _step(tab, corner=None, box=box, found=None, mask=None)
    if mode not in (OBJECT, NOT_OBJECT):
        raise ValueError(f"a click's mode is one of {MODES[:3]}, got {mode!r} (place: use placed)")
    label = 1 if mode == OBJECT else 0
    return _step(tab, points=(*tab.points, where), labels=(*tab.labels, label), found=None, mask=None)


def stroked(tab: Tab, points: Sequence[Point], radius: float, add: bool = True) -> Tab:
    """A brush stroke along ``points`` (photo pixels), ``radius`` px wide each side: it
    paints the object on (``add``) or off. Points outside the photo are clipped to it."""
    _need_photo(tab)
    assert tab.pixels is not None
    if not points:
        raise DisplacementError("a brush stroke needs at least one point")
    height, width = tab.pixels.shape[:2]
    kept = [(min(max(int(x), 0), width - 1), min(max(int(y), 0), height - 1)) for x, y in points]
    step = max(1, math.ceil(len(kept) / MAX_STROKE_POINTS))
    stroke = Stroke(points=tuple(kept[::step]), radius=max(1, round(radius)), add=bool(add))
    strokes = (*tab.strokes, stroke)
    return _step(tab, strokes=strokes, mask=painted(tab.found, strokes, (height, width)))


def painted(found: Mask | None, strokes: Sequence[Stroke], shape: tuple[int, int]) -> Mask | None:
    """``found`` with the strokes painted on it in order (``None`` when both are empty)."""
    if not strokes:
        return found
    mask = np.zeros(shape, bool) if found is None else found.copy()
    for stroke in strokes:
        y0, y1, x0, x1, under = _brushed(stroke, shape)
        mask[y0:y1, x0:x1][under] = stroke.add
    return mask if mask.any() or found is not None else None


def prompted(tab: Tab, prompt: str) -> Tab:
    """The tab naming its object by text (as well as by its clicks or box)."""
    _need_photo(tab)
    return _step(tab, prompt=prompt.strip(), found=None, mask=None)


def placed(tab: Tab, x: int, y: int, anchor: str = "center") -> Tab:
    """The object's ``anchor`` moved to the clicked pixel ``(x, y)``: its centre there, or
    for ``bottom`` its bottom centre on that pixel's lower edge (standing on it)."""
    _need_photo(tab)
    if tab.mask is None or not tab.mask.any():
        raise DisplacementError("nothing selected: click the object first, then place it")
    ax, ay = anchor_point(tab.mask, anchor)
    to_x, to_y = x + 0.5, y + (1.0 if anchor == "bottom" else 0.5)
    return _step(tab, dx=_whole(to_x - ax), dy=_whole(ay - to_y))  # dy > 0 is up: rows go down


def dragged(tab: Tab, by_x: float, by_y: float) -> Tab:
    """The object dragged ``by_x`` px right and ``by_y`` px down the screen from where the
    tab had put it: the move grows by that (``dy`` counts up)."""
    _need_photo(tab)
    if tab.mask is None or not tab.mask.any():
        raise DisplacementError("nothing selected: click the object first, then drag it")
    return _step(tab, dx=tab.dx + _whole(by_x), dy=tab.dy - _whole(by_y))


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


def with_mask(tab: Tab, found: Mask | None) -> Tab:
    """The tab with the mask the pipeline found for its selection, the strokes painted on
    it (part of the step that changed the selection, so undo does not stop at the maskless
    tab)."""
    shape = found.shape if found is not None else None
    if tab.pixels is not None:
        shape = tab.pixels.shape[:2]
    mask = found if shape is None else painted(found, tab.strokes, shape)  # type: ignore[arg-type]
    return replace(tab, found=found, mask=mask)


def _brushed(stroke: Stroke, shape: tuple[int, int]) -> tuple[int, int, int, int, Mask]:
    """The pixels within ``radius`` of the stroke's polyline, on the crop around it."""
    xs, ys = [p[0] for p in stroke.points], [p[1] for p in stroke.points]
    r = stroke.radius
    x0, y0 = max(min(xs) - r, 0), max(min(ys) - r, 0)
    x1, y1 = min(max(xs) + r + 1, shape[1]), min(max(ys) + r + 1, shape[0])
    line = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    path = (np.asarray(stroke.points, np.int32) - (x0, y0)).reshape(-1, 1, 2)
    cv2.polylines(line, [path], False, 0, thickness=1)
    line[path[:, 0, 1], path[:, 0, 0]] = 0  # a single point is a stroke too
    return y0, y1, x0, x1, cv2.distanceTransform(line, cv2.DIST_L2, 5) <= r


def too_small(tab: Tab) -> bool:
    """Whether the selection is a speck rather than an object (:data:`MIN_OBJECT_FRACTION`)."""
    if tab.mask is None or tab.pixels is None:
        return False
    area = int(tab.mask.sum())
    return area < MIN_OBJECT_PIXELS and area < MIN_OBJECT_FRACTION * tab.mask.size


def cleared(tab: Tab) -> Tab:
    """The same photo with no selection and no move; undo brings them back."""
    _need_photo(tab)
    return _step(
        tab,
        points=(),
        labels=(),
        corner=None,
        box=None,
        prompt="",
        found=None,
        strokes=(),
        mask=None,
        dx=0,
        dy=0,
    )


def undone(tab: Tab) -> Tab:
    """The tab before its last click, stroke, box, prompt, place, drag or clear, masks
    included; redo brings the step back. The scale and flip stay as the page shows them."""
    if not tab.history:
        raise DisplacementError("nothing to undo")
    previous = _restored(tab.history[-1], tab)
    return replace(previous, history=tab.history[:-1], future=(_saved(tab), *tab.future))


def redone(tab: Tab) -> Tab:
    """The step undo last took back, done again."""
    if not tab.future:
        raise DisplacementError("nothing to redo")
    following = _restored(tab.future[0], tab)
    return replace(following, history=(*tab.history, _saved(tab))[-MAX_UNDO:], future=tab.future[1:])


def names_object(tab: Tab) -> bool:
    """Whether the tab names an object to find: a prompt, a box, a click on it, or a
    painted mask."""
    if tab.brushed:
        return tab.mask is not None and bool(tab.mask.any())
    return bool(tab.prompt or tab.box is not None or 1 in tab.labels)


def finds_object(tab: Tab) -> bool:
    """Whether the pipeline has something to find (a prompt, box or click on the object):
    a tab with only strokes paints its mask from nothing."""
    return bool(tab.prompt or tab.box is not None or 1 in tab.labels)


def request(tab: Tab, defaults: EditDefaults, moving: bool = True) -> EditRequest:
    """The edit the tab asks for, built as the CLI builds it from the same values (the run's
    ``defaults`` where the tab is silent: anchor, keep-out boxes, size bound). A brushed
    tab names no target: the edit runs with ``segmenter=mask`` on :func:`mask_file`.
    ``moving`` ``False``: only find the object (no move, whatever the tab's scale or flip)."""
    _need_photo(tab)
    if not (names_object(tab) if moving else finds_object(tab)):
        raise DisplacementError(NOTHING_SELECTED)
    painted_mask = moving and tab.brushed  # the mask file names the object: no other cue
    return make_request(
        tab.source,
        prompt=None if painted_mask else tab.prompt or None,
        box=None if painted_mask else tab.box,
        points=None if painted_mask else list(tab.points) or None,
        labels=None if painted_mask else list(tab.labels) or None,
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


def command(tab: Tab, settings: Settings, output: str = "") -> str:
    """The ``displace`` commands that make the tab's edit, one a line: the earlier edits of
    the chain, then this one (none until the tab names an object): its target (or its mask
    file) and move, ``scale``/``flip`` where they differ from the run's, the components and
    the app's overrides, and ``output`` when given. The anchor is the run's."""
    if tab.pixels is None or not names_object(tab):
        return "\n".join(tab.earlier)
    parts = ["displace", f"image={tab.name}"]
    if tab.brushed:
        parts += ["segmenter=mask", f"segmenter.path={mask_file(tab)}"]
    else:
        if tab.prompt:
            parts.append(f"target.prompt={hydra_text(tab.prompt)}")
        if tab.box is not None:
            parts.append(f"target.box={_listed(tab.box)}")
        if tab.points:
            parts += [f"target.points={_listed(tab.points)}", f"target.labels={_listed(tab.labels)}"]
    parts += [f"dx={tab.dx}", f"dy={tab.dy}"]
    written = set(OWN_KEYS) | ({"segmenter"} if tab.brushed else set())  # the mask file is the segmenter
    if tab.scale != settings.defaults.scale:
        parts.append(f"scale={float(tab.scale)!r}")  # repr: the shortest text that reads back the same
        written.add("scale")
    if tab.flip != settings.defaults.flip:
        parts.append(f"flip={str(tab.flip).lower()}")
        written.add("flip")
    parts += [f"{g}={name}" for g, name in settings.components if not (tab.brushed and g == "segmenter")]
    parts += [o for o in settings.overrides if _override_key(o).split(".")[0] not in written]
    if output:
        parts.append(f"output={output}")
    return "\n".join([*tab.earlier, " ".join(shlex.quote(p) for p in parts)])


def mask_file(tab: Tab) -> str:
    """The name of the file a brushed tab's mask is downloaded as (and its command reads)."""
    return f"mask-{tab.step}.png"


def output_file(tab: Tab) -> str:
    """The name of the file this tab's edit is downloaded as, the next edit's photo."""
    return f"step-{tab.step}.png"


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
    """``tab`` changed by a step undo can take back (a new step: nothing left to redo)."""
    history = (*tab.history, _saved(tab))[-MAX_UNDO:]
    return replace(tab, history=history, future=(), **changes)  # type: ignore[arg-type]


def _saved(tab: Tab) -> Saved:
    bare = replace(tab, found=None, mask=None, result=None, made="", history=(), future=())
    found = None if tab.found is None else Packed(tab.found)
    if tab.mask is None:
        return Saved(bare, found, None)
    mask = found if tab.mask is tab.found else Packed(tab.mask)
    return Saved(bare, found, mask)


def _restored(saved: Saved, now: Tab) -> Tab:
    """A saved tab as it was, but with the page's scale, flip, folder and result of ``now``."""
    found = None if saved.found is None else saved.found.unpack()
    mask = None if saved.mask is None else found if saved.mask is saved.found else saved.mask.unpack()
    return replace(
        saved.tab,
        found=found,
        mask=mask,
        scale=now.scale,
        flip=now.flip,
        folder=now.folder,
        result=now.result,
    )


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
