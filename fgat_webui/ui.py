"""The gradio section: controls laid out by their row (`LAYOUT`), in `args.CONTROLS` order, plus the preset row.

Written against the API gradio 3.41 (A1111) and gradio 4.x (Forge) share: components built with plain
keyword arguments, `gr.update(...)` results, `.change` / `.click` events without `_js`; no `.style()`,
`gr.Box`, `source=` or `tool=`. `InputAccordion` and `ToolButton` come from the WebUI's own
`modules/ui_components.py`, which both WebUIs ship. Tooltips are in `javascript/fgat.js`, keyed by elem_id.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from .args import CONFIG_CONTROLS, CONTROLS, Control, FGATSettings, settings_from_positional, ui_value
from .infotext import paste_value

PRESET_IDS = ("fgat_preset", "fgat_preset_refresh", "fgat_preset_name", "fgat_preset_save", "fgat_preset_delete",
              "fgat_preset_status", "fgat_sampler_note")
SAMPLER_NOTE = (
    "FGAT inverts the source fully and samples with its own deterministic DDIM path over the WebUI's "
    "Sampling steps and CFG Scale: the selected sampler and the denoising strength are not used (the infotext "
    "says so). The window sets how much of the trajectory is changed."
)


class PresetActions:
    """Load / save / delete presets from the UI's current values; errors become status text, never raise."""

    def __init__(self, store_factory: Callable[[], Any]) -> None:
        self.store_factory = store_factory

    def names(self) -> list[str]:
        return self.store_factory().names()

    def file_status(self) -> str:
        """What is wrong with the presets file (unreadable, invalid entries), or "" when nothing is."""
        store = self.store_factory()
        store.names()
        return _problems(store)

    def load(self, name: str | None) -> tuple[dict[str, Any] | None, str]:
        """UI values (by control name) of every config control for preset `name`, and a status line."""
        if not name:
            return None, ""
        try:
            config = self.store_factory().get(name)
        except ValueError as e:
            return None, f"Preset not loaded: {e}"
        settings = FGATSettings(enabled=True, config=config)
        return {c.name: ui_value(c, settings) for c in CONFIG_CONTROLS}, f"Loaded preset {name!r}."

    def save(self, name: str, values: Sequence[Any]) -> tuple[list[str], str | None, str]:
        """`values`: every control's UI value in CONTROLS order. Returns (names, selected, status)."""
        store = self.store_factory()
        try:
            args = list(values)
            args[0] = True  # parse the section as if enabled, whatever the toggle shows
            config = settings_from_positional(args).config
            store.save(name, config)
        except (ValueError, OSError) as e:
            return store.names(), None, f"Preset not saved: {e}"
        saved = name.strip()
        names = store.names()
        return names, saved, f"Saved preset {saved!r}." + _problems(store, " ")

    def delete(self, name: str | None) -> tuple[list[str], str | None, str]:
        store = self.store_factory()
        if not name:
            return store.names(), None, "Choose a preset to delete."
        try:
            store.delete(name)
        except (ValueError, OSError) as e:
            return store.names(), name, f"Preset not deleted: {e}"
        return store.names(), None, f"Deleted preset {name!r}."


def _problems(store, lead: str = "") -> str:
    """The store's complaints about the presets file as one status line (after a read)."""
    return lead + "Presets file: " + "; ".join(store.errors) if store.errors else ""


@dataclass
class FGATUI:
    controls: list[Any]  # in CONTROLS order: the script's args
    infotext_fields: list[tuple[Any, Callable]]


def _component(control: Control) -> Any:
    common = dict(label=control.label, elem_id=control.elem_id)
    if control.kind == "image":
        return gr.Image(type="pil", height=220, **common)
    if control.kind == "text":
        return gr.Textbox(value=control.default, lines=1, **common)
    if control.kind == "bool":
        return gr.Checkbox(value=control.default, **common)
    if control.kind == "choice":
        if len(control.choices) <= 3:
            return gr.Radio(choices=list(control.choices), value=control.default, **common)
        return gr.Dropdown(choices=list(control.choices), value=control.default, **common)
    return gr.Slider(minimum=control.minimum, maximum=control.maximum, step=control.step, value=control.default,
                     **common)


