"""Mirrors modules/script_callbacks.py: global callback lists (l.219-241), registration (l.127-147),
dispatch that reports and swallows a callback's exception (l.14-15, 330-351) and the param classes the
CFG denoiser hands out (l.45-96). Callback ordering by extension metadata is not mirrored."""
import dataclasses
import inspect
import os

from modules import errors


class CFGDenoiserParams:  # l.45-69
    def __init__(self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:  # l.72-84
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:  # l.87-96
    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


class ExtraNoiseParams:  # l.33-42
    def __init__(self, noise, x, xi):
        self.noise = noise
        self.x = x
        self.xi = xi


@dataclasses.dataclass
class ScriptCallback:  # l.120-124
    script: str
    callback: object
    name: str = "unnamed"


callback_map = dict(  # l.219-241
    callbacks_app_started=[], callbacks_model_loaded=[], callbacks_ui_tabs=[], callbacks_ui_train_tabs=[],
    callbacks_ui_settings=[], callbacks_before_image_saved=[], callbacks_image_saved=[], callbacks_extra_noise=[],
    callbacks_cfg_denoiser=[], callbacks_cfg_denoised=[], callbacks_cfg_after_cfg=[], callbacks_before_component=[],
    callbacks_after_component=[], callbacks_image_grid=[], callbacks_infotext_pasted=[], callbacks_script_unloaded=[],
    callbacks_before_ui=[], callbacks_on_reload=[], callbacks_list_optimizers=[], callbacks_list_unets=[],
    callbacks_before_token_counter=[],
)


def add_callback(callbacks, fun, *, name=None, category="unknown", filename=None):  # l.127-147
    if filename is None:
        stack = [x for x in inspect.stack() if x.filename != __file__]
        filename = stack[0].filename if stack else "unknown file"
    callbacks.append(ScriptCallback(filename, fun, f"{os.path.basename(filename)}/{category}/{name or ''}"))


def ordered_callbacks(category):  # l.194-208 (no user ordering)
    return list(callback_map["callbacks_" + category])


def clear_callbacks():  # l.246-250
    for callback_list in callback_map.values():
        callback_list.clear()


def _run(category, *args):
    for c in ordered_callbacks(category):
        try:
            c.callback(*args)
        except Exception:
            errors.report(f"Error executing callback {category} for {c.script}", exc_info=True)


def cfg_denoiser_callback(params):  # l.330-335
    _run("cfg_denoiser", params)


def cfg_denoised_callback(params):  # l.338-343
    _run("cfg_denoised", params)


def cfg_after_cfg_callback(params):  # l.346-351
    _run("cfg_after_cfg", params)


def extra_noise_callback(params):
    _run("extra_noise", params)


def infotext_pasted_callback(infotext, params):  # l.378-383
    _run("infotext_pasted", infotext, params)


def before_ui_callback():  # l.394-399
    _run("before_ui")


def app_started_callback(demo, app):
    _run("app_started", demo, app)


def remove_callbacks_for_function(callback_func):  # l.447-453
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(callback_to_remove)


def _add(category, callback, name=None):
    add_callback(callback_map["callbacks_" + category], callback, name=name, category=category)


def on_app_started(callback, *, name=None):
    _add("app_started", callback, name)


def on_model_loaded(callback, *, name=None):
    _add("model_loaded", callback, name)


def on_ui_settings(callback, *, name=None):
    _add("ui_settings", callback, name)


def on_cfg_denoiser(callback, *, name=None):  # l.523-528
    _add("cfg_denoiser", callback, name)


def on_cfg_denoised(callback, *, name=None):  # l.531-536
    _add("cfg_denoised", callback, name)


def on_cfg_after_cfg(callback, *, name=None):  # l.539-544
    _add("cfg_after_cfg", callback, name)


def on_infotext_pasted(callback, *, name=None):  # l.572-578
    _add("infotext_pasted", callback, name)


def on_before_ui(callback, *, name=None):  # l.588-593
    _add("before_ui", callback, name)


def on_extra_noise(callback, *, name=None):
    _add("extra_noise", callback, name)
