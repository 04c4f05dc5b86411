"""Fine-grained Appearance Transfer (Ye et al.) for the Stable Diffusion WebUI: the img2img section.

Thin by design: the UI is in `fgat_webui.ui`, the args in `fgat_webui.args`, the generation lifecycle in
`fgat_webui.run`, the model access in `fgat_webui.backend`, and the method itself in `fgat_core`.
"""

import os
import sys

# The WebUI puts an extension's folder on sys.path only while it imports the script
# (A1111 modules/scripts.py:511-522); keep it there so fgat_core/fgat_webui stay importable afterwards.
_EXT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _EXT_DIR not in sys.path:
    sys.path.insert(0, _EXT_DIR)

from modules import script_callbacks, scripts  # noqa: E402

from fgat_webui import TITLE, preset_store  # noqa: E402
from fgat_webui.run import finish_run, install_run, start_run  # noqa: E402
from fgat_webui.ui import PresetActions, build_ui  # noqa: E402
from fgat_webui.xyz import register_xyz_axes  # noqa: E402


class FGATScript(scripts.Script):
    def title(self):
        return TITLE

    def show(self, is_img2img):
        return scripts.AlwaysVisible if is_img2img else False

    def ui(self, is_img2img):
        view = build_ui(PresetActions(preset_store))
        self.infotext_fields = view.infotext_fields
        self.paste_field_names = []
        return view.controls

    def process(self, p, *args):
        start_run(p, args, preset_store())

    def process_batch(self, p, *args, **kwargs):
        install_run(p)

    def process_before_every_sampling(self, p, *args, **kwargs):
        install_run(p)

    def postprocess(self, p, processed, *args):
        finish_run(p, processed)


def _preset_names():
    return preset_store().names()


# The X/Y/Z plot's axes: now, while the WebUI loads the scripts (its own `scripts/xyz_grid.py` is loaded before
# any extension's, A1111 modules/scripts.py:393-425): with --nowebui the API builds every script's choices
# before the before-UI callbacks run (webui.py:26-38, api.py:253-271). The callback covers a WebUI that loaded
# the X/Y/Z script after this one; registering twice adds nothing.
register_xyz_axes(_preset_names)
script_callbacks.on_before_ui(lambda: register_xyz_axes(_preset_names))
