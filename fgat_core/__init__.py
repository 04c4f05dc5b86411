"""FGAT: Fine-grained Appearance Transfer with Diffusion Models (Ye et al.), the reference implementation.

This package holds all of the method's math; it imports nothing from the WebUI, gradio or diffusers at
import time (diffusers is imported lazily by the standalone pipeline only)."""

from .config import FGATConfig
from .engine import FGATInputs, FGATInterrupted, FGATResult, run_fgat

__all__ = ["FGATConfig", "FGATInputs", "FGATInterrupted", "FGATResult", "run_fgat"]
__version__ = "0.1.0"
