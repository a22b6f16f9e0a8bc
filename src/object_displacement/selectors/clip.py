"""Pick the candidate that best matches the text prompt, scored by open_clip CLIP."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.runtime import UsesDevice
from object_displacement.selectors.base import Selector
from object_displacement.selectors.clip_embedder import ClipEmbedder, Crop
from object_displacement.types import Candidate, Image, Target
from object_displacement.weights import ModelWeights

log = logging.getLogger(__name__)


class ClipSelector(Selector, UsesDevice, ModelWeights):
    """Score every candidate against ``target.prompt`` in one batched forward pass.

    The method's authors saw two failures: a mask cut out of its surroundings convinced
    CLIP it was the class, and a large region that merely contains the object scored
    high. ``crop`` chooses what CLIP sees: ``box`` (the bounding box), ``masked`` (the box
    with everything outside the mask neutral grey), ``context`` (the box grown by
    ``context`` on each side) or ``combined`` (the mean of the ``masked`` and ``context``
    embeddings: the object's own pixels, checked against its surroundings). Against the
    second failure, a candidate never outranks a candidate inside it that scores within
    ``containment_margin`` of it, unless the rest of it, without the inner one, looks like
    the prompt as well: then it is the whole object and the inner one only its part.

    The crops and embeddings are :attr:`embedder`'s (a
    :class:`~object_displacement.selectors.clip_embedder.ClipEmbedder` built from ``model``,
    ``pretrained``, ``templates``, ``crop``, ``context`` and ``batch_size``); the quality
    scores measure the edit with the same embedder.

    Candidates are ranked by cosine similarity, but whether the winner matches at all is
    decided on a relative score: its similarity to the prompt minus its best similarity to
    ``generic`` words that describe any crop, in the same templates. Each model family
    has its own cosine range (SigLIP's sit far below CLIP's), and the offset cancels.

    Args:
        model: open_clip architecture (``ViT-B-32``), or ``local-dir:/path`` for a folder
            holding ``open_clip_config.json`` and the weights.
        pretrained: open_clip tag (``laion2b_s34b_b79k``, ``openai``) or a checkpoint
            path; ignored with ``local-dir:``.
        templates: prompt templates; their text embeddings are averaged.
        crop: ``box``, ``masked``, ``context`` or ``combined``.
        context: margin of the ``context`` crop, as a fraction of the box size.
        generic: words any crop matches a little (``a photo of a thing.``): the baseline.
        min_margin: the winner's cosine to the prompt must beat its best cosine to a
            ``generic`` word by this much; 0: the prompt describes it better than they do.
        min_score: a raw cosine threshold instead of ``min_margin`` (model-specific:
            about 0.2 suits CLIP ViT-B-32); null uses ``min_margin``.
        containment_margin: see above; 0 turns the rule off.
        contained: share of a candidate's area inside another for it to count as inside.
        part_margin: the outer candidate is the whole object, and keeps its rank, when its
            rest scores within this of the inner one (both as ``masked`` crops).
        containment_top_k: the rule compares the best this many candidates only: they
            decide the winner, and the rests scored stay few.
        batch_size: crops per forward pass; the default scores a whole SAM proposal set
            at once.
    """

    reads_text = True

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str | None = "laion2b_s34b_b79k",
        templates: Sequence[str] = ("a photo of a {}.", "a photo of the {}.", "a cropped photo of a {}."),
        crop: Crop = "combined",
        context: float = 0.3,
        generic: Sequence[str] = ("thing", "background", "surface"),
        min_margin: float = 0.0,
        min_score: float | None = None,
        containment_margin: float = 0.02,
        contained: float = 0.9,
        part_margin: float = 0.02,
        containment_top_k: int = 8,
        batch_size: int = 256,
    ) -> None:
        if not generic and min_score is None:
            raise ValueError("min_margin needs at least one generic word; or set min_score")
        self.embedder = ClipEmbedder(model, pretrained, templates, crop, context, batch_size)
        """The CLIP model that embeds crops and prompts; the quality scores use it too."""
        self.generic = list(generic)
        self.min_margin = min_margin
        self.min_score = min_score
        self.containment_margin = containment_margin
        self.contained = contained
        self.part_margin = part_margin
        self.containment_top_k = containment_top_k

    def setup(self, fabric: Any) -> None:
        super().setup(fabric)
        self.embedder.setup(fabric)

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if target.prompt is None:
            raise DisplacementError("selector=clip needs target.prompt=TEXT (with or without a box or point)")
        if not candidates:
            raise DisplacementError(f"no object matching '{target.prompt}': nothing was segmented")
        prompt = target.prompt
        features = self.embedder.features(image, candidates)
        raw = self.embedder.cosines(features, prompt)
        scores = contained_first(
            candidates,
            raw,
            self.containment_margin,
            self.contained,
            self.containment_top_k,
            is_whole=lambda pairs: self._rest_matches(image, candidates, pairs, prompt),
        )
        order = np.argsort(-scores, kind="stable")
        self._check_match(prompt, features[int(order[0])][None], float(raw[order[0]]))
        return [replace(candidates[i], score=float(scores[i])) for i in order]

    def _check_match(self, prompt: str, features: Any, cosine: float) -> None:
        """Stop when the winner does not match the prompt (see ``min_margin``)."""
        if self.min_score is not None:
            if cosine < self.min_score:
                raise DisplacementError(
                    f"no object matching '{prompt}' (best: {cosine:.3f} < min_score {self.min_score})"
                )
            return
        generic = np.stack([self.embedder.cosines(features, word) for word in self.generic])[:, 0]
        margin = cosine - float(generic.max())
        log.info("clip: best cosine %.3f, %+.3f over generic words", cosine, margin)
        if margin < self.min_margin:
            closest = self.generic[int(generic.argmax())]
            raise DisplacementError(
                f"no object matching '{prompt}' (best: {margin:+.3f} < min_margin {self.min_margin}: "
                f"cosine {cosine:.3f} to '{prompt}', {generic.max():.3f} to '{closest}')"
            )

    def _rest_matches(
        self, image: Image, candidates: Sequence[Candidate], pairs: list[tuple[int, int]], prompt: str
    ) -> np.ndarray:
        """For each (outer, inner) pair: does the outer without the inner look like the prompt
        about as well as the inner does? Then the outer is the whole object (a cup around its
        handle), not a container (a table around a cup). One batch for all pairs."""
        inner = sorted({b for _, b in pairs})
        # one full-size rest mask at a time: only its crop is kept
        embedder = self.embedder
        rests = [
            embedder.cropped(image, Candidate(mask=candidates[a].mask & ~candidates[b].mask), "masked")
            for a, b in pairs
        ]
        parts = [embedder.cropped(image, candidates[b], "masked") for b in inner]
        cosines = embedder.cosines(embedder.encode(rests + parts), prompt)
        part = dict(zip(inner, cosines[len(rests) :], strict=True))
        rest = cosines[: len(rests)]
        return np.array([r >= part[b] - self.part_margin for r, (_, b) in zip(rest, pairs, strict=True)])

    def check_weights(self) -> None:
        self.embedder.check_weights()

    def fetch_weights(self) -> list[str]:
        return self.embedder.fetch_weights()

    def load(self) -> tuple[Any, Any, Any]:
        return self.embedder.load()

    def model(self) -> tuple[Any, Any, Any]:
        """The embedder's (model, preprocess, tokenizer), loaded once per process."""
        return self.embedder.model()


