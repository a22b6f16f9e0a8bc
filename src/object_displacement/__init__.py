"""Move an object inside a photo: segment it, paste it elsewhere, inpaint what is left.

Data conventions (images, masks, coordinates, the sign of dy) live in
:mod:`object_displacement.types`.
"""

from object_displacement.errors import DisplacementError
from object_displacement.pipeline import Pipeline
from object_displacement.types import Candidate, Plan, Result, Target

__all__ = ["Candidate", "DisplacementError", "Pipeline", "Plan", "Result", "Target"]
