"""``shadow=ratio``: a cast shadow found as a ratio against the surface continued around it.

A shadow is the surface seen with less light. In log linear light a change of illumination
is an offset, the same in R, G and B up to the shadow's own tint, and it leaves the
surface's texture as it was (Finlayson's illumination-invariant images; Guo et al.'s paired
regions). So next to the object, in a band that follows its size, each pixel's smoothed log
colour is compared with the surface continued from the lit pixels around it: a region that
is darker by the same ratio in every channel, keeps the texture of the lit surface and
touches the object is its shadow. A darker object part (inside the mask), a dark texture
(other texture), a dark neighbour (other colour, or not touching) is not. On a busy texture a
dark patch beside the object proves little: the same search beside copies of the object set
down on the surface around it (decoys) gives the bar its darkness must clear.

The matte is then fitted as Chuang et al.'s shadow matting models it: a depth times a blurred
silhouette whose blur (the penumbra) is measured, not guessed, so it carries no texture of
the surface into the relighting.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from object_displacement.colour import LUMA, luminance, to_linear
from object_displacement.fill import masked_blur
from object_displacement.geometry import bbox_diagonal, dilate, grown_box, resize, resize_mask, ring, shift
from object_displacement.shadows.base import DETAIL_SIGMA, NOISE_FLOOR, ShadowMover, detail_spread
from object_displacement.types import Candidate, Image, Mask, Shadow

log = logging.getLogger(__name__)

EPSILON = 1e-3
"""Linear light added before a logarithm, so black pixels stay finite (about sRGB 1/255...9/255)."""

EDGE = 0.01
"""The object's edge pixels mix object and surface: a band this share of its diagonal is skipped."""

TEXTURES = (0.015, 0.03, 0.06, 0.12)
"""Blurs tried, as shares of the object's diagonal, to average a surface's texture out
before light is compared: at each pixel the first that leaves it ``QUIET``, else the last."""

QUIET = 0.04
"""Texture a blur leaves (a robust spread, over tiles of the band, of what the next blur
still takes out of the log luminance; about 4 %) at which a surface counts as averaged out."""

BUSY_FACTOR = 3.0
"""A shadow is darker than this many times the leftover variation of its surface."""

SURFACE = 0.2
"""The lit surface is continued from pixels within about this share of the diagonal."""

MIN_SHARE = 0.05
"""A surface estimate needs this share of known (lit) weight near the pixel to mean anything."""

SAME_COLOUR = 0.7
"""Share of a shadow's pixels whose colour ratio must agree with its tint."""

LEVELS = (0.3, 0.45, 0.6)
"""Where the silhouette's edge is tried, as shares of the measured attenuation's strong end."""

CODE_NOISE = 0.002
"""Linear light of about one 8-bit step in a dark channel: how far a channel's value may be
off, so how little its log ratio says when the channel is near black."""

DECOY_GAP = 0.1
"""Decoys stand this share of the object's diagonal clear of it."""

DECOY_MARGIN = 1.5
"""A shadow is at least this many times darker (in attenuation summed over its area) than
anything found beside a decoy."""

PENUMBRAS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.5)
"""Penumbra widths tried when fitting the matte, in units of the texture blur."""