# the section's rows below the enable toggle, by `Control.row`: two names in one row become two columns
LAYOUT = (("image", "prompt"), ("strength",), ("window",), ("method",), ("target",))


def _lay_out_rows(by_name: dict[str, Any]) -> None:
    """The controls of each `LAYOUT` row, in CONTROLS order, created into `by_name`."""
    for rows in LAYOUT:
        with gr.Row():
            for row in rows:
                with gr.Column(scale=1) if len(rows) > 1 else nullcontext():
                    for control in CONTROLS:
                        if control.row == row:
                            by_name[control.name] = _component(control)


def build_ui(actions: PresetActions) -> FGATUI:
    """Create the section inside the current gradio Blocks; returns the controls (script args) and
    the infotext fields."""
    from modules.ui_components import InputAccordion

    by_name: dict[str, Any] = {}
    enabled_control = CONTROLS[0]
    with InputAccordion(False, label=enabled_control.label, elem_id=enabled_control.elem_id) as enabled:
        by_name["enabled"] = enabled
        _lay_out_rows(by_name)
        gr.HTML(f"<p style='opacity:.8'>{SAMPLER_NOTE}</p>", elem_id="fgat_sampler_note")
        with gr.Accordion("Advanced", open=False):
            with gr.Row():
                for control in CONTROLS:
                    if control.advanced:
                        by_name[control.name] = _component(control)
        preset_row = _preset_row(actions)
    controls = [by_name[c.name] for c in CONTROLS]
    _wire_presets(actions, preset_row, controls, [by_name[c.name] for c in CONFIG_CONTROLS])
    infotext_fields = [(by_name[c.name], partial(paste_value, c)) for c in CONTROLS if c.kind != "image"]
    return FGATUI(controls=controls, infotext_fields=infotext_fields)


@dataclass
class PresetRow:
    preset: Any
    refresh: Any
    name: Any
    save: Any
    delete: Any
    status: Any


def _preset_row(actions: PresetActions) -> PresetRow:
    """The preset dropdown, its refresh, name, save and delete, and the status line under them."""
    from modules.ui_components import ToolButton

    with gr.Row():
        preset = gr.Dropdown(label="Preset", choices=actions.names(), value=None, elem_id="fgat_preset")
        refresh = ToolButton(value="\U0001f504", elem_id="fgat_preset_refresh")
        preset_name = gr.Textbox(label="New preset name", lines=1, elem_id="fgat_preset_name")
        save = gr.Button(value="Save preset", elem_id="fgat_preset_save")
        delete = gr.Button(value="Delete preset", elem_id="fgat_preset_delete")
    status = gr.HTML(value=html.escape(actions.file_status()), elem_id="fgat_preset_status")
    return PresetRow(preset, refresh, preset_name, save, delete, status)


def _wire_presets(actions: PresetActions, row: PresetRow, controls: list[Any], config_components: list[Any]) -> None:
    """Load (the user's pick), save (every control's value), delete and refresh; messages go to the status."""

    # the status is HTML: escape messages, which quote preset names and the presets file's own text
    def on_load(name):
        values, message = actions.load(name)
        if values is None:  # nothing chosen: leave the controls and the last message as they are
            return [gr.update() for _ in config_components] + [html.escape(message) if message else gr.update()]
        return [gr.update(value=values[c.name]) for c in CONFIG_CONTROLS] + [html.escape(message)]

    def on_save(name, *values):
        names, selected, message = actions.save(name, values)
        return gr.update(choices=names, value=selected), html.escape(message)

    def on_delete(name):
        names, selected, message = actions.delete(name)
        return gr.update(choices=names, value=selected), html.escape(message)

    def on_refresh():
        return gr.update(choices=actions.names()), html.escape(actions.file_status())

    # `input`, not `change`: only the user's pick loads a preset (every pick, the same one again included);
    # Save and Delete set the dropdown too, and must not overwrite their own status message
    row.preset.input(fn=on_load, inputs=[row.preset], outputs=[*config_components, row.status])
    row.save.click(fn=on_save, inputs=[row.name, *controls], outputs=[row.preset, row.status])
    row.delete.click(fn=on_delete, inputs=[row.preset], outputs=[row.preset, row.status])
    row.refresh.click(fn=on_refresh, inputs=[], outputs=[row.preset, row.status])
