"""What every mask policy does: turn an object and a displacement into a plan."""

from __future__ import annotations

from abc import ABC, abstractmethod

from object_displacement.types import Image, Mask, Plan


class MaskPolicy(ABC):
    """Decides the composite before inpainting and which pixels get re-synthesized."""

    @abstractmethod
    def plan(self, image: Image, mask: Mask, dx: int, dy: int) -> Plan:
        """Paste the object moved by ``(dx, dy)`` (``dy > 0`` is up) and mark what to inpaint."""
