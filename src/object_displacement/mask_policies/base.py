"""What every mask policy does: turn an object and a displacement into a plan."""

from __future__ import annotations

from abc import ABC, abstractmethod

from object_displacement.types import Image, Mask, Matte, Move, Plan


class MaskPolicy(ABC):
    """Decides where the object goes and which pixels around both places get re-synthesized."""

    @abstractmethod
    def plan(self, image: Image, mask: Mask, move: Move, matte: Matte | None = None) -> Plan:
        """Place the moved object and mark what must be re-synthesized; with a ``matte`` the
        object travels with its soft coverage and own colours instead of the hard mask."""
