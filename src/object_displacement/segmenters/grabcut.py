"""GrabCut (OpenCV): a classical box-prompted segmenter that needs no weights."""

from __future__ import annotations

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.fill import smooth_fill
from object_displacement.geometry import clip_box
from object_displacement.segmenters.base import Segmenter
from object_displacement.segmenters.edges import upsample_mask
from object_displacement.types import Box, Candidate, Image, Target


class GrabCutSegmenter(Segmenter):
    """Segment the object inside a box (a point becomes a box around it).

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
    """

    def __init__(
        self,
        iterations: int = 5,
        context: float = 0.5,
        point_box: float = 0.3,
        min_area: float = 0.05,
        seed: int = 0,
        grow: bool = True,
        grow_contrast: float = 4.0,
        grow_floor: float = 10.0,
        work_side: int = 256,
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

    def propose(self, image: Image, target: Target) -> list[Candidate]:
        height, width = image.shape[:2]
        if target.box is not None:
            box = target.box
        elif target.point is not None:
            box = self._box_around(target.point, width, height)
        else:
            raise DisplacementError(
                f"a text-only target ('{target.prompt}') needs a segmenter that proposes "
                "every object: use segmenter=sam selector=clip, or give target.box or target.point"
            )
        crop = self._crop(box, width, height)
        patch = np.ascontiguousarray(image[crop[1] : crop[3], crop[0] : crop[2]])
        # 1. shrink the crop to the working resolution; boxes and points with it
        factor = self._factor(patch.shape[1], patch.shape[0])
        small = shrink(patch, factor)
        inner = scaled_box((box[0] - crop[0], box[1] - crop[1], box[2] - crop[0], box[3] - crop[1]), factor)
        point = None
        if target.point is not None:
            point = (round((target.point[0] - crop[0]) * factor), round((target.point[1] - crop[1]) * factor))
        # 2. segment there
        foreground = self._grabcut(small, inner, point)
        if self.grow:
            foreground = self._grown(small, foreground, inner)
        # 3. back to full resolution, the edge following the photo's edges
        if factor < 1.0:
            foreground = upsample_mask(foreground, patch)
        full = np.zeros((height, width), dtype=bool)
        full[crop[1] : crop[3], crop[0] : crop[2]] = foreground
        return self._components(full)

    def _factor(self, width: int, height: int) -> float:
        if self.work_side <= 0:
            return 1.0
        return min(1.0, self.work_side / max(width, height))

    def _box_around(self, point: tuple[int, int], width: int, height: int) -> Box:
        half = max(4, round(self.point_box * min(width, height) / 2))
        x, y = point
        return clip_box((x - half, y - half, x + half + 1, y + half + 1), width, height)

    def _crop(self, box: Box, width: int, height: int) -> Box:
        x0, y0, x1, y1 = box
        mx = max(8, round(self.context * (x1 - x0)))
        my = max(8, round(self.context * (y1 - y0)))
        return clip_box((x0 - mx, y0 - my, x1 + mx, y1 + my), width, height)

    def _grabcut(self, patch: Image, box: Box, point: tuple[int, int] | None) -> np.ndarray:
        """GrabCut inside ``box`` (patch coordinates); a ``point`` is sure foreground."""
        state = np.full(patch.shape[:2], cv2.GC_BGD, dtype=np.uint8)
        x0, y0, x1, y1 = box
        state[y0:y1, x0:x1] = cv2.GC_PR_FGD
        if point is not None:
            cv2.circle(state, point, 3, cv2.GC_FGD, thickness=-1)
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        try:
            cv2.grabCut(patch, state, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error as err:  # raised when the box leaves no background or foreground
            raise DisplacementError(f"grabcut could not separate the object in box {box}") from err
        return (state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)

    def _grown(self, patch: Image, foreground: np.ndarray, box: Box) -> np.ndarray:
        """``foreground`` plus box pixels unlike the background predicted from the border."""
        x0, y0, x1, y1 = box
        inside = np.zeros(foreground.shape, dtype=np.uint8)
        inside[y0:y1, x0:x1] = 1
        lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
        texture = np.linalg.norm(lab - cv2.blur(lab, (5, 5)), axis=2)
        texture = cv2.blur(texture, (9, 9))
        plate = cv2.cvtColor(smooth_fill(patch, inside.astype(bool)), cv2.COLOR_RGB2LAB).astype(np.float32)
        # texture is scaled by 4 to keep precision in the 8-bit image cv2.inpaint needs
        texture_u8 = np.clip(texture * 4, 0, 255).astype(np.uint8)
        expected_texture = smooth_fill(texture_u8, inside.astype(bool)).astype(np.float32) / 4
        threshold = np.maximum(self.grow_floor, self.grow_contrast * expected_texture)
        unlike = (np.linalg.norm(lab - plate, axis=2) > threshold) & inside.astype(bool)
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


def shrink(image: Image, factor: float) -> Image:
    """``image`` resized by ``factor`` (area averaging); itself when ``factor`` is 1."""
    if factor >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def scaled_box(box: Box, factor: float) -> Box:
    """``box`` in the coordinates of an image resized by ``factor``, at least 1 px wide."""
    x0, y0, x1, y1 = (round(v * factor) for v in box)
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))
