"""Mirrors sgm/modules/__init__.py: `GeneralConditioner` is exported here (A1111's sd_models_xl patches it)."""
from .encoders.modules import GeneralConditioner  # noqa: F401
