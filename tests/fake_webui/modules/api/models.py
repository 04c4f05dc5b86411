"""Mirrors modules/api/models.py:307-320 (ScriptArg, ScriptInfo); dataclasses instead of pydantic models."""
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class ScriptArg:
    label: str = None
    value: Optional[Any] = None
    minimum: Optional[Any] = None
    maximum: Optional[Any] = None
    step: Optional[Any] = None
    choices: Optional[list] = None


@dataclass
class ScriptInfo:
    name: str = None
    is_alwayson: bool = None
    is_img2img: bool = None
    args: list = field(default_factory=list)
