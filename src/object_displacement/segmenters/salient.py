"""A learned salient-object network (IS-Net, BiRefNet) run on a crop around the target,
with GrabCut beside it for what no network calls an object."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Annotated, Any

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import bbox_diagonal, clip_box, grown_box, ring
from object_displacement.segmenters.background import lab_gradient
from object_displacement.segmenters.base import Segmenter
from object_displacement.segmenters.edges import upsample_mask
from object_displacement.segmenters.grabcut import GrabCutSegmenter, scaled_box, shrink, work_factor
from object_displacement.segmenters.salient_net import Alpha, SalientNet
from object_displacement.settings import MAX_ITERATIONS, Range, Seed
from object_displacement.types import Box, Candidate, Image, Mask, Point, Target
from object_displacement.weights import ModelWeights

SURE = 0.95
"""Network coverage above which (or below 1 - which) the seeded GrabCut may not overrule it."""
TRUSTED = 0.85
"""From this separation on the mask is the network's: plain GrabCut is not proposed. The
benchmark's real cutouts separate at 0.87 to 0.96, its textures cut in shapes that the
network half sees at 0.65 to 0.86."""
RING = 0.05
"""The ring :func:`separation` compares a mask with, as a fraction of its bbox diagonal."""
TIE = 0.01
"""How far apart the scores of two candidates from one network map are set."""


class SalientSegmenter(Segmenter, ModelWeights):
    """Segment the object in a box, or under a point, with a salient-object network.

    The network sees a crop around the target: the box with ``context`` around it (at
    least ``min_crop`` px a side, so a small object keeps enough surroundings to stand out
    from), or, for a point, squares around the click from a quarter of the photo up to
    all of it, until the mask under the click is not cut by its crop: the smallest whole
    object under the click. It proposes:

    - ``salient``: the network's mask (coverage >= ``threshold``) inside the box and
      connected to it, or the part under the clicks;
    - ``salient-grabcut``: GrabCut seeded with that coverage (sure where the network is
      sure, probable where it hesitates), which follows colour edges the network blurred and takes the
      user's clicks as hard seeds: clicks on and off the object refine the selection;
    - ``grabcut``: plain GrabCut (``grabcut``), for a texture no network calls an object,
      proposed only where the network does not separate its mask clearly (``TRUSTED``).

    Each candidate's ``score`` says how well it fits: how clearly the network tells its
    mask from the surroundings weighs that mask against GrabCut's (see :meth:`_scored`).

    Args:
        model, weights_dir, side, threads, mean, std, logits: the network
            (:class:`~object_displacement.segmenters.salient_net.SalientNet`).
        context: the crop's margin around a box, as a fraction of the box's size.
        min_crop: the crop's smallest side in pixels (context for small objects).
        threshold: network coverage from which a pixel is the object.
        point_scales: crop sides tried around a point, as fractions of the photo's
            longer side, smallest first.
        min_area: smallest part kept, as a fraction of the largest one.
        grabcut: the plain GrabCut proposed beside the network (``None``: none).
        work_side: the seeded GrabCut's working resolution (its mask edge is refined at
            full size), as GrabCut's own.
        iterations: the seeded GrabCut's rounds.
        seed: seed of OpenCV's RNG for the seeded GrabCut.
    """

    def __init__(
        self,
        model: str = "isnet-imgly",
        weights_dir: str = "data/weights",
        side: int = 512,
        threads: int = 0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        logits: bool = False,
        context: float = 0.25,
        min_crop: int = 64,
        threshold: float = 0.5,
        point_scales: Sequence[float] = (0.25, 0.5, 1.0),
        min_area: float = 0.05,
        grabcut: GrabCutSegmenter | None = None,
        work_side: int = 192,
        iterations: Annotated[int, Range(1, MAX_ITERATIONS)] = 3,
        seed: Seed = 0,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"segmenter.threshold must lie between 0 and 1, got {threshold}")
        if not point_scales or any(not 0.0 < s <= 1.0 for s in point_scales):
            raise ValueError(f"segmenter.point_scales must be fractions in (0, 1], got {list(point_scales)}")
        self.net = SalientNet(
            model,
            weights_dir,
            side,
            threads,
            tuple(mean) if mean else None,  # type: ignore[arg-type]
            tuple(std) if std else None,  # type: ignore[arg-type]
            logits,
        )
        self.context = context
        self.min_crop = min_crop
        self.threshold = threshold
        self.point_scales = tuple(point_scales)
        self.min_area = min_area
        self.grabcut = grabcut
        self.work_side = work_side
        self.iterations = iterations
        self.seed = seed

    def check_weights(self) -> None:
        self.net.check_weights()

    def fetch_weights(self) -> list[str]:
        return self.net.fetch_weights()

    def load(self) -> Any:
        return self.net.load()

    def propose(self, image: Image, target: Target) -> list[Candidate]:
        height, width = image.shape[:2]
        positive, negative = target.positive, target.negative
        if target.box is not None:
            crop = self.box_crop(target.box, width, height)
            region = target.box
        elif positive:
            crop = self.point_crop(image, positive, negative)
            region = crop
        else:
            raise DisplacementError(
                f"a text-only target ('{target.prompt}') needs a segmenter that proposes "
                "every object: use segmenter=sam selector=clip, or give target.box or target.point"
            )
        alpha = self._alpha(image, crop)
        learned = split_by_clicks(
            image, self._kept(alpha >= self.threshold, region, positive), positive, negative, self.work_side
        )
        candidates = []
        if learned.any():
            candidates.append(Candidate(learned, source="salient"))
        seeded = self._seeded(image, crop, alpha, region, positive, negative)
        if seeded.any():
            candidates.append(Candidate(seeded, source="salient-grabcut"))
        clear = separation(alpha, learned)
        # plain GrabCut competes only where the network half sees the object (a texture cut
        # in a shape): where it sees it clearly, GrabCut's colour regions can only lose the
        # selection wrongly (their box fit is better where they leak to the box's sides),
        # and clicks that refine the network's mask refine it (GrabCut from clicks also
        # grows its box round after round: 0.5 to 1 s a click)
        refining = len(positive) > 1 or bool(negative)
        trusted = learned.any() and (clear >= TRUSTED or (refining and target.box is None))
        if self.grabcut is not None and not trusted:
            with suppress(DisplacementError):  # GrabCut cannot separate it; the network still may
                candidates += self.grabcut.propose(image, target)
        return self._scored(candidates, clear)

    # -- crops ---------------------------------------------------------------------------

    def box_crop(self, box: Box, width: int, height: int) -> Box:
        """The box with ``context`` around it, at least ``min_crop`` a side, in the photo."""
        x0, y0, x1, y1 = clip_box(box, width, height)
        mx = max(self.context * (x1 - x0), (self.min_crop - (x1 - x0)) / 2, 0)
        my = max(self.context * (y1 - y0), (self.min_crop - (y1 - y0)) / 2, 0)
        return grown_box((x0, y0, x1, y1), width, height, mx, my)

    def point_crop(self, image: Image, positive: Sequence[Point], negative: Sequence[Point] = ()) -> Box:
        """The crop whose mask under the first click is whole: squares around it, smallest
        first, until the click's part is not cut by the crop's inner sides and holds no
        click off the object; then the box around that part (a closer look) when it is much
        smaller. The crops tried depend on the first click alone, so refining clicks reuse
        their maps (a click off the object may choose another of them)."""
        height, width = image.shape[:2]
        point, longer = positive[0], max(width, height)
        whole: list[tuple[Box, Mask]] = []
        for scale in self.point_scales:
            crop = _window(point, max(self.min_crop, round(scale * longer)), width, height)
            part = self._kept(self._alpha(image, crop) >= self.threshold, crop, (point,))
            if part.any() and not _cut(part, crop, width, height):
                whole.append((crop, part))
                if not any(part[y, x] for x, y in negative):
                    break
        # the smallest whole part that holds no click off the object; else the smallest
        # whole part (the clicks off it will split it)
        clean = [w for w in whole if not any(w[1][y, x] for x, y in negative)]
        if clean or whole:
            crop, part = (clean or whole)[0]
            chosen = self.box_crop(Candidate(part).bbox, width, height)
            if _side(chosen) > 0.7 * _side(crop):  # no closer look to be had
                chosen = crop
        else:  # the click is on nothing the network calls an object at any scale
            chosen = _window(point, max(self.min_crop, longer // 4), width, height)
        xs, ys = [p[0] for p in positive], [p[1] for p in positive]
        x0, y0, x1, y1 = chosen  # every click on the object lies inside, with a margin
        margin = self.context * _side(chosen)
        if min(xs) < x0 or min(ys) < y0 or max(xs) >= x1 or max(ys) >= y1:
            grown = (
                min(x0, min(xs) - margin),
                min(y0, min(ys) - margin),
                max(x1, max(xs) + margin),
                max(y1, max(ys) + margin),
            )
            chosen = clip_box(tuple(round(v) for v in grown), width, height)  # type: ignore[arg-type]
        return chosen

    def _alpha(self, image: Image, crop: Box) -> Alpha:
        """The network's coverage over the photo (zero outside ``crop``)."""
        x0, y0, x1, y1 = crop
        alpha = np.zeros(image.shape[:2], np.float32)
        alpha[y0:y1, x0:x1] = self.net.predict(np.ascontiguousarray(image[y0:y1, x0:x1]))
        return alpha

    # -- masks ---------------------------------------------------------------------------

    def _kept(self, mask: Mask, region: Box, positive: Sequence[Point]) -> Mask:
        """The parts of ``mask`` inside ``region``: those under a click if any is given,
        else every part at least ``min_area`` of the largest."""
        x0, y0, x1, y1 = region
        inside = np.zeros_like(mask)
        inside[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
        count, labels, stats, _ = cv2.connectedComponentsWithStats(inside.view(np.uint8), connectivity=8)
        if count <= 1:
            return inside
        if positive:
            hit = {_label_near(labels, p) for p in positive} - {0}
            return np.isin(labels, sorted(hit)) if hit else np.zeros_like(mask)
        areas = stats[1:, cv2.CC_STAT_AREA]
        return np.isin(labels, 1 + np.flatnonzero(areas >= self.min_area * areas.max()))

    def _seeded(
        self,
        image: Image,
        crop: Box,
        alpha: Alpha,
        region: Box,
        positive: Sequence[Point],
        negative: Sequence[Point],
    ) -> Mask:
        """GrabCut on ``crop`` started from the network's coverage: sure where the network is
        sure, probable object or background where it hesitates, background outside ``region``.
        Clicks that correct a selection are sure seeds, and then the network's coverage is
        only probable: the clicks and the colours may overrule it."""
        x0, y0, x1, y1 = crop
        patch = np.ascontiguousarray(image[y0:y1, x0:x1])
        factor = work_factor(patch, self.work_side)
        small = shrink(patch, factor)
        local = alpha[y0:y1, x0:x1]
        if factor < 1.0:
            local = cv2.resize(local, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
        rx0, ry0, rx1, ry1 = scaled_box(
            (region[0] - x0, region[1] - y0, region[2] - x0, region[3] - y0), factor
        )
        state = np.full(small.shape[:2], cv2.GC_BGD, np.uint8)
        inner = state[ry0:ry1, rx0:rx1]
        cover = local[ry0:ry1, rx0:rx1]
        inner[:] = np.where(cover >= self.threshold, cv2.GC_PR_FGD, cv2.GC_PR_BGD)
        if len(positive) <= 1 and not negative:  # no clicks to correct it: where the network
            inner[cover >= SURE] = cv2.GC_FGD  # is sure, colour may not overrule it
            inner[cover <= 1.0 - SURE] = cv2.GC_BGD
        for points, label in ((positive, cv2.GC_FGD), (negative, cv2.GC_BGD)):
            for x, y in points:
                cv2.circle(state, (round((x - x0) * factor), round((y - y0) * factor)), 2, label, -1)
        if not (state == cv2.GC_PR_FGD).any() and not (state == cv2.GC_FGD).any():
            return np.zeros(image.shape[:2], bool)
        if (state == cv2.GC_BGD).all() or not np.isin(state, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
            return np.zeros(image.shape[:2], bool)
        cv2.setRNGSeed(self.seed)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(small, state, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # one colour model left empty: nothing to separate
            return np.zeros(image.shape[:2], bool)
        found = (state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)
        if factor < 1.0:
            found = upsample_mask(found, patch)
        full = np.zeros(image.shape[:2], bool)
        full[y0:y1, x0:x1] = found
        return self._kept(full, region, positive)

    def _scored(self, candidates: list[Candidate], clear: float) -> list[Candidate]:
        """Scores that rank the candidates by how well they fit: the network's mask as far
        as the network tells it from its surroundings (``clear``, :func:`separation`),
        plain GrabCut's parts as far as it does not. The seeded GrabCut comes just after
        the network's mask: its colours can take a part of like colour the network was
        unsure of (a cup's red body over its red saucer), so it wins only where the clicks
        say it fits better (the point selector counts them)."""
        for c in candidates:
            if c.source == "salient":
                c.score = clear
            elif c.source == "salient-grabcut":
                c.score = clear - TIE
            else:
                c.score = (1.0 - clear) * c.score
        return sorted(candidates, key=lambda c: c.score, reverse=True)


def separation(alpha: Alpha, mask: Mask) -> float:
    """How clearly the network tells ``mask`` from what is around it: its mean coverage
    inside less that in a ring just outside (``RING`` of the mask's bbox diagonal, at least
    3 px). Near 1 for an object it sees, lower for a texture it half sees (docs/benchmarks.md
    has what it measured on the real cutouts); 0 for no mask."""
    if not mask.any():
        return 0.0
    around = ring(mask, max(3.0, RING * bbox_diagonal(Candidate(mask).bbox)))
    return float(alpha[mask].mean() - (alpha[around].mean() if around.any() else 0.0))


def split_by_clicks(
    image: Image, mask: Mask, positive: Sequence[Point], negative: Sequence[Point], work_side: int = 256
) -> Mask:
    """``mask`` without the part of it nearer to a click off the object than to one on it,
    the two flooded from the clicks over the photo's edges (a watershed on its colour
    gradient, at most ``work_side`` px a side, the edge then refined at full size): a click
    on the saucer under a cup takes the saucer away at the edge between them, where a
    network or a colour model sees one object."""
    inside = [(x, y) for x, y in negative if mask[y, x]]
    if not inside or not positive:
        return mask
    from skimage.segmentation import watershed

    x0, y0, x1, y1 = Candidate(mask).bbox
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    factor = work_factor(patch, work_side)
    small = shrink(patch, factor)
    local = cv2.resize(mask[y0:y1, x0:x1].view(np.uint8), (small.shape[1], small.shape[0])) > 0
    gradient = lab_gradient(small)
    markers = np.zeros(local.shape, np.int32)
    for points, label in ((positive, 1), (inside, 2)):
        for x, y in points:
            if x0 <= x < x1 and y0 <= y < y1:
                cv2.circle(markers, (round((x - x0) * factor), round((y - y0) * factor)), 1, label, -1)
    markers[~local] = 0
    kept = watershed(gradient, markers, mask=local) == 1
    if factor < 1.0:
        kept = upsample_mask(kept, patch)
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = kept & mask[y0:y1, x0:x1]
    return out


def _label_near(labels: np.ndarray, point: Point, radius: int = 3) -> int:
    """The label under ``point``, or the most common one within ``radius`` (a click on an
    edge of a thin part)."""
    x, y = point
    rows, cols = labels.shape
    if 0 <= y < rows and 0 <= x < cols and labels[y, x]:
        return int(labels[y, x])
    near = labels[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1]
    near = near[near > 0]
    return int(np.bincount(near).argmax()) if near.size else 0


def _cut(mask: Mask, crop: Box, width: int, height: int, least: int = 3) -> bool:
    """Whether ``mask`` runs into a side of ``crop`` that is not the photo's edge."""
    x0, y0, x1, y1 = crop
    sides = [
        (x0 > 0, mask[y0:y1, x0]),
        (x1 < width, mask[y0:y1, x1 - 1]),
        (y0 > 0, mask[y0, x0:x1]),
        (y1 < height, mask[y1 - 1, x0:x1]),
    ]
    return any(inner and int(line.sum()) >= least for inner, line in sides)


def _window(point: Point, side: int, width: int, height: int) -> Box:
    """A square of ``side`` around ``point``, shifted (not cut) to lie in the photo."""
    w, h = min(side, width), min(side, height)
    x0 = int(np.clip(point[0] - w // 2, 0, width - w))
    y0 = int(np.clip(point[1] - h // 2, 0, height - h))
    return (x0, y0, x0 + w, y0 + h)


def _side(box: Box) -> int:
    return max(box[2] - box[0], box[3] - box[1])
