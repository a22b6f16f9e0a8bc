"""The data every stage exchanges, defined once.

Conventions, used everywhere in this package:

- An image is an ``HxWx3`` ``uint8`` NumPy array in RGB order.
- A mask is an ``HxW`` ``bool`` NumPy array; ``True`` marks the pixels it names.
- Coordinates are ``(x, y)`` in pixels, origin at the top-left corner, x to the right,
  y downwards. A box is ``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive.
- A displacement ``(dx, dy)`` follows the method we implement: ``dx > 0`` moves right,
  ``dy > 0`` moves **up**, so a pixel at ``(x, y)`` lands at ``(x + dx, y - dy)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Box = tuple[int, int, int, int]
Point = tuple[int, int]

MAX_MEGAPIXELS = 50.0
"""Default bound on a photo's size (the ``max_megapixels`` setting), checked before it is
decoded: memory grows with the photo (docs/benchmarks.md has the measured peaks)."""


@dataclass(frozen=True)
class Target:
    """What the user wants to move: a text prompt, a point or a box, or a prompt with one
    of the two ("the backpack in this box"): the geometry localizes, the text decides.

    ``points`` with ``labels`` are clicks in SAM's format: label 1 is on the object, 0 is
    not (a click that fixes a mask leaking onto the table). They stand alone or refine a
    box.
    """

    prompt: str | None = None
    point: Point | None = None
    box: Box | None = None
    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.point is not None and self.box is not None:
            raise ValueError("a target holds a point or a box, not both")
        if self.point is not None and self.points:
            raise ValueError("give one point as point, or several clicks as points, not both")
        if len(self.labels) != len(self.points) or any(label not in (0, 1) for label in self.labels):
            raise ValueError("points need one label each: 1 on the object, 0 off it")
        if self.prompt is None and self.point is None and self.box is None and not self.positive:
            raise ValueError("a target needs a prompt, a point, a box or a point on the object")

    @property
    def positive(self) -> tuple[Point, ...]:
        """Every point on the object: ``point`` and the clicks labelled 1."""
        clicks = tuple(p for p, label in zip(self.points, self.labels, strict=True) if label == 1)
        return ((self.point,) if self.point is not None else ()) + clicks

    @property
    def negative(self) -> tuple[Point, ...]:
        """The clicks labelled 0: pixels that are not the object."""
        return tuple(p for p, label in zip(self.points, self.labels, strict=True) if label == 0)

    @property
    def kind(self) -> str:
        """The cues it carries: ``prompt``, ``point``, ``box``, ``points``, joined by ``+``."""
        cues = [name for name in ("prompt", "point", "box", "points") if getattr(self, name)]
        return "+".join(cues)


@dataclass
class Candidate:
    """One object proposed by a segmenter; selectors fill in ``score``."""

    mask: Mask
    score: float = 0.0
    source: str = ""

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def bbox(self) -> Box:
        """Tight box around the mask, ``x1``/``y1`` exclusive."""
        ys = np.flatnonzero(self.mask.any(axis=1))
        xs = np.flatnonzero(self.mask.any(axis=0))
        if ys.size == 0:
            return (0, 0, 0, 0)
        return (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)


@dataclass(frozen=True)
class Move:
    """How the object moves: by ``(dx, dy)`` (``dy > 0`` is up), scaled by ``scale`` and
    mirrored left-right if ``flip``, about an ``anchor`` (``center``, or ``bottom`` for
    objects standing on a surface). The displacement moves the anchor."""

    dx: int = 0
    dy: int = 0
    scale: float = 1.0
    flip: bool = False
    anchor: str = "center"

    @property
    def is_identity(self) -> bool:
        return self.dx == 0 and self.dy == 0 and self.scale == 1.0 and not self.flip


@dataclass(frozen=True)
class EditDefaults:
    """What an edit takes where its request leaves a setting out: the run's own settings
    (``scale``, ``flip``, ``anchor``, ``keep_out``, ``max_megapixels`` of the config), so a
    manifest row, an API call or the app's tab that says nothing of them edits as the run
    says."""

    scale: float = 1.0
    flip: bool = False
    anchor: str = "center"
    keep_out: tuple[Box, ...] = ()
    max_megapixels: float | None = MAX_MEGAPIXELS


@dataclass(frozen=True)
class EditRequest:
    """One edit as a user asked for it, whichever entry point heard it (the command line, a
    manifest row, the API, the app's tab): every one builds a request and runs the same
    edit. Values are checked for their form; what depends on the photo (a box inside it)
    is checked once the photo is read.

    ``target`` ``None`` asks for the target the segmenter implies (a mask file); ``keep_out``
    boxes mark regions no fill may copy from, clipped to the photo; ``pixels`` is the photo
    when it is already in memory (the API, the app), ``source`` then only names it."""

    source: str
    target: Target | None = None
    move: Move = Move()
    keep_out: tuple[Box, ...] = ()
    max_megapixels: float | None = MAX_MEGAPIXELS
    pixels: Image | None = field(default=None, repr=False, compare=False)

    @property
    def moves(self) -> bool:
        """Whether the object moves; if not the edit gives its mask."""
        return not self.move.is_identity


@dataclass
class Matte:
    """The object's soft coverage at its old place and its own colours there.

    ``alpha`` (HxW float32, 0..1) is above 0 on every pixel the object touches, its soft
    fringe (hair, a blurred edge) included; ``foreground`` is the photo with the old
    background's colour taken out of that fringe, so the edge can travel to a new place
    without a halo of the old one.
    """

    alpha: npt.NDArray[np.float32]
    foreground: Image

    @property
    def support(self) -> Mask:
        """Every pixel the object touches: what its old place must re-synthesize."""
        return self.alpha > 0


@dataclass
class Shadow:
    """The object's cast shadow at its old place, and what the edit does with it.

    ``matte`` (HxW float32) is the attenuation of the light the surface gets: 0 lit, toward
    1 the darkest; soft, so a penumbra is kept. In linear light a shadowed pixel is the lit
    surface times ``1 - matte * tint``: ``tint`` (R, G, B; luminance-weighted mean 1) is the
    shadow's colour (bluer under a sky). The mover fills in where the old shadow was
    relit or left to the fill, and ``moved``, the matte at the object's new place.
    """

    matte: npt.NDArray[np.float32]
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    relit: Mask | None = None
    filled: Mask | None = None
    moved: npt.NDArray[np.float32] | None = None

    @property
    def support(self) -> Mask:
        """Every pixel the shadow darkens noticeably (the matte above ``SHADOW_FLOOR``)."""
        return self.matte > SHADOW_FLOOR

    def summary(self, mask: Mask) -> dict[str, Any]:
        """What was found, for the metrics: its area, mean attenuation, the offset of its
        centre from the object's (x right, y up, pixels), and what the edit did with it."""
        support = self.support
        found: dict[str, Any] = {"area_px": int(support.sum()), "tint": [round(t, 3) for t in self.tint]}
        if support.any():
            ys, xs = np.nonzero(support)
            weights = self.matte[ys, xs]
            oy, ox = np.nonzero(mask)
            offset = (
                np.average(xs, weights=weights) - ox.mean(),
                oy.mean() - np.average(ys, weights=weights),
            )
            found |= {
                "mean_attenuation": round(float(weights.mean()), 4),
                "offset_px": [round(float(v), 1) for v in offset],
            }
        found["relit_px"] = 0 if self.relit is None else int(self.relit.sum())
        found["filled_px"] = 0 if self.filled is None else int(self.filled.sum())
        found["cast_px"] = 0 if self.moved is None else int((self.moved > SHADOW_FLOOR).sum())
        found["contact"] = not support.any() and self.moved is not None
        return found


SHADOW_FLOOR = 0.02
"""Attenuation below this (2 % less light) is no shadow a viewer sees."""


@dataclass
class Plan:
    """What the mask policy decided, and what the compositor made of it.

    ``background`` is the photo with the hole prefilled and no object; ``layer`` holds the
    object's pixels at their new place, with coverage ``alpha`` (0..1, antialiased when
    scaled). ``hole_mask`` (the hole, a ring around it, speckles) is always re-synthesized;
    ``seam_mask`` (a ring around the new place) is inpainted or blended, as the compositor
    says. The compositor fills in ``composite`` and ``inpaint_mask``.
    """

    source: Image
    source_mask: Mask
    background: Image
    layer: Image
    alpha: npt.NDArray[np.float32]
    hole_mask: Mask
    seam_mask: Mask
    move: Move
    kept_fraction: float = 1.0
    """Share of the (scaled) object still inside the frame."""
    prefilled: bool = True
    """Whether ``background`` holds a guess of the surface in the hole (or the photo there)."""
    composite: Image | None = None
    inpaint_mask: Mask | None = None
    keep_out: Mask | None = None
    """Pixels the user marked (``keep_out`` boxes) that no fill may copy from."""
    shadow: Shadow | None = None
    """The object's cast shadow, when the shadow stage found one (or cast a contact shadow)."""

    @cached_property
    def moved_mask(self) -> Mask:
        """Where the object now is: its coverage at least one half. Computed once: the
        compositor, the inpainter, the ghost check and the metrics all ask for it, and
        ``alpha`` does not change after planning."""
        return self.alpha >= 0.5

    @property
    def avoid(self) -> Mask:
        """What a fill must not copy from: the moved object and the user's keep-out regions."""
        return self.moved_mask if self.keep_out is None else self.moved_mask | self.keep_out

    @property
    def dx(self) -> int:
        return self.move.dx

    @property
    def dy(self) -> int:
        return self.move.dy


@dataclass
class Result:
    """Everything a run produced, kept so it can be written, logged and tested."""

    image: Image
    target: Target
    candidates: list[Candidate]
    """Every object the segmenter proposed."""
    ranking: list[Candidate]
    """The candidates that match the target, best first, with the selector's scores."""
    plan: Plan | None = None
    output: Image | None = None
    timings: dict[str, float] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Every inpainting attempt with its ghost score (see :mod:`object_displacement.ghost`)."""

    @property
    def selected(self) -> Candidate:
        return self.ranking[0]

    @property
    def mask(self) -> Mask:
        return self.selected.mask

    def metrics(self) -> dict[str, Any]:
        """Numbers worth comparing across runs; JSON-serialisable."""
        metrics: dict[str, Any] = {
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "image_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "target": self.target.kind,
            "candidate_count": len(self.candidates),
            "selection_score": round(float(self.selected.score), 4),
            "object_area_px": self.selected.area,
            "object_bbox": list(self.selected.bbox),
            "mode": "mask" if self.plan is None else "move",
            "ranking": [
                {"score": round(float(c.score), 4), "area_px": c.area, "bbox": list(c.bbox)}
                for c in self.ranking
            ],
        }
        if self.plan is not None:
            move = self.plan.move
            metrics.update(
                dx=move.dx,
                dy=move.dy,
                scale=move.scale,
                flip=move.flip,
                anchor=move.anchor,
                kept_fraction=round(self.plan.kept_fraction, 4),
                moved_area_px=int(self.plan.moved_mask.sum()),
                inpaint_area_px=0 if self.plan.inpaint_mask is None else int(self.plan.inpaint_mask.sum()),
                inpaint_attempts=self.attempts,
                shadow=None if self.plan.shadow is None else self.plan.shadow.summary(self.selected.mask),
            )
        return metrics
