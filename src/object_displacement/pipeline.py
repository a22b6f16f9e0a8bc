"""The stages of a displacement, run in order and timed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from object_displacement.cache import StageCache
from object_displacement.compositors.base import Compositor
from object_displacement.compositors.paste import PasteCompositor
from object_displacement.errors import DisplacementError
from object_displacement.geometry import boxes_mask
from object_displacement.ghost import GhostCheck
from object_displacement.inpainters.base import Inpainter
from object_displacement.mask_policies.base import MaskPolicy
from object_displacement.matting.base import Matting
from object_displacement.runtime import make_room
from object_displacement.segmenters.base import Segmenter
from object_displacement.selectors.auto import AutoSelector
from object_displacement.selectors.base import Selector
from object_displacement.shadows.base import ShadowMover
from object_displacement.types import Box, Candidate, EditDefaults, Image, Move, Result, Target

T = TypeVar("T")

MIN_SCALED_SIDE = 4
"""A scaled object keeps at least this many pixels across: smaller is no longer an object."""
MAX_SCALED_OF_PHOTO = 2
"""A scaled object is at most this many times the photo in each side."""
SCALED_BYTES_PER_PIXEL = 24
"""What placing a scaled object holds per pixel of it (colour, alpha and the warp's maps)."""


class Pipeline:
    """segment -> select -> [shadow] -> [matte] -> plan -> composite -> inpaint -> [cast];
    with no move it stops after select. ``matting`` (off by default: the hard mask) gives the
    object a soft edge; ``shadow`` finds the object's cast shadow, lifts it at the old place
    (relit, or filled with the hole) and casts it again at the new one after the fill."""

    def __init__(
        self,
        segmenter: Segmenter,
        selector: Selector,
        mask_policy: MaskPolicy,
        inpainter: Inpainter,
        compositor: Compositor | None = None,
        cache: StageCache | None = None,
        ghost_check: GhostCheck | None = None,
        matting: Matting | None = None,
        defaults: EditDefaults | None = None,
        shadow: ShadowMover | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.selector = selector
        self.mask_policy = mask_policy
        self.compositor = compositor or PasteCompositor()
        self.inpainter = inpainter
        self.matting = matting
        self.shadow = shadow
        self.cache = cache or StageCache(None)
        self.ghost_check = ghost_check or GhostCheck(max_attempts=1)
        self.defaults = defaults or EditDefaults()
        """What an edit takes where its request is silent (the run's ``anchor``, ``scale``,
        ``max_megapixels``...): the API and the app build their requests with it."""
        if segmenter.reads_text and isinstance(selector, AutoSelector):
            selector.follow_segmenter()

    def components(self) -> list[object]:
        """The stages' components, including those nested in a selector that dispatches."""
        nested = list(getattr(self.selector, "by_kind", {}).values())
        return [
            self.segmenter,
            self.selector,
            *[n for n in nested if n is not None],
            *([self.matting] if self.matting is not None else []),
            *([self.shadow] if self.shadow is not None else []),
            self.mask_policy,
            self.compositor,
            self.inpainter,
            *self.ghost_check.fallbacks,
        ]

    def __call__(
        self, image: Image, target: Target, move: Move | None = None, keep_out: Sequence[Box] = ()
    ) -> Result:
        """Run the stages; ``keep_out`` boxes (checked, in the image) are never copied into
        a fill."""
        timings: dict[str, float] = {}

        def timed(stage: str, fn: Callable[[], T]) -> T:
            start = time.perf_counter()
            value = fn()
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
            return value

        cache = self.cache
        candidates = timed(
            "segment", lambda: cache.candidates(image, target, lambda: self.segmenter.propose(image, target))
        )
        if not candidates:
            raise DisplacementError(f"no candidate object found for the {target.kind} target")
        ranked = timed(
            "select",
            lambda: cache.ranking(
                image, target, candidates, lambda: self.selector.select(image, candidates, target)
            ),
        )
        result = Result(image, target, candidates=candidates, ranking=ranked, timings=timings)
        if move is None or move.is_identity:
            return result
        check_scaled_size(result.selected, move, image.shape)
        mover = self.shadow
        shadow = None if mover is None else timed("shadow", lambda: mover.find(image, result.mask))
        matting = self.matting
        matte = None if matting is None else timed("matte", lambda: matting(image, result.mask))
        plan = result.plan = timed("plan", lambda: self.mask_policy.plan(image, result.mask, move, matte))
        if mover is not None:  # a backend that synthesizes gets the whole old shadow to fill
            relight = not self.inpainter.synthesizes
            timed("shadow", lambda: mover.lift(plan, shadow, relight))
        if keep_out:
            plan.keep_out = boxes_mask(keep_out, image.shape[1], image.shape[0])
        plan.composite, plan.inpaint_mask = timed("composite", lambda: self.compositor(plan))
        make_room(self.inpainter, self.components())  # a GPU too small for every model at once
        output, result.attempts = timed(
            "inpaint", lambda: self.ghost_check(self.inpainter, plan, target.prompt)
        )
        result.output = output if mover is None else timed("shadow", lambda: mover.cast(output, plan))
        return result


def check_scaled_size(candidate: Candidate, move: Move, shape: tuple[int, ...] | None = None) -> None:
    """Refuse a ``scale`` that shrinks the object to a speck (or a few pixels), or, for a
    photo of ``shape``, grows it past :data:`MAX_SCALED_OF_PHOTO` times the photo in a side:
    what the move must compute grows with the scaled object, not with the photo (scale=100
    asked for one 11 GB array on a 1600 px photo), and beyond that it is mostly off frame."""
    x0, y0, x1, y1 = candidate.bbox
    width, height = (x1 - x0) * move.scale, (y1 - y0) * move.scale
    if min(width, height) < MIN_SCALED_SIDE:
        raise DisplacementError(
            f"scale={move.scale:g} shrinks the {x1 - x0}x{y1 - y0} px object to {width:.1f}x{height:.1f} px: "
            f"it must stay at least {MIN_SCALED_SIDE} px across"
        )
    if shape is None:
        return
    rows, cols = shape[:2]
    if width > MAX_SCALED_OF_PHOTO * cols or height > MAX_SCALED_OF_PHOTO * rows:
        gigabytes = width * height * SCALED_BYTES_PER_PIXEL / 2**30
        raise DisplacementError(
            f"scale={move.scale:g} grows the {x1 - x0}x{y1 - y0} px object to {width:.0f}x{height:.0f} px "
            f"(about {gigabytes:.1f} GB of work): it may be at most {MAX_SCALED_OF_PHOTO} times the "
            f"{cols}x{rows} photo in each side"
        )
