"""Mirrors the img2img path of modules/api/api.py (A1111 1.10.1).

- `decode_base64_to_image` l.77-99 (URLs refused as with api_enable_requests off);
- `script_name_to_index` l.36-40: case-insensitive match on script.title();
- `init_default_script_args` l.315-333: a fresh gr.Blocks() and each script's ui() called again, its
  components' `.value` as the defaults;
- `init_script_args` l.335-361: alwayson_scripts[title]["args"] copied by position into args_from..args_to;
  extra args ignored, missing ones keep the defaults; no gradio preprocessing (raw JSON values);
- `apply_infotext` l.363-429, the part that reads script args: each script infotext field's value, coerced to
  the type of its component's value (`target_type(value)`: an int slider truncates a float), becomes the
  script arg at that component's index; `init_script_args` puts them in before the alwayson args. The
  request's own fields (prompt, steps, ...) are not read from the infotext here.
- `Api.__init__` l.253-271: the script args' defaults are computed **once**, when the API is created
  (`init_default_script_args`, which calls every script's `ui()` again: X/Y/Z's `current_axis_options` is
  rebuilt there); with `--nowebui` (webui.py l.26-38) that happens *before* `before_ui_callback`, and
  `ui.create_ui()` runs first when the runners hold no scripts yet (the harness passes its UI build);
- `img2imgapi` l.492-565, and the middleware's error response `handle_exception` l.167-182: the body says
  `errors: str(e)`, the status is the exception's `status_code` (500 without one), and any exception that
  is not fastapi's `HTTPException` prints "API error: ..." and its traceback to the console (l.172-178;
  rich's `print_exception`, max_frames=2: 60-90 lines in the real server). Forge's API-only app answers
  differently (tests/fake_forge/webui.py).
"""
import base64
import io
import json
import sys
import traceback

import gradio as gr
from fastapi.exceptions import HTTPException  # l.14
from PIL import Image

from modules import infotext_utils, processing, scripts, shared


def decode_base64_to_image(encoding):
    if encoding.startswith("http://") or encoding.startswith("https://"):
        raise HTTPException(status_code=500, detail="Requests not allowed")
    if encoding.startswith("data:image/"):
        encoding = encoding.split(";")[1].split(",")[1]
    try:
        return Image.open(io.BytesIO(base64.b64decode(encoding)))
    except Exception as e:
        raise HTTPException(status_code=500, detail="Invalid encoded image") from e


def encode_pil_to_base64(image):
    with io.BytesIO() as output:
        image.save(output, format="PNG")
        return base64.b64encode(output.getvalue())


def script_name_to_index(name, scripts_list):
    try:
        return [script.title().lower() for script in scripts_list].index(name.lower())
    except Exception as e:
        raise HTTPException(status_code=422, detail=f"Script '{name}' not found") from e


def get_script(script_name, script_runner):
    if script_name is None or script_name == "":
        return None
    return script_runner.scripts[script_name_to_index(script_name, script_runner.scripts)]


def init_default_script_args(script_runner):
    last_arg_index = 1
    for script in script_runner.scripts:
        if last_arg_index < script.args_to:
            last_arg_index = script.args_to
    script_args = [None] * last_arg_index
    script_args[0] = 0
    with gr.Blocks():
        for script in script_runner.scripts:
            if script.ui(script.is_img2img):
                ui_default_values = []
                for elem in script.ui(script.is_img2img):
                    ui_default_values.append(elem.value)
                script_args[script.args_from:script.args_to] = ui_default_values
    return script_args


def apply_infotext(infotext, script_runner, mentioned_script_args):
    if not infotext:
        return {}
    params = infotext_utils.parse_generation_parameters(infotext)
    indexes = {v: i for i, v in enumerate(script_runner.inputs)}
    for component, key in script_runner.infotext_fields:
        if component not in indexes:
            continue
        value = key(params) if callable(key) else params.get(key)
        if value is None:
            continue
        target_type = type(component.value)
        if target_type is type(None):
            continue
        if isinstance(value, dict) and value.get("__type__") == "generic_update":
            value = value.get("value")
        if value is not None and not isinstance(value, target_type):
            value = target_type(value)
        mentioned_script_args[indexes[component]] = value
    return params


def init_script_args(alwayson_scripts, default_script_args, script_runner, input_script_args=None):
    script_args = default_script_args.copy()
    for index, value in (input_script_args or {}).items():
        script_args[index] = value
    for name in (alwayson_scripts or {}).keys():
        script = get_script(name, script_runner)
        if script is None:
            raise HTTPException(status_code=422, detail=f"always on script {name} not found")
        if script.alwayson is False:
            raise HTTPException(status_code=422, detail="Cannot have a selectable script in the always on scripts params")
        if "args" in alwayson_scripts[name]:
            args = alwayson_scripts[name]["args"]
            for idx in range(0, min((script.args_to - script.args_from), len(args))):
                script_args[script.args_from + idx] = args[idx]
    return script_args


class Api:
    """l.200-271 for img2img: the default script args, computed once here."""

    def __init__(self, create_ui=None):
        runner = scripts.scripts_img2img
        if not runner.scripts and create_ui is not None:  # l.259-260: ui.create_ui()
            create_ui()
        if not runner.scripts:
            runner.initialize_scripts(True)
        self.default_script_arg_img2img = init_default_script_args(runner)

    def img2imgapi(self, payload):
        return img2imgapi(payload, self.default_script_arg_img2img)


def img2imgapi(payload, default_script_args=None):
    """POST /sdapi/v1/img2img with a JSON body (a dict); returns the response dict or raises."""
    req = dict(payload)
    init_images = req.pop("init_images", None)
    if init_images is None:
        raise HTTPException(status_code=404, detail="Init image not found")
    mask = req.pop("mask", None)
    alwayson = req.pop("alwayson_scripts", {})
    req.pop("send_images", None)
    req.pop("save_images", None)
    script_runner = scripts.scripts_img2img
    infotext_script_args = {}
    apply_infotext(req.pop("infotext", None), script_runner, infotext_script_args)
    if default_script_args is None:
        default_script_args = init_default_script_args(script_runner)
    script_args = init_script_args(alwayson, default_script_args, script_runner,
                                   input_script_args=infotext_script_args)
    p = processing.StableDiffusionProcessingImg2Img(mask=decode_base64_to_image(mask) if mask else None, **req)
    p.init_images = [decode_base64_to_image(x) for x in init_images]
    p.is_api = True
    p.scripts = script_runner
    try:
        shared.state.begin(job="scripts_img2img")
        p.script_args = tuple(script_args)
        processed = processing.process_images(p)
    finally:
        shared.state.end()
        p.close()
    return {"images": [encode_pil_to_base64(x).decode() for x in processed.images], "parameters": payload,
            "info": processed.js()}


def handle_exception(e):
    """The API middleware's error body and status (l.167-182), and what it prints to the console."""
    err = {"error": type(e).__name__, "detail": vars(e).get("detail", ""), "body": vars(e).get("body", ""),
           "errors": str(e)}
    if not isinstance(e, HTTPException):  # l.172: "do not print backtrace on known httpexceptions"
        print(f"API error: POST: http://127.0.0.1:7861/sdapi/v1/img2img {err}", file=sys.stderr)
        traceback.print_exception(e, file=sys.stderr)
    return vars(e).get("status_code", 500), json.loads(json.dumps(err))
