"""SAM 3: every instance of a text phrase, segmented by one model in one pass."""

from __future__ import annotations

import hashlib
from typing import Any

from object_displacement.errors import DisplacementError
from object_displacement.runtime import UsesDevice
from object_displacement.segmenters.base import Segmenter
from object_displacement.types import Candidate, Image, Target
from object_displacement.weights import (
    TRANSFORMERS_MIN,
    ModelWeights,
    fetch_pretrained,
    load_once,
    load_pretrained,
    missing,
    pretrained_available,
    require,
)

GATED = (
    "accept the SAM 3 licence at https://huggingface.co/facebook/sam3 and log in "
    "(`huggingface-cli login`, or set HF_TOKEN)"
)


class Sam3Segmenter(Segmenter, UsesDevice, ModelWeights):
    """Propose the instances of ``target.prompt`` with ``Sam3Model`` (transformers).

    SAM 3 detects and segments every object matching a noun phrase at once, with a score
    per instance, so the text decides the candidates and no selector has to read crops of
    blind masks (the method's known failure: CLIP preferring a region that merely contains
    the object). A ``target.box`` is a positive exemplar box beside the text (alone, it
    asks for objects like the boxed one). ``Sam3Model`` takes no clicks: an instance
    containing a click labelled 0 is dropped, and with clicks labelled 1 only instances
    containing one are kept, most clicks first.

    The processor resizes the photo to the model's 1008 px; masks come back from its
    ``post_process_instance_segmentation`` at full resolution, ``chunk`` instances at a
    time (each is a float map of the photo's size while it is upsampled: 48 MB at 12 MP).
    The vision encoder, almost all of the compute, runs under Fabric's autocast and is
    cached for the last photo; the prompt-dependent rest runs in fp32 (under bf16
    autocast its box encoder's ``roi_align`` crashed on mixed dtypes).

    Args:
        model: hub id (``facebook/sam3``, gated: accept its licence first) or a local
            folder saved with ``save_pretrained`` (model and processor).
        threshold: instances scoring below this are not proposed (score: detection times
            presence probability, as the processor computes it).
        mask_threshold: probability above which a pixel belongs to an instance.
        max_instances: at most this many instances, best first, are upsampled and proposed.
        chunk: instances upsampled to full resolution at once (memory, see above).
    """

    reads_text = True

    def __init__(
        self,
        model: str = "facebook/sam3",
        threshold: float = 0.3,
        mask_threshold: float = 0.5,
        max_instances: int = 16,
        chunk: int = 4,
    ) -> None:
        if max_instances < 1 or chunk < 1:
            raise ValueError("max_instances and chunk must be at least 1")
        self.model_id = model
        self.threshold = threshold
        self.mask_threshold = mask_threshold
        self.max_instances = max_instances
        self.chunk = chunk
        self._vision: tuple[str, Any] | None = None

    def fetch_weights(self) -> list[str]:
        """Put model and processor in the Hugging Face cache (needs the accepted licence)."""
        return [fetch_pretrained(self.model_id, "SAM 3", GATED)]

    def check_weights(self) -> None:
        """Fail at once, before any start-up, when the model is not on this machine (or the
        installed transformers predates SAM 3)."""
        require("transformers", TRANSFORMERS_MIN, "segmenter=sam3")
        if not pretrained_available(self.model_id):
            raise missing("SAM 3", self.model_id, "segmenter.model=/path/to/folder")

    def load(self) -> tuple[Any, Any]:
        """(model, processor) (see :meth:`model`)."""
        return self.model()

    def model(self) -> tuple[Any, Any]:
        """(model, processor) on this component's device, loaded once per process."""
        model, processor = load_once(("sam3", self.model_id, str(self.device)), self._load)
        return self.placed(model), processor

    def _load(self) -> tuple[Any, Any]:
        from transformers import Sam3Model, Sam3Processor

        setting = "segmenter.model=/path/to/folder"
        model, processor = load_pretrained(self.model_id, "SAM 3", setting, Sam3Model, Sam3Processor)
        return model.to(self.device).eval(), processor

    def propose(self, image: Image, target: Target) -> list[Candidate]:
        import torch

        # 1. Check inputs: SAM 3 reads a phrase or an exemplar box, not clicks alone
        if target.prompt is None and target.box is None:
            raise DisplacementError(
                "segmenter=sam3 needs target.prompt=TEXT or target.box (for clicks alone use segmenter=sam)"
            )
        model, processor = self.model()
        height, width = image.shape[:2]
        boxes = {"input_boxes": [[list(target.box)]], "input_boxes_labels": [[1]]} if target.box else {}
        # 2. Encode the photo (cached) and the prompt
        with torch.inference_mode():
            vision = self._vision_embeds(image, model, processor)
            inputs = processor(
                text=target.prompt, original_sizes=[[height, width]], return_tensors="pt", **boxes
            ).to(self.device)
            inputs.pop("original_sizes", None)
            # 3. Decode the instances in fp32 (see the class docstring)
            with torch.autocast(self.device.type, enabled=False):
                outputs = model(vision_embeds=vision, **inputs)
            # 4. Upsample the best instances to full resolution, a few at a time
            candidates = self._instances(processor, outputs, height, width)
        return _with_clicks(candidates, target)

    def _vision_embeds(self, image: Image, model: Any, processor: Any) -> Any:
        """The vision encoder's output for ``image`` (fp32), computed once per photo."""
        digest = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + str(image.shape)
        if self._vision is None or self._vision[0] != digest:
            pixels = processor(images=image, return_tensors="pt")["pixel_values"].to(self.device)
            with self.autocast():
                vision = model.get_vision_features(pixel_values=pixels)
            for key, value in vision.items():
                vision[key] = tuple(v.float() for v in value) if isinstance(value, tuple) else value.float()
            self._vision = (digest, vision)
        return self._vision[1]

    def _instances(self, processor: Any, outputs: Any, height: int, width: int) -> list[Candidate]:
        # the processor's score: detection probability times the presence probability
        scores = outputs.pred_logits.sigmoid()[0]
        if outputs.presence_logits is not None:
            scores = scores * outputs.presence_logits.sigmoid()[0]
        order = scores.argsort(descending=True)[: self.max_instances]
        order = order[scores[order] > self.threshold]
        candidates = []
        for start in range(0, len(order), self.chunk):
            part = order[start : start + self.chunk]
            sliced = type(outputs)(
                pred_logits=outputs.pred_logits[:, part],
                pred_boxes=outputs.pred_boxes[:, part],
                pred_masks=outputs.pred_masks[:, part],
                presence_logits=outputs.presence_logits,
            )
            (found,) = processor.post_process_instance_segmentation(
                sliced,
                threshold=self.threshold,
                mask_threshold=self.mask_threshold,
                target_sizes=[(height, width)],
            )
            candidates += [
                Candidate(mask=mask.bool().cpu().numpy(), score=float(score), source="sam3")
                for mask, score in zip(found["masks"], found["scores"], strict=True)
            ]
        return [c for c in candidates if c.mask.any()]


def _with_clicks(candidates: list[Candidate], target: Target) -> list[Candidate]:
    """Candidates that agree with the clicks: none on a click labelled 0, and with clicks
    labelled 1, at least one of them, most first (stable: best score first among equals)."""

    def hits(candidate: Candidate, points: tuple[tuple[int, int], ...]) -> int:
        return sum(bool(candidate.mask[y, x]) for x, y in points)

    kept = [c for c in candidates if not hits(c, target.negative)]
    if target.positive:
        kept = sorted((c for c in kept if hits(c, target.positive)), key=lambda c: -hits(c, target.positive))
    return kept
