"""GrabCut (OpenCV): a classical box-prompted segmenter that needs no weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import clip_box, grown_box, shrink
from object_displacement.segmenters.background import (
    background_in_box,
    common_outside,
    continued_surroundings,
)
from object_displacement.segmenters.base import Segmenter
from object_displacement.segmenters.edges import upsample_mask
from object_displacement.settings import MAX_ITERATIONS, Range, Seed
from object_displacement.types import Box, Candidate, Image, Point, Target


def disk_area(radius: int) -> int:
    """Pixels of the filled disk OpenCV draws with ``radius`` (29 for 3, not pi r^2)."""
    side = 2 * radius + 1
    disk = np.zeros((side, side), np.uint8)
    cv2.circle(disk, (radius, radius), radius, 1, thickness=-1)
    return int(disk.sum())


CLICK_RADIUS = 3
"""A click is sure object (or sure background) over a disk of this radius (working
resolution px): the clicked pixel and its neighbours, where a click a little off lands."""

CLICK_AREA = disk_area(CLICK_RADIUS)
"""Pixels a click's sure disk covers."""

CLICKS_ONLY = 2
"""A mask within this many sure disks per click found nothing but the clicks."""

MIN_POINT_HALF = 4
"""A point's box reaches at least this far (px) on each side of it, however small the photo."""

MIN_MARGIN = 8
"""GrabCut's crop keeps at least this much background (px) around the box, which its
background model learns from, however thin the box."""

CLICK_STEP = 1.0
"""A box drawn around clicks grows by its whole size towards a side the object runs into:
it holds only the part of the object near the clicks."""

REGION_STEP = 0.5
"""A box drawn around the region under a click grows by half its size: the region should
already hold most of the object."""

GAUSSIANS = 5
"""Components of each of GrabCut's colour models (fixed by OpenCV)."""

MODEL_SIZE = GAUSSIANS * (1 + 3 + 3 * 3)
"""Floats of one colour model as OpenCV stores it: per Gaussian a weight, an RGB mean and a
3x3 covariance."""


