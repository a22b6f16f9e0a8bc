"""Grounded SAM: Grounding DINO turns the prompt into boxes, SAM each box into a mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.runtime import UsesDevice
from object_displacement.segmenters.base import Segmenter
from object_displacement.segmenters.sam import SamSegmenter
from object_displacement.types import Box, Candidate, Image, Target
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


class GroundedSegmenter(Segmenter, UsesDevice, ModelWeights):
    """Propose the objects ``target.prompt`` names: open-vocabulary detection, then SAM.

    Grounding DINO finds boxes for the phrase; SAM, prompted by each box (and by the
    clicks inside it, labelled 1 or 0), gives one mask per box. A candidate's score is the
    detector's score times SAM's predicted IoU: the detector says whether the box is the
    named thing, SAM whether its mask is a clean object for that box, and a good
    detection SAM cannot segment should not beat an equally likely one it can. SAM
    encodes the photo once for every box. With ``target.box`` only the detections whose
    centre lies in it are kept. ``selector=clip`` may still re-rank the candidates.

    Args:
        sam: the SAM segmenter that turns boxes into masks (its own config node).
        model: Grounding DINO hub id or local ``save_pretrained`` folder.
        box_threshold: detections scoring below this are dropped.
        text_threshold: a detection's words must score this to name it (the processor's
            ``text_threshold``; it labels boxes, the box score decides).
        max_boxes: at most this many detections, best first, are segmented.
    """

    reads_text = True

    def __init__(
        self,
        sam: SamSegmenter,
        model: str = "IDEA-Research/grounding-dino-tiny",
        box_threshold: float = 0.3,
        text_threshold: float = 0.25,
        max_boxes: int = 8,
    ) -> None:
        if max_boxes < 1:
            raise ValueError(f"max_boxes must be at least 1, got {max_boxes}")
        self.sam = sam
        self.model_id = model
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.max_boxes = max_boxes

    def setup(self, fabric: Any) -> None:
        super().setup(fabric)
        self.sam.setup(fabric)

    def fetch_weights(self) -> list[str]:
        """Put Grounding DINO in the Hugging Face cache, and SAM's checkpoint in place."""
        return [fetch_pretrained(self.model_id, "Grounding DINO"), *self.sam.fetch_weights()]

    def check_weights(self) -> None:
        """Fail at once, before any start-up, when either model is not on this machine (or
        the installed transformers is older than the one this code calls)."""
        require("transformers", TRANSFORMERS_MIN, "segmenter=grounded")
        if not pretrained_available(self.model_id):
            raise missing("Grounding DINO", self.model_id, "segmenter.model=/path/to/folder")
        self.sam.check_weights()

    def load(self) -> tuple[Any, Any]:
        """Both models: SAM, and the detector (see :meth:`model`), which it returns."""
        self.sam.load()
        return self.model()

    def model(self) -> tuple[Any, Any]:
        """(detector, processor) on this component's device, loaded once per process."""
        model, processor = load_once(("grounding_dino", self.model_id, str(self.device)), self._load)
        return self.placed(model), processor

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        model, processor = load_pretrained(
            self.model_id,
            "Grounding DINO",
            "segmenter.model=/path/to/folder",
            GroundingDinoForObjectDetection,
            AutoProcessor,
        )
        return model.to(self.device).eval(), processor

    def detect(self, image: Image, prompt: str) -> list[tuple[Box, float]]:
        """Boxes (x0, y0, x1, y1, in pixels) and scores for ``prompt``, best first."""
        import torch

        model, processor = self.model()
        height, width = image.shape[:2]
        # Grounding DINO reads lower-case phrases that end with a full stop
        text = prompt.strip().lower().rstrip(".") + "."
        inputs = processor(images=image, text=text, return_tensors="pt").to(self.device)
        with torch.inference_mode(), self.autocast():
            outputs = model(**inputs)
        (found,) = processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[(height, width)],
        )
        scores = found["scores"].float().cpu().numpy()
        boxes = found["boxes"].float().cpu().numpy()
        order = np.argsort(-scores, kind="stable")[: self.max_boxes]
        return [(_pixel_box(boxes[i], width, height), float(scores[i])) for i in order]

    def propose(self, image: Image, target: Target) -> list[Candidate]:
        import torch

        # 1. Check inputs: the detector needs words
        if target.prompt is None:
            raise DisplacementError(
                "segmenter=grounded needs target.prompt=TEXT (for a box or clicks alone use segmenter=sam)"
            )
        # 2. Detect the phrase; keep the detections inside the user's box, if any
        detections = self.detect(image, target.prompt)
        if target.box is not None:
            detections = [(box, score) for box, score in detections if _centre_in(box, target.box)]
        if not detections:
            return []
        # 3. Segment each box with SAM (one embedding for all), with the clicks inside it
        predictor = self.sam.predictor_for(image)
        candidates = []
        with torch.inference_mode():
            for box, score in detections:
                masks, ious, _ = predictor.predict(
                    box=np.array(box, dtype=np.float32), multimask_output=False, **_clicks_in(box, target)
                )
                iou = float(np.clip(ious[0], 0.0, 1.0))
                candidates.append(Candidate(mask=masks[0].astype(bool), score=score * iou, source="grounded"))
        kept = [c for c in candidates if c.mask.any()]
        return sorted(kept, key=lambda c: c.score, reverse=True)


def _pixel_box(box: np.ndarray, width: int, height: int) -> Box:
    x0, y0, x1, y1 = np.round(box).astype(int)
    x0, x1 = sorted((int(np.clip(x0, 0, width - 1)), int(np.clip(x1, 1, width))))
    y0, y1 = sorted((int(np.clip(y0, 0, height - 1)), int(np.clip(y1, 1, height))))
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def _centre_in(box: Box, outer: Box) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= cx < outer[2] and outer[1] <= cy < outer[3]


def _clicks_in(box: Box, target: Target) -> dict[str, Any]:
    """SAM's point arguments for the clicks inside ``box`` (1 on the object, 0 off it)."""
    clicks = [(p, 1) for p in target.positive] + [(p, 0) for p in target.negative]
    inside = [(p, label) for p, label in clicks if box[0] <= p[0] < box[2] and box[1] <= p[1] < box[3]]
    if not inside:
        return {}
    return {
        "point_coords": np.array([p for p, _ in inside], dtype=np.float32),
        "point_labels": np.array([label for _, label in inside]),
    }