class RatioShadowMover(ShadowMover):
    """Find the object's cast shadow classically (no weights), then lift and cast it.

    Args:
        reach: how far from the object a shadow may reach, a share of its bbox diagonal.
        work_side: the band is searched at most this large (longer side, pixels).
        min_attenuation: a pixel with less light lost than this is lit.
        min_depth: the light a shadow takes inside (its fitted depth): a lighter region is
            texture, or shade too faint to matter.
        min_area: a shadow's area, a share of the object's.
        chroma_tolerance: how far (log units) a pixel's colour ratio may stray from the
            shadow's own tint and still be the same surface.
        max_tint: how far the shadow's tint may be from grey (log units): a skylit shadow
            is bluer; a neighbour of another colour is farther.
        texture_range: a shadow's fine texture is within this factor of the lit surface's.
        max_gain, texture_tolerance, contact: see :class:`ShadowMover`.
    """

    def __init__(
        self,
        reach: float = 0.6,
        work_side: int = 384,
        min_attenuation: float = 0.12,
        min_depth: float = 0.3,
        min_area: float = 0.05,
        chroma_tolerance: float = 0.1,
        max_tint: float = 0.3,
        texture_range: float = 2.0,
        max_gain: float = 4.0,
        texture_tolerance: float = 1.6,
        contact: float = 0.0,
    ) -> None:
        super().__init__(max_gain, texture_tolerance, contact)
        for name, value in {
            "reach": reach,
            "min_area": min_area,
            "chroma_tolerance": chroma_tolerance,
        }.items():
            if value <= 0:
                raise ValueError(f"{name} must be above 0, got {value}")
        if not 0 < min_attenuation < 1 or not 0 < min_depth < 1:
            raise ValueError("min_attenuation and min_depth must be between 0 and 1")
        if work_side < 32:
            raise ValueError(f"work_side must be at least 32, got {work_side}")
        if texture_range < 1 or max_tint < 0:
            raise ValueError("texture_range must be 1 or more and max_tint 0 or more")
        self.reach = reach
        self.work_side = work_side
        self.min_attenuation = min_attenuation
        self.min_depth = min_depth
        self.min_area = min_area
        self.chroma_tolerance = chroma_tolerance
        self.max_tint = max_tint
        self.texture_range = texture_range

    def find(self, image: Image, mask: Mask) -> Shadow | None:
        if not mask.any():
            return None
        height, width = mask.shape
        bbox = Candidate(mask).bbox
        diagonal = bbox_diagonal(bbox)
        span = self.reach * diagonal
        x0, y0, x1, y1 = grown_box(bbox, width, height, span)
        factor = min(1.0, self.work_side / max(x1 - x0, y1 - y0))
        # the surface beside the band too, where decoys stand (see ``_decoys``)
        gap = DECOY_GAP * diagonal
        ox0, oy0, ox1, oy1 = grown_box(
            bbox, width, height, span + bbox[2] - bbox[0] + gap, span + bbox[3] - bbox[1] + gap
        )
        size = (max(1, round((ox1 - ox0) * factor)), max(1, round((oy1 - oy0) * factor)))
        light = to_linear(resize(image[oy0:oy1, ox0:ox1], size))
        obj = resize_mask(mask[oy0:oy1, ox0:ox1], *size)
        inner = tuple(round(v * factor) for v in (x0 - ox0, y0 - oy0, x1 - ox0, y1 - oy0))
        found = self._matte(light, obj, diagonal * factor, inner)  # type: ignore[arg-type]
        if found is None:
            return None
        matte, tint = found
        full = np.zeros((height, width), np.float32)
        full[oy0:oy1, ox0:ox1] = np.clip(
            cv2.resize(matte, (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_LINEAR), 0, 1
        )
        return Shadow(full, tint)

    def shade(self, image: Image, mask: Mask) -> np.ndarray:
        """How much light the surface around ``mask`` already lacks (0..1, frame size): every
        region there darker than the surface continued around it by more than its texture
        varies, in the surface's own colour, whatever casts it. Not a finding of the object's
        own shadow: what a shadow cast there must not darken twice."""
        height, width = mask.shape
        shade = np.zeros((height, width), np.float32)
        if not mask.any():
            return shade
        bbox = Candidate(mask).bbox
        diagonal = bbox_diagonal(bbox)
        x0, y0, x1, y1 = grown_box(bbox, width, height, self.reach * diagonal)
        factor = min(1.0, self.work_side / max(x1 - x0, y1 - y0))
        size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
        light = to_linear(resize(image[y0:y1, x0:x1], size))
        obj = resize_mask(mask[y0:y1, x0:x1], *size)
        small = diagonal * factor
        zone = dilate(obj, max(1.0, EDGE * small))
        spread = max(2.0, SURFACE * small)
        log_y, _, blur = _smoothed(light, ~zone, small, spread)
        search = dilate(obj, self.reach * small) & ~zone
        floor = -math.log(1 - self.min_attenuation)
        found = self._dark(log_y, search, None, floor, float(np.median(blur)), spread)
        if found is None:
            return shade
        depth, dark, lit, _ = found
        # shade keeps the surface's colour: a darker thing of another colour is no shade
        log_rgb, _ = masked_blur(np.log(light + EPSILON), ~zone, float(np.median(blur)))
        continued_rgb, _ = masked_blur(log_rgb, lit, spread)
        doubt = CODE_NOISE / (np.exp(log_rgb) + EPSILON)
        dark &= (np.abs(log_rgb - continued_rgb + depth[..., None]) <= self.max_tint + doubt).all(axis=-1)
        attenuation = np.where(dark, 1 - np.exp(-np.maximum(depth, 0.0)), 0.0).astype(np.float32)
        shade[y0:y1, x0:x1] = cv2.resize(attenuation, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        return shade

    def _matte(
        self, outer_light: np.ndarray, outer_obj: Mask, diagonal: float, inner: tuple[int, int, int, int]
    ) -> tuple[np.ndarray, tuple[float, float, float]] | None:
        """The attenuation matte (on the outer crop) and tint of the shadow touching the
        object, if any; ``inner`` is the band's box within the outer crop."""
        edge = max(1.0, EDGE * diagonal)
        spread = max(2.0, SURFACE * diagonal)
        outer_zone = dilate(outer_obj, edge)
        outer_log_y, outer_log_rgb, outer_texture = _smoothed(outer_light, ~outer_zone, diagonal, spread)
        ix0, iy0, ix1, iy1 = inner
        box = np.s_[iy0:iy1, ix0:ix1]
        light, obj, zone = outer_light[box], outer_obj[box], outer_zone[box]
        log_y, log_rgb, blur = outer_log_y[box], outer_log_rgb[box], outer_texture[box]
        search = dilate(obj, self.reach * diagonal) & ~zone
        contact = ring(zone, 2.0) & search
        if search.sum() < 64 or not contact.any():
            return None
        texture = float(np.median(blur[contact]))
        log.debug("surface texture averaged over %.1f px next to the object", texture)
        floor = -math.log(1 - self.min_attenuation)
        found = self._dark(log_y, search, contact, floor, texture, spread)
        if found is None:
            return None
        depth, dark, lit, _ = found
        continued_rgb, _ = masked_blur(log_rgb, lit, spread)
        ratio = log_rgb - continued_rgb  # per channel, log: about -depth in a grey shadow
        deviation = ratio + depth[..., None]
        # a channel near black says little about colour: 8-bit steps there are large in log
        doubt = CODE_NOISE / (np.exp(log_rgb) + EPSILON)
        # shade of one tint or none; a pixel of another colour is no part of a shadow
        dark &= (np.abs(deviation) <= self.max_tint + doubt).all(axis=-1)
        _, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
        touching = np.unique(labels[contact & dark])
        dark = np.isin(labels, touching[touching > 0])
        # the object's edge is no texture of the surface: its neighbourhood is not compared
        away = ~dilate(zone, 2 * DETAIL_SIGMA)
        reference = detail_spread(light, lit & away if (lit & away).any() else lit)
        attenuation = 1 - np.exp(-np.maximum(depth, 0.0))
        # the dark regions touching the object, largest first; the object's own parts (a leg,
        # a wheel) may cut one shadow into several, so those of one shade are judged together
        _, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
        touching = set(np.unique(labels[dark]).tolist()) - {0}
        regions = sorted((labels == label for label in touching), key=lambda r: -int(r.sum()))
        shades = [np.median(deviation[region], axis=0) for region in regions]
        kept = np.zeros_like(dark)
        grouped: set[int] = set()
        for first, shade in enumerate(shades):
            if first in grouped:
                continue
            members = [k for k in range(first, len(regions)) if k not in grouped]
            members = [k for k in members if np.abs(shades[k] - shade).max() <= self.chroma_tolerance]
            grouped.update(members)
            group = np.logical_or.reduce([regions[k] for k in members])
            reason = self._refuse(group, obj, deviation, doubt, light, reference, away)
            if reason:
                log.debug(
                    "dark region of %d px next to the object is no shadow: %s", int(group.sum()), reason
                )
            else:
                kept |= group
        if not kept.any():
            return None
        mass = float(attenuation[kept].sum())
        claimed = np.zeros_like(outer_obj)
        claimed[box] = kept
        rival = self._decoys(outer_log_y, outer_obj, claimed, diagonal, texture, spread, floor)
        if mass < DECOY_MARGIN * rival:
            log.debug(
                "no shadow: copies of the object on this surface get %.0f of its darkness %.0f", rival, mass
            )
            return None
        fitted, depth_inside = self._fit(attenuation, kept, zone, edge, texture, spread)
        if depth_inside < self.min_depth:
            log.debug("no shadow: the dark region takes %.2f of the light < %g", depth_inside, self.min_depth)
            return None
        tint = np.median(1 - np.exp(ratio[kept]), axis=0) / max(float(attenuation[kept].mean()), 1e-3)
        matte = np.zeros(outer_obj.shape, np.float32)
        matte[box] = fitted
        return matte, _normalized(tint)

    def _decoys(
        self,
        log_y: np.ndarray,
        obj: Mask,
        claimed: Mask,
        diagonal: float,
        texture: float,
        spread: float,
        floor: float,
    ) -> float:
        """The most darkness the same search finds beside copies of the object set down on
        the surface around it (the eight places beside it), where no object casts anything.

        A dark region is picked because it is dark, so its darkness alone proves nothing on
        a busy texture; what the texture gives any object-shaped place is the fair bar."""
        edge = max(1.0, EDGE * diagonal)
        barred = dilate(obj, edge) | dilate(claimed, texture)
        x0, y0, x1, y1 = Candidate(obj).bbox
        gap = round(DECOY_GAP * diagonal)
        across, down = x1 - x0 + gap, y1 - y0 + gap
        steps = [(across * i, down * j) for i in (-1, 0, 1) for j in (-1, 0, 1) if i or j]
        rival, placed = 0.0, 0
        for dx, dy in steps:
            decoy = shift(obj, dx, dy)
            zone = dilate(decoy, edge)
            if decoy.sum() < 0.9 * obj.sum() or (zone & barred).any():
                continue  # cut by the frame, or on the object or its shadow
            search = dilate(decoy, self.reach * diagonal) & ~zone & ~barred
            placed += 1
            found = self._dark(log_y, search, ring(zone, 2.0) & search, floor, texture, spread)
            if found is not None:
                depth, dark, _, _ = found
                rival = max(rival, float((1 - np.exp(-np.maximum(depth, 0.0)))[dark].sum()))
        log.debug("%d decoys placed", placed)
        return rival

    def _dark(
        self,
        log_y: np.ndarray,
        search: Mask,
        contact: Mask | None,
        floor: float,
        texture: float,
        spread: float,
    ) -> tuple[np.ndarray, Mask, Mask, np.ndarray] | None:
        """How much darker than the surface continued around it each pixel is (log), the
        dark regions touching the object, the rest of the band (the lit surface), and the
        surface's own ups and downs at each pixel; ``None`` where almost nothing of the
        surface is left.

        Dark means darker than ``floor`` and than ``BUSY_FACTOR`` times those ups and downs,
        a robust spread (a median of deviations) over the whole band: a shadow covering part
        of it barely moves it, a busy texture raises the bar, and pixels next to the object
        get no lower bar than the rest. Without ``contact`` every dark region counts."""
        candidates = np.zeros_like(search)
        for round_number in range(3):
            lit = search & ~dilate(candidates, texture)
            if lit.sum() < 32:
                return None
            continued, share = masked_blur(log_y, lit, spread)
            depth = np.where(share > MIN_SHARE, continued - log_y, 0.0)
            middle = float(np.median(depth[search]))
            busy = 1.4826 * float(np.median(np.abs(depth[search] - middle)))
            # the first round only takes the darkest out of the surface's estimate: its
            # spread still holds them, and would hide a shadow that covers much of the band
            bar = floor if round_number == 0 else max(floor, BUSY_FACTOR * busy)
            dark = search & (depth - middle > bar)
            if contact is None:
                candidates = dark
                continue
            _, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
            touching = np.unique(labels[contact & dark])
            candidates = np.isin(labels, touching[touching > 0])
        lit = search & ~dilate(candidates, texture)
        return depth, candidates, lit, busy

    def _refuse(
        self,
        region: Mask,
        obj: Mask,
        deviation: np.ndarray,
        doubt: np.ndarray,
        light: np.ndarray,
        reference: float,
        away: Mask,
    ) -> str:
        """Why a dark region next to the object is not its shadow ("" when it is)."""
        if region.sum() < self.min_area * obj.sum():
            return f"{int(region.sum())} px, under {self.min_area:g} of the object's area"
        tint = np.median(deviation[region], axis=0)
        if (np.abs(tint) > self.max_tint + np.median(doubt[region], axis=0)).any():
            return f"its colour ratio {np.round(tint, 2).tolist()} is another colour, not shade"
        off = np.abs(deviation[region] - tint) - doubt[region]
        same = float((off.max(axis=1) <= self.chroma_tolerance).mean())
        if same < SAME_COLOUR:
            return f"only {same:.0%} of it has one colour ratio"
        inside = region & away if (region & away).any() else region  # a small object: all is near it
        texture = detail_spread(light, inside) / max(reference, NOISE_FLOOR)
        if not 1 / self.texture_range <= texture <= self.texture_range:
            return f"its texture is {texture:.2f} x the lit surface's"
        return ""

    def _fit(
        self, attenuation: np.ndarray, kept: Mask, zone: Mask, edge: float, texture: float, spread: float
    ) -> tuple[np.ndarray, float]:
        """The matte as a depth times a blurred silhouette, the edge and blur that fit best,
        and that depth (the attenuation inside the shadow, its penumbra's blur undone).

        The measured attenuation is the true one blurred by the texture blur, so each
        penumbra is compared after that blur too. The silhouette runs on under the object's
        edge, so at the new place no lit seam shows between the object and its shadow."""
        strong = float(np.percentile(attenuation[kept], 90))
        area = dilate(kept, 3 * texture) & ~zone
        measured = attenuation[area]
        best, best_error, best_depth = None, math.inf, 0.0
        for level in LEVELS:
            core = kept & (attenuation >= level * strong)
            core |= zone & dilate(core, 2 * edge + 1)
            for width in PENUMBRAS:
                sigma = width * texture
                silhouette = core.astype(np.float32)
                if sigma > 0:
                    silhouette = cv2.GaussianBlur(silhouette, (0, 0), sigma)
                seen = cv2.GaussianBlur(silhouette, (0, 0), texture)[area]
                # the depth that fits this silhouette best, by least squares
                depth = float(np.clip((seen @ measured) / max(float(seen @ seen), 1e-6), 0.0, 1.0))
                error = float(np.square(depth * seen - measured).mean())
                if error < best_error:
                    best, best_error, best_depth = depth * silhouette, error, depth
        assert best is not None
        return best.astype(np.float32), best_depth


def _smoothed(
    light: np.ndarray, surface: Mask, diagonal: float, spread: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log luminance and log colour with the surface's texture averaged out, and the blur
    (pixels) used at each pixel: the least of ``TEXTURES`` that leaves the surface there
    ``QUIET``, else the most. Per pixel, because a plain floor and busy shelves can share one
    band: each keeps the sharpest view of a shadow its texture allows."""
    raw_y = np.log(luminance(light) + EPSILON)
    raw_rgb = np.log(light + EPSILON)
    last = len(TEXTURES) - 1
    chosen = np.full(raw_y.shape, last)
    levels = [masked_blur(raw_y, surface, max(1.0, share * diagonal))[0] for share in TEXTURES]
    for index in range(last):
        # texture left at this blur: what the next blur still takes out (a band, so the
        # shadow itself and the light's slow changes across the surface do not count)
        quiet = _tile_spread(levels[index] - levels[index + 1], surface, spread) <= QUIET
        chosen = np.where(quiet & (chosen == last), index, chosen)
    log_y = np.take_along_axis(np.stack(levels), chosen[None], axis=0)[0]
    log_rgb = np.zeros_like(raw_rgb)
    for index, share_of_diagonal in enumerate(TEXTURES):
        where = chosen == index
        if where.any():
            blurred, _ = masked_blur(raw_rgb, surface, max(1.0, share_of_diagonal * diagonal))
            log_rgb[where] = blurred[where]
    blurs = np.array([max(1.0, share * diagonal) for share in TEXTURES], np.float32)
    return log_y, log_rgb, blurs[chosen]


def _tile_spread(values: np.ndarray, known: Mask, tile: float) -> np.ndarray:
    """A robust spread (1.4826 x the median absolute deviation) of ``known`` values in each
    tile of about ``tile`` pixels, interpolated between tile centres: local, and unmoved by
    anything covering less than half a tile. Tiles with too few known pixels take the
    median of the others."""
    height, width = values.shape
    rows, cols = max(1, round(height / tile)), max(1, round(width / tile))
    ys = np.linspace(0, height, rows + 1).round().astype(int)
    xs = np.linspace(0, width, cols + 1).round().astype(int)
    spreads = np.full((rows, cols), np.nan, np.float32)
    for i in range(rows):
        for j in range(cols):
            block = values[ys[i] : ys[i + 1], xs[j] : xs[j + 1]][known[ys[i] : ys[i + 1], xs[j] : xs[j + 1]]]
            if block.size >= 16:
                spreads[i, j] = 1.4826 * np.median(np.abs(block - np.median(block)))
    if np.isnan(spreads).all():
        return np.zeros_like(values, dtype=np.float32)
    spreads = np.where(np.isnan(spreads), np.nanmedian(spreads), spreads)
    return cv2.resize(spreads, (width, height), interpolation=cv2.INTER_LINEAR)


def _normalized(tint: np.ndarray) -> tuple[float, float, float]:
    """The tint, each channel first held within 0.5..1.5, scaled so its luminance-weighted
    mean is 1 (a channel may then reach about 2: ``cast`` and ``lift`` bound what it takes)."""
    tint = np.clip(np.nan_to_num(tint, nan=1.0), 0.5, 1.5)
    tint = tint / float(tint @ LUMA)
    return float(tint[0]), float(tint[1]), float(tint[2])