class GrabCutSegmenter(Segmenter):
    """Segment the object inside a box, or the object under a point or clicks.

    Clicks (``target.points`` / ``target.labels``, or ``target.point``) are seeds: on the
    object, sure foreground; off it, sure background. Without a box, the box starts
    around the clicks and grows towards every side the object runs into.

    Args:
        iterations: GrabCut refinement rounds; 5 is enough for most photos.
        context: background margin around the box, as a fraction of the box size; GrabCut
            only sees this crop, which keeps large photos fast.
        point_box: side of the box drawn around a point target, as a fraction of the
            image's shorter side.
        min_area: smallest component kept, as a fraction of the largest one.
        seed: seed of OpenCV's RNG, so GrabCut's k-means start is repeatable.
        grow: add the parts GrabCut misses where the background has a colour like the
            object elsewhere (a grey nose cone against dusk sky, with grey clouds on the
            horizon). GrabCut's colour models are global; this step predicts the
            background inside the box from its border and adds every pixel that clearly
            differs from that prediction and touches GrabCut's mask.
        grow_contrast: how clearly a pixel must differ, as a multiple of the local
            texture of the surroundings (textured backgrounds need more).
        grow_floor: the smallest difference that counts, in CIELAB units (about 2.3 is
            just noticeable).
        work_side: GrabCut runs on the crop shrunk to at most this long side (0: full
            resolution); its colour models and graph cut need no more, and the mask is
            brought back to full resolution with its edge snapped to the photo's edges
            (:func:`~object_displacement.segmenters.edges.upsample_mask`). 256 px keeps
            a 12 MP photo's segmentation under a second.
        point_rounds: with clicks but no box, how often the box around them may grow
            towards sides the clicked object runs into (0: a fixed box of ``point_box``).
        click_disk: without a box, the disk around each click that starts as probable
            object, as a fraction of the box's shorter side.
        clean_start: with a box, GrabCut also starts with the box's background (the
            surroundings carried on into the box, :mod:`.background`) as probable
            background, so the object's colour model does not learn it (plain GrabCut
            keeps the wall between a horse's legs); docs/benchmarks.md has what it
            gains on the ground-truth scenes.
        region_scale: when a point's first GrabCut finds nothing but the click, the box
            comes from the region under the click in Felzenszwalb and Huttenlocher's
            graph-based segmentation (scikit-image) at this scale (larger: larger regions).
    """

    def __init__(
        self,
        iterations: Annotated[int, Range(1, MAX_ITERATIONS)] = 5,
        context: float = 0.5,
        point_box: float = 0.3,
        min_area: float = 0.05,
        seed: Seed = 0,
        grow: bool = True,
        grow_contrast: float = 4.0,
        grow_floor: float = 10.0,
        work_side: int = 256,
        point_rounds: int = 6,
        click_disk: float = 0.1,
        clean_start: bool = True,
        region_scale: float = 300.0,
    ) -> None:
        self.iterations = iterations
        self.context = context
        self.point_box = point_box
        self.min_area = min_area
        self.seed = seed
        self.grow = grow
        self.grow_contrast = grow_contrast
        self.grow_floor = grow_floor
        self.work_side = work_side
        self.point_rounds = point_rounds
        self.click_disk = click_disk
        self.clean_start = clean_start
        self.region_scale = region_scale

    def propose(self, image: Image, target: Target) -> list[Candidate]:
        height, width = image.shape[:2]
        positive, negative = target.positive, target.negative
        if target.box is not None:
            box = target.box
        elif positive:
            box = self._box_around(positive, width, height)
        else:
            raise DisplacementError(
                f"a text-only target ('{target.prompt}') needs a segmenter that proposes "
                "every object: use segmenter=sam selector=clip, or give target.box or target.point"
            )
        box_given = target.box is not None
        found = self._segment(image, box, positive, negative, box_given)
        if not box_given:
            # a point names an object, not a box around it: while the object runs into the
            # box's side, the box grows that way, so a tall rocket is not sliced
            found = self._follow(image, box, found, positive, negative, loose=True)
            crop, _, factor, foreground = found
            if _clicked(foreground, positive, crop, factor).sum() <= CLICKS_ONLY * CLICK_AREA * len(positive):
                # nothing but the clicks: the box mostly held the object (a dark coat filling
                # it), so its colours were learned as background. Start instead from the
                # region under the click, boxed like a user would box it.
                box = region_box(image, positive, self.region_scale)
                try:
                    again = self._segment(image, box, positive, negative, True)
                    found = self._follow(image, box, again, positive, negative, loose=False)
                except DisplacementError:  # the region fills the photo: nothing to learn from
                    pass
        crop, patch, factor, foreground = found
        # back to full resolution, the edge following the photo's edges
        if factor < 1.0:
            foreground = upsample_mask(foreground, patch)
        full = np.zeros((height, width), dtype=bool)
        full[crop[1] : crop[3], crop[0] : crop[2]] = foreground
        return self._components(full)

    def _follow(
        self,
        image: Image,
        box: Box,
        found: tuple[Box, Image, float, np.ndarray],
        positive: Sequence[Point],
        negative: Sequence[Point],
        loose: bool,
    ) -> tuple[Box, Image, float, np.ndarray]:
        """Grow ``box`` towards every side the clicked object runs into and segment again,
        at most ``point_rounds`` times: by the box's size around clicks (``loose``), by half
        of it around a region that should already hold most of the object."""
        height, width = image.shape[:2]
        for _ in range(self.point_rounds):
            crop, _, factor, foreground = found
            inner = scaled_box(_inside(box, crop), factor)
            sides = _touched_sides(_clicked(foreground, positive, crop, factor), inner)
            grown = _grown_box(box, sides, width, height, CLICK_STEP if loose else REGION_STEP)
            if grown == box:
                break
            box = grown
            found = self._segment(image, box, positive, negative, not loose)
        return found

    def _segment(
        self,
        image: Image,
        box: Box,
        positive: Sequence[Point],
        negative: Sequence[Point],
        box_given: bool = True,
    ) -> tuple[Box, Image, float, np.ndarray]:
        """GrabCut (and the grow step) on the crop around ``box`` at the working resolution:
        the crop, its full-size pixels, the working factor and the mask there."""
        height, width = image.shape[:2]
        crop = self._crop(box, width, height)
        patch = np.ascontiguousarray(image[crop[1] : crop[3], crop[0] : crop[2]])
        factor = work_factor(patch, self.work_side)
        small = shrink(patch, factor)
        inner = scaled_box(_inside(box, crop), factor)

        def local(points: Sequence[Point]) -> list[Point]:
            return [(round((x - crop[0]) * factor), round((y - crop[1]) * factor)) for x, y in points]

        loose = box_given is False
        clean = self.clean_start and not loose
        if not loose and (clean or self.grow):
            # what the surroundings say of each box pixel, once for the start and the grow
            continued, distance, allowed = continued_surroundings(
                small, inner, self.grow_contrast, self.grow_floor
            )
            common = common_outside(small, inner) if clean else None
        background = background_in_box(small, inner, continued, common) if clean else None
        foreground = self._grabcut(small, inner, local(positive), local(negative), loose, background)
        if self.grow and not loose:
            foreground = self._grown(foreground, inner, distance > allowed, allowed, common)
            for x, y in local(negative):  # a click off the object stays off it
                cv2.circle(foreground.view(np.uint8), (x, y), CLICK_RADIUS, 0, thickness=-1)
        return crop, patch, factor, foreground

    def _box_around(self, points: Sequence[Point], width: int, height: int) -> Box:
        half = max(MIN_POINT_HALF, round(self.point_box * min(width, height) / 2))
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        box = (min(xs) - half, min(ys) - half, max(xs) + half + 1, max(ys) + half + 1)
        return clip_box(box, width, height)

    def _crop(self, box: Box, width: int, height: int) -> Box:
        x0, y0, x1, y1 = box
        mx = max(MIN_MARGIN, round(self.context * (x1 - x0)))
        my = max(MIN_MARGIN, round(self.context * (y1 - y0)))
        return grown_box(box, width, height, mx, my)

    def _grabcut(
        self,
        patch: Image,
        box: Box,
        positive: Sequence[Point] = (),
        negative: Sequence[Point] = (),
        loose: bool = False,
        background: np.ndarray | None = None,
    ) -> np.ndarray:
        """GrabCut inside ``box`` (patch coordinates); clicks on the object are sure
        foreground, clicks off it sure background. A ``loose`` box (drawn around clicks,
        not by the user) is not mostly object: only a disk around each click starts as
        probable foreground, the rest of the box as probable background. ``background``
        marks box pixels that start as probable background."""
        state = np.full(patch.shape[:2], cv2.GC_BGD, dtype=np.uint8)
        x0, y0, x1, y1 = box
        state[y0:y1, x0:x1] = cv2.GC_PR_BGD if loose else cv2.GC_PR_FGD
        if background is not None and not background[y0:y1, x0:x1].all():  # a flat box: no start
            state[background] = cv2.GC_PR_BGD
        if loose:
            radius = max(CLICK_RADIUS, round(self.click_disk * min(x1 - x0, y1 - y0)))
            for point in positive:
                cv2.circle(state, point, radius, cv2.GC_PR_FGD, thickness=-1)
        for point in positive:
            cv2.circle(state, point, CLICK_RADIUS, cv2.GC_FGD, thickness=-1)
        for point in negative:
            cv2.circle(state, point, CLICK_RADIUS, cv2.GC_BGD, thickness=-1)
        bgd = np.zeros((1, MODEL_SIZE), np.float64)
        fgd = np.zeros((1, MODEL_SIZE), np.float64)
        cv2.setRNGSeed(self.seed)
        try:
            cv2.grabCut(patch, state, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error as err:  # raised when the box leaves no background or foreground
            raise DisplacementError(
                "grabcut could not separate an object from its surroundings in the box "
                "(it needs background around the box and something unlike it inside)"
            ) from err
        return (state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)

    def _grown(
        self,
        foreground: np.ndarray,
        box: Box,
        differs: np.ndarray,
        allowed: np.ndarray,
        common: np.ndarray | None = None,
    ) -> np.ndarray:
        """``foreground`` plus the box pixels that ``differ`` from the background predicted
        from the border (by more than ``allowed``) and touch it. After a clean start (given
        the box pixels whose colour is ``common`` around it), on textured surroundings
        (where that prediction is poor) only colours rare around the box may grow, so the
        texture between an object's parts does not grow back; on smooth surroundings the
        prediction is good, and a dim rocket tip against the sky grows back whatever its
        colour."""
        x0, y0, x1, y1 = box
        unlike = np.zeros(foreground.shape, dtype=bool)
        unlike[y0:y1, x0:x1] = differs[y0:y1, x0:x1]
        if common is not None:
            unlike &= (allowed <= self.grow_floor) | ~common
        _, labels = cv2.connectedComponents(unlike.astype(np.uint8), connectivity=8)
        touching = np.unique(labels[foreground & unlike])
        return foreground | np.isin(labels, touching[touching > 0])

    def _components(self, foreground: np.ndarray) -> list[Candidate]:
        """One candidate per connected blob, largest first, small debris dropped."""
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            foreground.astype(np.uint8), connectivity=8
        )
        if count <= 1:
            return []
        areas = stats[1:, cv2.CC_STAT_AREA]
        total = float(areas.sum())
        order = np.argsort(areas)[::-1]
        keep = [i for i in order if areas[i] >= self.min_area * areas[order[0]]]
        return [
            Candidate(mask=labels == i + 1, score=float(areas[i]) / total, source="grabcut") for i in keep
        ]


