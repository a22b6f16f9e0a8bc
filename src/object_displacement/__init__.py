"""Move an object inside a photo: segment it, paste it elsewhere, inpaint what is left.

Data conventions (images, masks, coordinates, the sign of dy) live in
:mod:`object_displacement.types`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from object_displacement.errors import DisplacementError
from object_displacement.pipeline import Pipeline
from object_displacement.types import Candidate, Plan, Result, Target

__all__ = [
    "Candidate",
    "DisplacementError",
    "Moved",
    "Pipeline",
    "Plan",
    "Result",
    "Target",
    "load_pipeline",
    "move",
]

if TYPE_CHECKING:
    from object_displacement.api import Moved, load_pipeline, move

_API = ("Moved", "load_pipeline", "move")


def __getattr__(name: str) -> Any:
    """The API loads on first use: ``import object_displacement.io`` stays light."""
    if name in _API:
        from object_displacement import api

        return getattr(api, name)
    raise AttributeError(f"module 'object_displacement' has no attribute {name!r}")
