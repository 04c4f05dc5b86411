"""X/Y/Z plot axes: one per setting with an `xyz` axis in `fgat_core.settings.SETTINGS` (δ, λ, γ, window end),
and the preset.

The WebUI's X/Y/Z plot script is loaded by `script_loading.load_module`, so its module is named after the
file, "xyz_grid.py" (A1111 `modules/script_loading.py:10-16`); it is found in `scripts.scripts_data`
(the way ADetailer and ControlNet do). Each cell runs `opt.apply(pc, x, xs)` on a copy of `p`
(`scripts/xyz_grid.py:707-728`); our apply functions store the value in a fresh dict on that copy, which
`run.start_run` reads in `process()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from fgat_core.settings import SETTINGS

from .run import XYZ_ATTR

# (label, type of the axis values, setting): numbers as they are typed; a choice or the preset as text
AXES = tuple((s.xyz, s.kind if s.kind in (float, int) else str, s.name) for s in SETTINGS if s.xyz) + (
    ("[FGAT] Preset", str, "preset"),)


def find_xyz_module():
    from modules import scripts

    for data in scripts.scripts_data:
        if data.script_class.__module__ in ("xyz_grid.py", "scripts.xyz_grid", "xy_grid.py") or (
            os.path.basename(str(data.path)) == "xyz_grid.py"
        ):
            return data.module
    return None


def apply_override(name: str) -> Callable:
    def apply(p, x, xs) -> None:
        setattr(p, XYZ_ATTR, {**(getattr(p, XYZ_ATTR, None) or {}), name: x})

    return apply


def confirm_presets(preset_names: Callable[[], list[str]]) -> Callable:
    def confirm(p, xs) -> None:
        known = preset_names()
        unknown = [x for x in xs if x not in known]
        if unknown:
            raise RuntimeError(f"unknown FGAT preset(s): {', '.join(map(str, unknown))}; known: {', '.join(known)}")

    return confirm


def register_xyz_axes(preset_names: Callable[[], list[str]]) -> bool:
    """Add our axes to the X/Y/Z plot (once); False when the X/Y/Z script is not loaded."""
    xyz = find_xyz_module()
    if xyz is None:
        return False
    option = getattr(xyz, "AxisOptionImg2Img", xyz.AxisOption)
    have = {o.label for o in xyz.axis_options}
    for label, kind, name in AXES:
        if label in have:
            continue
        if name == "preset":
            xyz.axis_options.append(
                option(label, kind, apply_override(name), choices=preset_names, confirm=confirm_presets(preset_names))
            )
        else:
            xyz.axis_options.append(option(label, kind, apply_override(name)))
    return True