def contained_first(
    candidates: Sequence[Candidate],
    scores: np.ndarray,
    margin: float,
    contained: float = 0.9,
    top_k: int | None = None,
    is_whole: Callable[[list[tuple[int, int]]], np.ndarray] | None = None,
) -> np.ndarray:
    """Scores adjusted so no candidate outranks one inside it scoring within ``margin``.

    Candidate ``b`` is inside ``a`` when at least ``contained`` of ``b``'s area lies in
    ``a`` and ``b`` is smaller. Such an ``a`` is lowered just below ``b``: a region that
    merely contains the object (a table around a cup) should not win over the object
    itself. But a whole object contains its parts too, and SAM proposes whole, part and
    sub-part: ``is_whole`` answers, for all the (a, b) index pairs at once, whether ``a``
    is the whole object, and those keep their score. Only the ``top_k`` best-scoring
    candidates are compared (all with None): they decide the winner.
    """
    scores = np.asarray(scores, dtype=np.float64)
    adjusted = scores.copy()
    if margin <= 0 or len(candidates) < 2:
        return adjusted
    top = np.argsort(-scores, kind="stable")[:top_k]
    masks = np.stack([_coarse(candidates[i].mask).ravel() for i in top])
    areas = masks.sum(axis=1)
    overlap = masks @ masks.T  # overlap[a, b]: pixels of b inside a
    inside = (overlap >= contained * areas[None, :]) & (areas[None, :] < areas[:, None])
    pairs = [
        (int(top[a]), int(top[b]))
        for a, b in zip(*np.nonzero(inside), strict=True)
        if scores[top[a]] - margin <= scores[top[b]] <= scores[top[a]]  # b would win over a
    ]
    if pairs and is_whole is not None:
        whole = np.asarray(is_whole(pairs), dtype=bool)
        pairs = [pair for pair, keep in zip(pairs, whole, strict=True) if not keep]
    for a, b in pairs:
        adjusted[a] = min(adjusted[a], scores[b] - 1e-6)
    return adjusted


CONTAINMENT_SIDE = 128
"""Containment is judged on masks this small: a hundred SAM masks stay a few MB."""


def _coarse(mask: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    factor = min(1.0, CONTAINMENT_SIDE / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
