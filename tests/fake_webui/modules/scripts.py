"""Mirrors modules/scripts.py (A1111 1.10.1): the Script API, script loading and the ScriptRunner.

- Script attributes and hook methods: l.52-348; AlwaysVisible l.14; the *Args classes l.16-44.
- `basedir()` is the script's extension folder only while its file is imported (l.366-374, 509-523), and
  the extension folder is on sys.path only then (l.511-522).
- `ScriptRunner` (l.542-1025): `create_script_ui` gives each script its args_from/args_to slice of the
  UI inputs (l.634-687, slot 0 is the selectable-script dropdown, l.705-716); every hook runs the
  always-on scripts with `p.script_args[args_from:args_to]` and reports-and-swallows their exceptions
  (l.820-985). `ordered_scripts` keeps list order (user/extension ordering not mirrored).
"""
import inspect
import os
import sys
from collections import namedtuple

import gradio as gr

from modules import errors, paths, script_callbacks, script_loading, shared

AlwaysVisible = object()


class MaskBlendArgs:  # l.16-26
    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


class PostSampleArgs:  # l.28-30
    def __init__(self, samples):
        self.samples = samples


class PostprocessImageArgs:  # l.32-34
    def __init__(self, image):
        self.image = image


class PostprocessBatchListArgs:  # l.42-44
    def __init__(self, images):
        self.images = images


class Script:  # l.52-348
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        pass

    def on_mask_blend(self, p, mba, *args):
        pass

    def post_sample(self, p, ps, *args):
        pass

    def postprocess_image(self, p, pp, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def elem_id(self, item_id):  # l.334-342
        import re

        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"

    def before_hr(self, p, *args):
        pass


current_basedir = paths.script_path


def basedir():  # l.369-374
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
scripts_data = []
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])


def load_scripts(script_files):
    """l.487-530, over an explicit list of ScriptFile (the real one lists scripts/ and extensions/)."""
    global current_basedir, scripts_txt2img, scripts_img2img
    scripts_data.clear()
    script_callbacks.clear_callbacks()
    syspath = sys.path
    for scriptfile in script_files:
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir] + sys.path
            current_basedir = scriptfile.basedir
            module = script_loading.load_module(scriptfile.path)
            for script_class in module.__dict__.values():
                if inspect.isclass(script_class) and issubclass(script_class, Script) and script_class is not Script:
                    scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
            raise
        finally:
            sys.path = syspath
            current_basedir = paths.script_path
    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):  # l.533-539
    try:
        return func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
    return default


class ScriptRunner:
    def __init__(self):  # l.543-551
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.titles = []
        self.title_map = {}
        self.infotext_fields = []
        self.paste_field_names = []
        self.inputs = [None]

    def initialize_scripts(self, is_img2img):  # l.578-612
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        for script_data in scripts_data:
            script = script_data.script_class()
            script.filename = script_data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)

    def create_script_ui(self, script):  # l.634-642
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            self.create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def create_script_ui_inner(self, script):  # l.644-687
        from modules.api import models as api_models

        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        script.controls = controls
        if controls is None:
            return
        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()
        api_args = []
        for control in controls:
            control.custom_script_source = os.path.basename(script.filename)
            arg_info = api_models.ScriptArg(label=control.label or "")
            for field in ("value", "minimum", "maximum", "step"):
                v = getattr(control, field, None)
                if v is not None:
                    setattr(arg_info, field, v)
            choices = getattr(control, "choices", None)
            if choices is not None:
                arg_info.choices = [x[0] if isinstance(x, tuple) else x for x in choices]
            api_args.append(arg_info)
        script.api_info = api_models.ScriptInfo(name=script.name, is_img2img=script.is_img2img,
                                                is_alwayson=script.alwayson, args=api_args)
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None):  # l.689-703
        if scriptlist is None:
            scriptlist = self.alwayson_scripts
        for script in scriptlist:
            if script.alwayson and script.section != section:
                continue
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def prepare_ui(self):  # l.705-706
        self.inputs = [None]

    def setup_ui(self):  # l.708-766 (script visibility events not mirrored)
        all_titles = [wrap_call(script.title, script.filename, "title") or script.filename for script in self.scripts]
        self.title_map = {title.lower(): script for title, script in zip(all_titles, self.scripts)}
        self.titles = [wrap_call(script.title, script.filename, "title") for script in self.selectable_scripts]
        self.setup_ui_for_section(None)
        dropdown = gr.Dropdown(label="Script", elem_id="script_list", choices=["None"] + self.titles, value="None",
                               type="index")
        self.inputs[0] = dropdown
        self.setup_ui_for_section(None, self.selectable_scripts)
        return self.inputs

    def run(self, p, *args):  # l.768-784
        script_index = args[0]
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        return script.run(p, *args[script.args_from:script.args_to])

    def ordered_scripts(self, method_name):  # l.786-818: scripts overriding the method, list order
        return [s for s in self.alwayson_scripts
                if getattr(s.__class__, method_name, None) is not getattr(Script, method_name, None)]

    def _each(self, method_name, p, *extra, **kwargs):
        for script in self.ordered_scripts(method_name):
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                getattr(script, method_name)(p, *extra, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {method_name}: {script.filename}", exc_info=True)

    def before_process(self, p):  # l.820-826
        self._each("before_process", p)

    def process(self, p):  # l.828-834
        self._each("process", p)

    def process_before_every_sampling(self, p, **kwargs):  # l.836-842
        self._each("process_before_every_sampling", p, **kwargs)

    def before_process_batch(self, p, **kwargs):  # l.844-850
        self._each("before_process_batch", p, **kwargs)

    def process_batch(self, p, **kwargs):  # l.860-866
        self._each("process_batch", p, **kwargs)

    def postprocess(self, p, processed):  # l.868-874
        self._each("postprocess", p, processed)

    def postprocess_batch(self, p, images, **kwargs):  # l.876-882
        self._each("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp, **kwargs):  # l.884-890
        self._each("postprocess_batch_list", p, pp, **kwargs)

    def post_sample(self, p, ps):  # l.892-898
        self._each("post_sample", p, ps)

    def on_mask_blend(self, p, mba):  # l.900-906
        self._each("on_mask_blend", p, mba)

    def postprocess_image(self, p, pp):  # l.908-914
        self._each("postprocess_image", p, pp)

    def script(self, title):  # l.958-959
        return self.title_map.get(title.lower())

    def setup_scrips(self, p, *, is_ui=True):  # l.987-996
        for script in self.ordered_scripts("setup"):
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script.setup(p, *p.script_args[script.args_from:script.args_to])
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)


scripts_txt2img: ScriptRunner = None
scripts_img2img: ScriptRunner = None
scripts_current: ScriptRunner = None
