"""Soft edges: alpha mattes of the object's border (``matting=closed_form``)."""
