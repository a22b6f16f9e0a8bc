"""open_clip CLIP as one embedder: candidate crops and prompts in, cosine similarities out.

The CLIP selector ranks candidates with it and the quality scores measure the edit with it,
so both see the same crops through the same model, loaded once per process.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import grown_box
from object_displacement.runtime import UsesDevice, quiet_libraries
from object_displacement.types import Candidate, Image
from object_displacement.weights import ModelWeights, hub_available, is_local, load_once, missing, unreadable

Crop = Literal["box", "masked", "context", "combined"]
CROPS = ("box", "masked", "context", "combined")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""The input mean of OpenAI's CLIP (open_clip's default), for a model that names none."""


class ClipEmbedder(ModelWeights, UsesDevice):
    """Unit CLIP embeddings of candidates (as crops of the photo) and of prompts.

    ``crop`` chooses what CLIP sees of a candidate: ``box`` (its bounding box), ``masked``
    (the box with everything outside the mask neutral grey), ``context`` (the box grown by
    ``context`` on each side) or ``combined`` (the mean of the ``masked`` and ``context``
    embeddings). A prompt's embedding is the mean over ``templates``, kept per prompt.

    Args:
        model: open_clip architecture (``ViT-B-32``), or ``local-dir:/path`` for a folder
            holding ``open_clip_config.json`` and the weights.
        pretrained: open_clip tag (``laion2b_s34b_b79k``, ``openai``) or a checkpoint
            path; ignored with ``local-dir:``; ``None``: random weights.
        templates: prompt templates; their text embeddings are averaged.
        crop: ``box``, ``masked``, ``context`` or ``combined``.
        context: margin of the ``context`` crop, as a fraction of the box size.
        batch_size: crops per forward pass.
    """

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str | None = "laion2b_s34b_b79k",
        templates: Sequence[str] = ("a photo of a {}.", "a photo of the {}.", "a cropped photo of a {}."),
        crop: Crop = "combined",
        context: float = 0.3,
        batch_size: int = 256,
    ) -> None:
        if crop not in CROPS:
            raise ValueError(f"crop must be box, masked, context or combined, got {crop!r}")
        self.model_name = model
        self.pretrained = pretrained
        self.templates = list(templates)
        self.crop = crop
        self.context = context
        self.batch_size = batch_size
        self._text_cache: dict[str, Any] = {}
        self._neutral: tuple[int, int, int] | None = None

    # -- embeddings ------------------------------------------------------------------------

    def similarities(self, image: Image, candidates: Sequence[Candidate], prompt: str) -> np.ndarray:
        """Cosine similarity of each candidate (its ``crop``) to the prompt."""
        return self.cosines(self.features(image, candidates), prompt)

    def features(self, image: Image, candidates: Sequence[Candidate]) -> Any:
        """Unit image embeddings, one per candidate: the mean over its crops."""
        kinds = ["masked", "context"] if self.crop == "combined" else [self.crop]
        features = self.encode([self.cropped(image, c, kind) for kind in kinds for c in candidates])
        features = features.reshape(len(kinds), len(candidates), -1).mean(dim=0)
        return features / features.norm(dim=-1, keepdim=True)

    def encode(self, crops: Sequence[Image]) -> Any:
        """Unit image embeddings of ``crops``, ``batch_size`` at a time."""
        import torch

        model, preprocess, _ = self.model()
        with torch.inference_mode(), self.autocast():
            embeddings = []
            for start in range(0, len(crops), self.batch_size):
                batch = torch.stack([preprocess(_pil(c)) for c in crops[start : start + self.batch_size]])
                embeddings.append(model.encode_image(batch.to(self.device)).float())
            features = torch.cat(embeddings)
        return features / features.norm(dim=-1, keepdim=True)

    def cosines(self, features: Any, prompt: str) -> np.ndarray:
        """Cosine similarity of unit image embeddings to the prompt's."""
        return (features @ self.text(prompt)).cpu().numpy()

    def text(self, prompt: str) -> Any:
        """The prompt's unit embedding: the mean over the templates, computed once."""
        import torch

        if prompt not in self._text_cache:
            model, _, tokenizer = self.model()
            with torch.inference_mode(), self.autocast():
                tokens = tokenizer([t.format(prompt) for t in self.templates]).to(self.device)
                text = model.encode_text(tokens).float()
                text = text / text.norm(dim=-1, keepdim=True)
                text = text.mean(dim=0)
                self._text_cache[prompt] = text / text.norm()
        return self._text_cache[prompt]

    def cropped(self, image: Image, candidate: Candidate, kind: str) -> Image:
        """What CLIP sees of ``candidate`` as a ``kind`` crop (not ``combined``), squared."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = candidate.bbox
        if kind == "context":
            mx, my = round(self.context * (x1 - x0)), round(self.context * (y1 - y0))
            x0, y0, x1, y1 = grown_box(candidate.bbox, width, height, mx, my)
        crop = image[y0:y1, x0:x1].copy()
        neutral = self.neutral()
        if kind == "masked":
            crop[~candidate.mask[y0:y1, x0:x1]] = neutral
        return _square(crop, neutral)

    def neutral(self) -> tuple[int, int, int]:
        """The model's input mean as a colour: what normalises to zero, 'no information' to
        it. Each model family has its own (OpenAI's, ImageNet's, SigLIP's 0.5 grey). Read
        from the model once: every crop asks."""
        if self._neutral is None:
            model, _, _ = self.model()
            mean = getattr(model.visual, "preprocess_cfg", {}).get("mean", OPENAI_MEAN)
            self._neutral = neutral_colour(mean)
        return self._neutral

    # -- weights ---------------------------------------------------------------------------

    def check_weights(self) -> None:
        """Fail at once, before any start-up, when the weights are not on this machine. Only
        an open_clip tag imports open_clip: its table says which hub repo holds the tag."""
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
        import open_clip

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

    def fetch_weights(self) -> list[str]:
        """Put the weights in the Hugging Face cache, where loading finds them offline."""
        import open_clip

        if self.model_name.startswith("local-dir:") or (self.pretrained and is_local(self.pretrained)):
            return [f"CLIP {self.model_name}: local, nothing to fetch"]
        cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained or "")
        if not cfg:
            raise DisplacementError(f"open_clip has no '{self.pretrained}' weights for {self.model_name}")
        return [f"CLIP {self.model_name} ({self.pretrained}): {open_clip.download_pretrained(cfg)}"]

    def load(self) -> tuple[Any, Any, Any]:
        """(model, preprocess, tokenizer) (see :meth:`model`)."""
        return self.model()

    def model(self) -> tuple[Any, Any, Any]:
        """(model, preprocess, tokenizer), loaded once per process."""
        key = ("open_clip", self.model_name, self.pretrained, str(self.device), str(self.dtype))
        model, preprocess, tokenizer = load_once(key, self._load)
        return self.placed(model), preprocess, tokenizer

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
                    self.model_name,
                    pretrained=pretrained,
                    device=self.device,
                    force_quick_gelu=not local_dir and needs_quick_gelu(self.model_name, pretrained),
                )
                tokenizer = open_clip.get_tokenizer(self.model_name)
        except (RuntimeError, OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
            if pretrained is not None and Path(pretrained).expanduser().is_file():
                raise unreadable("CLIP", pretrained) from err  # there, but corrupt or foreign
            raise missing("CLIP", source, "selector.model=local-dir:/path/to/folder") from err
        if self.dtype != next(model.parameters()).dtype:  # timm-based towers have no conv1
            model = model.to(self.dtype)
        return model.eval(), preprocess, tokenizer


def neutral_colour(mean: Sequence[float]) -> tuple[int, int, int]:
    """The 8-bit colour of a normalisation mean given in 0..1."""
    r, g, b = (int(np.rint(255 * float(m))) for m in mean)
    return (r, g, b)


def needs_quick_gelu(model_name: str, pretrained: str | None) -> bool:
    """Whether open_clip's weights ``pretrained`` for ``model_name`` were trained with
    QuickGELU (OpenAI's): built with plain GELU they give subtly wrong embeddings, and
    open_clip only warns. A ``-quickgelu`` architecture has it already."""
    import open_clip

    if pretrained is None or is_local(pretrained) or model_name.endswith("-quickgelu"):
        return False
    return bool((open_clip.get_pretrained_cfg(model_name, pretrained) or {}).get("quick_gelu"))


def _square(crop: Image, neutral: tuple[int, int, int]) -> Image:
    """Pad to a square with neutral grey, so CLIP's centre crop cuts nothing off."""
    height, width = crop.shape[:2]
    side = max(height, width, 1)
    top, left = (side - height) // 2, (side - width) // 2
    return cv2.copyMakeBorder(
        crop, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT, value=neutral
    )


def _pil(array: Image) -> Any:
    from PIL import Image as PILImage

    return PILImage.fromarray(array)
