"""What every mask policy does: turn an object and a displacement into a plan."""

from __future__ import annotations

from abc import ABC, abstractmethod

from object_displacement.types import Image, Mask, Move, Plan


class MaskPolicy(ABC):
    """Decides where the object goes and which pixels around both places get re-synthesized."""

    @abstractmethod
    def plan(self, image: Image, mask: Mask, move: Move) -> Plan:
        """Place the moved object and mark what must be re-synthesized."""
