"""Pick the candidate that best matches the text prompt, scored by open_clip CLIP."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import grown_box
from object_displacement.runtime import UsesDevice, quiet_libraries
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target
from object_displacement.weights import hub_available, is_local, load_once, missing, unreadable

Crop = Literal["box", "masked", "context", "combined"]
NEUTRAL = (124, 116, 104)
"""CLIP's mean colour: what 'no information' looks like to the model."""

log = logging.getLogger(__name__)


class ClipSelector(Selector, UsesDevice):
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
        if crop not in ("box", "masked", "context", "combined"):
            raise ValueError(f"crop must be box, masked, context or combined, got {crop!r}")
        if not generic and min_score is None:
            raise ValueError("min_margin needs at least one generic word; or set min_score")
        self.model_name = model
        self.pretrained = pretrained
        self.templates = list(templates)
        self.crop = crop
        self.context = context
        self.generic = list(generic)
        self.min_margin = min_margin
        self.min_score = min_score
        self.containment_margin = containment_margin
        self.contained = contained
        self.part_margin = part_margin
        self.containment_top_k = containment_top_k
        self.batch_size = batch_size
        self._text_cache: dict[str, Any] = {}

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if target.prompt is None:
            raise DisplacementError("selector=clip needs target.prompt=TEXT (with or without a box or point)")
        if not candidates:
            raise DisplacementError(f"no object matching '{target.prompt}': nothing was segmented")
        prompt = target.prompt
        features = self._features(image, candidates)
        raw = self._cosines(features, prompt)
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
        generic = np.stack([self._cosines(features, word) for word in self.generic])[:, 0]
        margin = cosine - float(generic.max())
        log.info("clip: best cosine %.3f, %+.3f over generic words", cosine, margin)
        if margin < self.min_margin:
            closest = self.generic[int(generic.argmax())]
            raise DisplacementError(
                f"no object matching '{prompt}' (best: {margin:+.3f} < min_margin {self.min_margin}: "
                f"cosine {cosine:.3f} to '{prompt}', {generic.max():.3f} to '{closest}')"
            )

    def similarities(self, image: Image, candidates: list[Candidate], prompt: str) -> np.ndarray:
        """Cosine similarity of each candidate's crop(s) to the prompt."""
        return self._cosines(self._features(image, candidates), prompt)

    def _features(self, image: Image, candidates: Sequence[Candidate]) -> Any:
        """Unit image embeddings, one per candidate: the mean over its crops."""
        kinds = ["masked", "context"] if self.crop == "combined" else [self.crop]
        features = self._encode([self._crop(image, c, kind) for kind in kinds for c in candidates])
        features = features.reshape(len(kinds), len(candidates), -1).mean(dim=0)
        return features / features.norm(dim=-1, keepdim=True)

    def _encode(self, crops: list[Image]) -> Any:
        import torch

        model, preprocess, _ = self.model()
        with torch.inference_mode(), self.autocast():
            embeddings = []
            for start in range(0, len(crops), self.batch_size):
                batch = torch.stack([preprocess(_pil(c)) for c in crops[start : start + self.batch_size]])
                embeddings.append(model.encode_image(batch.to(self.device)).float())
            features = torch.cat(embeddings)
        return features / features.norm(dim=-1, keepdim=True)

    def _cosines(self, features: Any, prompt: str) -> np.ndarray:
        import torch

        model, _, tokenizer = self.model()
        with torch.inference_mode(), self.autocast():
            text = self._text_embedding(model, tokenizer, prompt)
        return (features @ text).cpu().numpy()

    def _rest_matches(
        self, image: Image, candidates: Sequence[Candidate], pairs: list[tuple[int, int]], prompt: str
    ) -> np.ndarray:
        """For each (outer, inner) pair: does the outer without the inner look like the prompt
        about as well as the inner does? Then the outer is the whole object (a cup around its
        handle), not a container (a table around a cup). One batch for all pairs."""
        inner = sorted({b for _, b in pairs})
        # one full-size rest mask at a time: only its crop is kept
        rests = [
            self._crop(image, Candidate(mask=candidates[a].mask & ~candidates[b].mask), "masked")
            for a, b in pairs
        ]
        parts = [self._crop(image, candidates[b], "masked") for b in inner]
        cosines = self._cosines(self._encode(rests + parts), prompt)
        part = dict(zip(inner, cosines[len(rests) :], strict=True))
        rest = cosines[: len(rests)]
        return np.array([r >= part[b] - self.part_margin for r, (_, b) in zip(rest, pairs, strict=True)])

    def _text_embedding(self, model: Any, tokenizer: Any, prompt: str) -> Any:
        if prompt not in self._text_cache:
            tokens = tokenizer([t.format(prompt) for t in self.templates]).to(self.device)
            text = model.encode_text(tokens).float()
            text = text / text.norm(dim=-1, keepdim=True)
            text = text.mean(dim=0)
            self._text_cache[prompt] = text / text.norm()
        return self._text_cache[prompt]

    def _crop(self, image: Image, candidate: Candidate, kind: str) -> Image:
        height, width = image.shape[:2]
        x0, y0, x1, y1 = candidate.bbox
        if kind == "context":
            mx, my = round(self.context * (x1 - x0)), round(self.context * (y1 - y0))
            x0, y0, x1, y1 = grown_box(candidate.bbox, width, height, mx, my)
        crop = image[y0:y1, x0:x1].copy()
        if kind == "masked":
            crop[~candidate.mask[y0:y1, x0:x1]] = NEUTRAL
        return _square(crop)

    def fetch(self) -> str:
        """Put the weights in the Hugging Face cache, where loading finds them offline."""
        import open_clip

        if self.model_name.startswith("local-dir:") or (self.pretrained and is_local(self.pretrained)):
            return f"CLIP {self.model_name}: local, nothing to fetch"
        cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained or "")
        if not cfg:
            raise DisplacementError(f"open_clip has no '{self.pretrained}' weights for {self.model_name}")
        return f"CLIP {self.model_name} ({self.pretrained}): {open_clip.download_pretrained(cfg)}"

    def check_weights(self) -> None:
        """Fail at once, before any start-up, when the weights are not on this machine."""
        import open_clip

        if self.model_name.startswith("local-dir:"):
            folder = Path(self.model_name.removeprefix("local-dir:")).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise missing("CLIP", str(folder), "selector.model=local-dir:/path/to/folder")
            return
        if self.pretrained is None:
            return  # random weights, as the bench uses
        if is_local(self.pretrained):
            if not Path(self.pretrained).expanduser().is_file():
                raise missing("CLIP", self.pretrained, "selector.pretrained=/path/to/checkpoint")
            return
        hub = (open_clip.get_pretrained_cfg(self.model_name, self.pretrained) or {}).get("hf_hub", "")
        parts = hub.strip("/").split("/")
        if len(parts) < 2:
            return  # a download URL outside the hub: loading will say what is missing
        repo, names = (
            "/".join(parts[:2]),
            parts[2:] or ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"],
        )
        if not any(hub_available(repo, name) for name in names):
            raise missing(
                "CLIP", f"{self.model_name} ({self.pretrained})", "selector.model=local-dir:/path/to/folder"
            )

    def model(self) -> tuple[Any, Any, Any]:
        """(model, preprocess, tokenizer), loaded once per process."""
        key = ("open_clip", self.model_name, self.pretrained, str(self.device), str(self.dtype))
        return load_once(key, self._load)

    def _load(self) -> tuple[Any, Any, Any]:
        import open_clip

        local_dir = self.model_name.startswith("local-dir:")
        pretrained = None if local_dir else self.pretrained
        source = self.model_name if local_dir else f"{self.model_name} ({pretrained})"
        if pretrained is not None and is_local(pretrained) and not Path(pretrained).expanduser().exists():
            raise missing("CLIP", pretrained, "selector.pretrained=/path/to/checkpoint")
        try:
            with quiet_libraries():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=pretrained, device=self.device
                )
                tokenizer = open_clip.get_tokenizer(self.model_name)
        except (RuntimeError, OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
            if pretrained is not None and Path(pretrained).expanduser().is_file():
                raise unreadable("CLIP", pretrained) from err  # there, but corrupt or foreign
            raise missing("CLIP", source, "selector.model=local-dir:/path/to/folder") from err
        if self.dtype != next(model.parameters()).dtype:  # timm-based towers have no conv1
            model = model.to(self.dtype)
        return model.eval(), preprocess, tokenizer


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


def _square(crop: Image) -> Image:
    """Pad to a square with neutral grey, so CLIP's centre crop cuts nothing off."""
    height, width = crop.shape[:2]
    side = max(height, width, 1)
    top, left = (side - height) // 2, (side - width) // 2
    return cv2.copyMakeBorder(
        crop, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT, value=NEUTRAL
    )


def _pil(array: Image) -> Any:
    from PIL import Image as PILImage

    return PILImage.fromarray(array)
