"""Gradio-4 smoke check of FGAT's UI (Forge ships gradio 4.40; the pytest venv has A1111's gradio 3.41).

Run by .ci/run in a separate venv: builds the section in a gr.Blocks with Forge's InputAccordion, checks
every control, the infotext fields and the preset handlers, and serialises the app config as gradio does
when it serves the page. Exits non-zero on any failure."""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(Path(__file__).parent), str(ROOT)]

import gradio as gr  # noqa: E402

from fgat_core.presets import PresetStore  # noqa: E402
from fgat_webui.args import CONTROLS  # noqa: E402
from fgat_webui.ui import PresetActions, build_ui  # noqa: E402


def main() -> int:
    assert gr.__version__.startswith("4."), gr.__version__
    folder = tempfile.mkdtemp()
    actions = PresetActions(lambda: PresetStore(folder))
    with gr.Blocks() as demo:
        view = build_ui(actions)
    controls = view.controls
    assert len(controls) == len(CONTROLS), (len(controls), len(CONTROLS))
    for control, spec in zip(controls, CONTROLS, strict=True):
        assert isinstance(control, gr.components.Component), (spec, control)
        assert control.elem_id and spec.elem_id in control.elem_id, (spec.elem_id, control.elem_id)
    assert view.infotext_fields, "no infotext fields"
    config = demo.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    missing = [s.elem_id for s in CONTROLS if not any(s.elem_id in (i or "") for i in ids)]
    assert not missing, missing
    print(f"gradio {gr.__version__}: FGAT section built, {len(controls)} controls, "
          f"{len(view.infotext_fields)} infotext fields, {len(config['dependencies'])} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
