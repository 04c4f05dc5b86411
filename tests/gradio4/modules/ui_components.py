"""Forge 2.x's `InputAccordion` and `ToolButton` under gradio 4 (Forge `modules/ui_components.py:17-27,
102-176`, snapshot dfdcbab6), for the gradio-4 smoke check of FGAT's UI.

The one line left out is the accordion's `.change(fn=None, _js=...)`: `_js` exists in gradio 4 only
through Forge's `modules/gradio_extensions.py` patch, and it only wires browser-side JavaScript."""

from functools import wraps

import gradio as gr


class FormComponent:
    webui_do_not_create_gradio_pyi_thank_you = True  # gradio 4 would write a .pyi stub beside this file

    def get_expected_parent(self):
        return gr.components.Form


class ToolButton(gr.Button, FormComponent):
    @wraps(gr.Button.__init__)
    def __init__(self, value="", *args, elem_classes=None, **kwargs):
        elem_classes = elem_classes or []
        super().__init__(*args, elem_classes=["tool", *elem_classes], value=value, **kwargs)

    def get_block_name(self):
        return "button"


class InputAccordionImpl(gr.Checkbox):
    webui_do_not_create_gradio_pyi_thank_you = True
    global_index = 0

    @wraps(gr.Checkbox.__init__)
    def __init__(self, value=None, setup=False, **kwargs):
        if not setup:
            super().__init__(value=value, **kwargs)
            return
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordionImpl.global_index}"
            InputAccordionImpl.global_index += 1
        super().__init__(value=value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})
        label = kwargs.get("label", "Accordion")
        self.accordion = gr.Accordion(**{**kwargs, "elem_id": self.accordion_id, "label": label,
                                         "elem_classes": ["input-accordion"], "open": value})

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self):
        return "checkbox"


def InputAccordion(value=None, **kwargs):
    return InputAccordionImpl(value=value, setup=True, **kwargs)
