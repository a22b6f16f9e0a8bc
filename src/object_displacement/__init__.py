"""Move an object inside a photo: segment it, paste it elsewhere, inpaint what is left.

Data conventions (images, masks, coordinates, the sign of dy) live in
:mod:`object_displacement.types`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from object_displacement.errors import DisplacementError

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
    from object_displacement.pipeline import Pipeline
    from object_displacement.types import Candidate, Plan, Result, Target

_LAZY = {
    "Moved": "api",
    "load_pipeline": "api",
    "move": "api",
    "Pipeline": "pipeline",
    "Candidate": "types",
    "Plan": "types",
    "Result": "types",
    "Target": "types",
}


def __getattr__(name: str) -> Any:
    """The API and the data types load on first use: ``import object_displacement.io``
    stays light, and so does ``displace --help`` (no numpy, no OpenCV)."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"object_displacement.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'object_displacement' has no attribute {name!r}")
