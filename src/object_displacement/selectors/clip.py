"""Pick the candidate that best matches the text prompt, scored by open_clip CLIP."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import clip_box
from object_displacement.runtime import UsesDevice, quiet_libraries
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target
from object_displacement.weights import is_local, load_once, missing, unreadable

Crop = Literal["box", "masked", "context", "combined"]
NEUTRAL = (124, 116, 104)
"""CLIP's mean colour: what 'no information' looks like to the model."""


class ClipSelector(Selector, UsesDevice):
    """Score every candidate against ``target.prompt`` in one batched forward pass.

    The method's authors saw two failures: a mask cut out of its surroundings convinced
    CLIP it was the class, and a large region that merely contains the object scored
    high. ``crop`` chooses what CLIP sees: ``box`` (the bounding box), ``masked`` (the box
    with everything outside the mask neutral grey), ``context`` (the box grown by
    ``context`` on each side) or ``combined`` (the mean of the ``masked`` and ``context``
    embeddings: the object's own pixels, checked against its surroundings). Against the
    second failure, a candidate never outranks a candidate inside it that scores within
    ``containment_margin`` of it: the smaller, more specific one wins.

    Args:
        model: open_clip architecture (``ViT-B-32``), or ``local-dir:/path`` for a folder
            holding ``open_clip_config.json`` and the weights.
        pretrained: open_clip tag (``laion2b_s34b_b79k``, ``openai``) or a checkpoint
            path; ignored with ``local-dir:``.
        templates: prompt templates; their text embeddings are averaged.
        crop: ``box``, ``masked``, ``context`` or ``combined``.
        context: margin of the ``context`` crop, as a fraction of the box size.
        min_score: cosine similarity below which nothing matches the prompt.
        containment_margin: see above; 0 turns the rule off.
        contained: share of a candidate's area inside another for it to count as inside.
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
        min_score: float = 0.2,
        containment_margin: float = 0.02,
        contained: float = 0.9,
        batch_size: int = 256,
    ) -> None:
        if crop not in ("box", "masked", "context", "combined"):
            raise ValueError(f"crop must be box, masked, context or combined, got {crop!r}")
        self.model_name = model
        self.pretrained = pretrained
        self.templates = list(templates)
        self.crop = crop
        self.context = context
        self.min_score = min_score
        self.containment_margin = containment_margin
        self.contained = contained
        self.batch_size = batch_size
        self._text_cache: dict[str, Any] = {}

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if target.prompt is None:
            raise DisplacementError("selector=clip needs target.prompt=TEXT (with or without a box or point)")
        if not candidates:
            raise DisplacementError(f"no object matching '{target.prompt}': nothing was segmented")
        raw = self.similarities(image, candidates, target.prompt)
        scores = contained_first(candidates, raw, self.containment_margin, self.contained)
        ranked = sorted(
            (replace(c, score=float(s)) for c, s in zip(candidates, scores, strict=True)),
            key=lambda c: c.score,
            reverse=True,
        )
        if ranked[0].score < self.min_score:
            raise DisplacementError(
                f"no object matching '{target.prompt}' (best: {ranked[0].score:.3f} < min_score "
                f"{self.min_score})"
            )
        return ranked

    def similarities(self, image: Image, candidates: list[Candidate], prompt: str) -> np.ndarray:
        """Cosine similarity of each candidate's crop(s) to the prompt."""
        import torch

        model, preprocess, tokenizer = self.model()
        kinds = ["masked", "context"] if self.crop == "combined" else [self.crop]
        crops = [self._crop(image, c, kind) for kind in kinds for c in candidates]
        with torch.inference_mode(), self.autocast():
            text = self._text_embedding(model, tokenizer, prompt)
            embeddings = []
            for start in range(0, len(crops), self.batch_size):
                batch = torch.stack([preprocess(_pil(c)) for c in crops[start : start + self.batch_size]])
                embeddings.append(model.encode_image(batch.to(self.device)).float())
            features = torch.cat(embeddings)
        features = features / features.norm(dim=-1, keepdim=True)
        features = features.reshape(len(kinds), len(candidates), -1).mean(dim=0)
        features = features / features.norm(dim=-1, keepdim=True)
        return (features @ text).cpu().numpy()

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
            x0, y0, x1, y1 = clip_box((x0 - mx, y0 - my, x1 + mx, y1 + my), width, height)
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
        if self.dtype != model.visual.conv1.weight.dtype:
            model = model.to(self.dtype)
        return model.eval(), preprocess, tokenizer


def contained_first(
    candidates: Sequence[Candidate], scores: np.ndarray, margin: float, contained: float = 0.9
) -> np.ndarray:
    """Scores adjusted so no candidate outranks one inside it scoring within ``margin``.

    Candidate ``b`` is inside ``a`` when at least ``contained`` of ``b``'s area lies in
    ``a`` and ``b`` is smaller. Such an ``a`` is lowered just below ``b``: a region that
    merely contains the object should not win over the object itself.
    """
    adjusted = np.asarray(scores, dtype=np.float64).copy()
    if margin <= 0 or len(candidates) < 2:
        return adjusted
    masks = np.stack([_coarse(c.mask).ravel() for c in candidates])
    areas = masks.sum(axis=1)
    overlap = masks @ masks.T  # overlap[a, b]: pixels of b inside a
    inside = (overlap >= contained * areas[None, :]) & (areas[None, :] < areas[:, None])
    for a, b in zip(*np.nonzero(inside), strict=True):
        if scores[b] >= scores[a] - margin:
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
