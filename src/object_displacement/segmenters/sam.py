"""Segment Anything: every object in the photo, or the few around a point or a box."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import resize_mask
from object_displacement.runtime import UsesDevice
from object_displacement.segmenters.base import Segmenter
from object_displacement.types import Candidate, Image, Target
from object_displacement.weights import ModelWeights, check_complete, load_checkpoint, load_once, local_file

ENCODERS: dict[str, dict[str, Any]] = {
    "vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global_attn_indexes": [2, 5, 8, 11]},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global_attn_indexes": [5, 11, 17, 23]},
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "global_attn_indexes": [7, 15, 23, 31]},
}
"""The image encoders of the released checkpoints (segment_anything's registry)."""

CHECKPOINTS = {
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
}
"""Where `make weights` downloads each released checkpoint from."""


class SamSegmenter(Segmenter, UsesDevice, ModelWeights):
    """Propose objects with SAM.

    A text-only target runs the automatic mask generator (a grid of point prompts) and
    leaves the choice to the selector; a point, clicks or a box run the predictor once: one
    image embedding, ``multimask`` masks, far cheaper. The embedding of the last image is
    kept, so several prompts on one photo encode it once.

    Args:
        model_type: ``vit_b``, ``vit_l`` or ``vit_h``.
        checkpoint: path of the SAM state dict (``.pth``); ``None`` means the released
            file for ``model_type`` in ``weights_dir``, where `make weights` puts it.
        weights_dir: see ``checkpoint``.
        encoder: overrides of the image encoder's shape (``embed_dim``, ``depth``,
            ``num_heads``, ``global_attn_indexes``), for checkpoints of other sizes.
        points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh,
        min_mask_region_area, crop_n_layers: ``SamAutomaticMaskGenerator`` settings.
        work_side: automatic mode runs on the photo shrunk so its longer side is at most
            this (SAM sees 1024 px anyway): every batch of point prompts upsamples its
            logits to the size it is given, which on a 12-megapixel photo needs over 10 GB.
            Each mask is brought back to full resolution with smooth edges. Prompted mode
            always predicts at full resolution.
        multimask: in prompted mode, propose SAM's three nested masks as well as its
            single best mask (which SAM recommends for an unambiguous box).
    """

    def __init__(
        self,
        model_type: str = "vit_b",
        checkpoint: str | None = None,
        weights_dir: str = "data/weights",
        encoder: dict[str, Any] | None = None,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        min_mask_region_area: int = 0,
        crop_n_layers: int = 0,
        work_side: int = 1024,
        multimask: bool = True,
    ) -> None:
        if model_type not in ENCODERS:
            raise ValueError(f"model_type must be one of {sorted(ENCODERS)}, got {model_type!r}")
        self.model_type = model_type
        self.checkpoint = checkpoint or str(Path(weights_dir) / CHECKPOINTS[model_type].rsplit("/", 1)[1])
        self.encoder = {**ENCODERS[model_type], **(encoder or {})}
        self.generator_settings = {
            "points_per_side": points_per_side,
            "points_per_batch": points_per_batch,
            "pred_iou_thresh": pred_iou_thresh,
            "stability_score_thresh": stability_score_thresh,
            "min_mask_region_area": min_mask_region_area,
            "crop_n_layers": crop_n_layers,
        }
        if work_side < 64:
            raise ValueError(f"work_side must be at least 64 pixels, got {work_side}")
        self.work_side = work_side
        self.multimask = multimask
        self._predictor: Any = None
        self._embedded: str | None = None

    def fetch_weights(self) -> list[str]:
        """Download the released checkpoint for ``model_type`` to ``checkpoint`` (needs internet)."""
        import urllib.request

        path = Path(self.checkpoint)
        if path.is_file():
            return [f"SAM {self.model_type}: {path} (already there)"]
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        urllib.request.urlretrieve(CHECKPOINTS[self.model_type], partial)
        partial.replace(path)  # a cut download never looks like a checkpoint
        return [f"SAM {self.model_type}: {path}"]

    def check_weights(self) -> None:
        """Fail at once, before any start-up, when the checkpoint is not on disk."""
        local_file(self.checkpoint, f"SAM {self.model_type}", "segmenter.checkpoint")

    def load(self) -> Any:
        """The SAM model (see :meth:`model`)."""
        return self.model()

    def model(self) -> Any:
        """The SAM model on this component's device, loaded once per process."""
        path = local_file(self.checkpoint, f"SAM {self.model_type}", "segmenter.checkpoint")
        key = ("sam", str(path.resolve()), tuple(sorted(_hashable(self.encoder))), str(self.device))
        return self.placed(load_once(key, lambda: self._load(path)))

    def _load(self, path: Any) -> Any:
        from segment_anything.build_sam import _build_sam

        sam = _build_sam(
            encoder_embed_dim=self.encoder["embed_dim"],
            encoder_depth=self.encoder["depth"],
            encoder_num_heads=self.encoder["num_heads"],
            encoder_global_attn_indexes=list(self.encoder["global_attn_indexes"]),
            checkpoint=None,
        )
        state = load_checkpoint(path, f"SAM {self.model_type}")
        other_model = DisplacementError(
            f"{path} is not a SAM {self.model_type} checkpoint: set segmenter.model_type to match it"
        )
        try:  # not strict: a checkpoint lacking parts is named as such, not as another model's
            keys = sam.load_state_dict(state, strict=False)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise other_model from err
        if keys.unexpected_keys:
            raise other_model
        check_complete(f"SAM {self.model_type}", str(path), keys.missing_keys)
        return sam.to(self.device).eval()

    def propose(self, image: Image, target: Target) -> list[Candidate]:
        import torch

        with torch.inference_mode():  # the predictor applies Fabric's autocast to the encoder alone
            if target.box is None and not target.positive:
                return self._automatic(image)
            return self._prompted(image, target)

    def _automatic(self, image: Image) -> list[Candidate]:
        from segment_anything import SamAutomaticMaskGenerator

        from object_displacement.segmenters.sam_predictor import MixedPrecisionPredictor

        height, width = image.shape[:2]
        generator = SamAutomaticMaskGenerator(self.model(), **self.generator_settings)
        generator.predictor = MixedPrecisionPredictor(self.model(), self.autocast)
        records = generator.generate(shrink_to(image, self.work_side))
        records.sort(key=lambda r: r["predicted_iou"], reverse=True)
        return [
            Candidate(
                mask=resize_mask(r["segmentation"], width, height),
                score=float(r["predicted_iou"]),
                source="sam",
            )
            for r in records
        ]

    def _prompted(self, image: Image, target: Target) -> list[Candidate]:
        predictor = self.predictor_for(image)
        prompt: dict[str, Any] = {}
        clicks = [*target.positive, *target.negative]
        if clicks:  # SAM's format: label 1 on the object, 0 off it
            prompt["point_coords"] = np.array(clicks, dtype=np.float32)
            prompt["point_labels"] = np.array([1] * len(target.positive) + [0] * len(target.negative))
        if target.box is not None:
            prompt["box"] = np.array(target.box, dtype=np.float32)
        # the single-mask output is SAM's answer to an unambiguous prompt; the three
        # multimask outputs cover the whole/part/sub-part readings of an ambiguous one
        outputs = [("sam-single", predictor.predict(**prompt, multimask_output=False))]
        if self.multimask:
            outputs.append(("sam", predictor.predict(**prompt, multimask_output=True)))
        candidates = [
            Candidate(mask=mask.astype(bool), score=float(score), source=source)
            for source, (masks, scores, _) in outputs
            for mask, score in zip(masks, scores, strict=True)
        ]
        return sorted(candidates, key=lambda c: c.score, reverse=True)

    def predictor_for(self, image: Image) -> Any:
        """SAM's predictor with ``image`` embedded: the embedding is computed once per photo,
        so every prompt on it (a click, a box, each of Grounded SAM's boxes) reuses it."""
        from object_displacement.segmenters.sam_predictor import MixedPrecisionPredictor

        model = self.model()
        if self._predictor is None or self._predictor.model is not model:
            self._predictor, self._embedded = MixedPrecisionPredictor(model, self.autocast), None
        digest = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + str(image.shape)
        if digest != self._embedded:
            self._predictor.set_image(image)
            self._embedded = digest
        return self._predictor


def shrink_to(image: Image, side: int) -> Image:
    """``image`` with its longer side at most ``side`` (area averaging), else itself."""
    height, width = image.shape[:2]
    factor = side / max(height, width)
    if factor >= 1:
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _hashable(settings: dict[str, Any]) -> list[tuple[str, Any]]:
    """Settings as sortable pairs with lists turned into tuples, for a cache key."""
    return [
        (k, tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v)
        for k, v in settings.items()
    ]