REGION_SIDE = 384
"""The graph-based regions are found at most this large: they only place the first box."""

REGION_SIGMA = 0.8
"""Smoothing before the graph-based regions (scikit-image's default): noise makes no regions."""

REGION_MIN_PIXELS = 20
"""The smallest graph-based region (scikit-image's default), on the smallest photos."""

REGION_PARTS = 400
"""A region covers at least one part in this many of the photo: the region under a click
is a surface, not a fleck of its texture."""

REGION_MARGIN = 0.1
"""The box around a region has the margin a user leaves: this fraction of its size..."""

REGION_MARGIN_PIXELS = 4
"""...plus this many pixels, so a small region still has background around it."""


def region_box(image: Image, points: Sequence[Point], scale: float) -> Box:
    """A user's box around the graph-based region(s) under ``points``: their bounding box
    with a margin (``REGION_MARGIN`` of its size and ``REGION_MARGIN_PIXELS``)."""
    from skimage.segmentation import felzenszwalb

    height, width = image.shape[:2]
    factor = min(1.0, REGION_SIDE / max(height, width))
    small = shrink(image, factor)
    least = max(REGION_MIN_PIXELS, small.shape[0] * small.shape[1] // REGION_PARTS)
    labels = felzenszwalb(small, scale=scale, sigma=REGION_SIGMA, min_size=least)
    rows, cols = small.shape[:2]
    hit = {int(labels[min(rows - 1, round(y * factor)), min(cols - 1, round(x * factor))]) for x, y in points}
    x0, y0, x1, y1 = (v / factor for v in Candidate(np.isin(labels, list(hit))).bbox)
    mx = REGION_MARGIN * (x1 - x0) + REGION_MARGIN_PIXELS
    my = REGION_MARGIN * (y1 - y0) + REGION_MARGIN_PIXELS
    return grown_box((x0, y0, x1, y1), width, height, mx, my)


def work_factor(image: Image, side: int) -> float:
    """The factor that shrinks ``image`` to at most ``side`` px a side (0: no shrinking)."""
    return min(1.0, side / max(image.shape[:2])) if side > 0 else 1.0


def scaled_box(box: Box, factor: float) -> Box:
    """``box`` in the coordinates of an image resized by ``factor``, at least 1 px wide."""
    x0, y0, x1, y1 = (round(v * factor) for v in box)
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def _inside(box: Box, crop: Box) -> Box:
    """``box`` in the coordinates of ``crop``."""
    return (box[0] - crop[0], box[1] - crop[1], box[2] - crop[0], box[3] - crop[1])


def _clicked(foreground: np.ndarray, positive: Sequence[Point], crop: Box, factor: float) -> np.ndarray:
    """The connected parts of ``foreground`` (working resolution) under a positive click."""
    _, labels = cv2.connectedComponents(foreground.astype(np.uint8), connectivity=8)
    hits = set()
    for x, y in positive:
        lx = min(labels.shape[1] - 1, max(0, round((x - crop[0]) * factor)))
        ly = min(labels.shape[0] - 1, max(0, round((y - crop[1]) * factor)))
        hits.add(int(labels[ly, lx]))
    hits.discard(0)
    return np.isin(labels, list(hits)) if hits else foreground


def _touched_sides(mask: np.ndarray, box: Box, least: int = 2) -> set[str]:
    """The sides of ``box`` that ``mask`` runs into (at least ``least`` pixels on its edge:
    a single pixel there is the graph cut's noise, not the object)."""
    x0, y0, x1, y1 = box
    inner = mask[y0:y1, x0:x1]
    if inner.size == 0:
        return set()
    edges = {"left": inner[:, 0], "right": inner[:, -1], "top": inner[0], "bottom": inner[-1]}
    return {side for side, line in edges.items() if int(line.sum()) >= least}


def _grown_box(box: Box, sides: set[str], width: int, height: int, step: float) -> Box:
    """``box`` grown by ``step`` of its size towards each of ``sides``, clipped."""
    x0, y0, x1, y1 = box
    dx, dy = round(step * (x1 - x0)), round(step * (y1 - y0))
    x0 -= dx if "left" in sides else 0
    x1 += dx if "right" in sides else 0
    y0 -= dy if "top" in sides else 0
    y1 += dy if "bottom" in sides else 0
    return clip_box((x0, y0, x1, y1), width, height)
