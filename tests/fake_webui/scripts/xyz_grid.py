"""Mirrors scripts/xyz_grid.py (A1111 1.10.1) for one axis: AxisOption and its img2img/txt2img variants
(l.214-235), `axis_options` (l.238-...), apply_field (l.30-34), value parsing by the option's type and
`confirm` before any image is made (l.547-611, csv lists; ranges not mirrored), and the per-cell
`pc = copy(p); opt.apply(pc, x, xs); process_images(pc)` (l.707-728). Loaded by script_loading, so this
module's name is "xyz_grid.py" (what extensions look for in scripts.scripts_data)."""
import csv
from copy import copy
from io import StringIO
from itertools import chain

import gradio as gr

import modules.scripts as scripts
from modules.processing import Processed, process_images


def apply_field(field):
    def fun(p, x, xs):
        setattr(p, field, x)

    return fun


def do_nothing(p, x, xs):
    pass


def format_value_add_label(p, opt, x):
    if type(x) == float:
        x = round(x, 8)
    return f"{opt.label}: {x}"


def csv_string_to_list_strip(data_str):
    return list(map(str.strip, chain.from_iterable(csv.reader(StringIO(data_str), skipinitialspace=True))))


class AxisOption:
    def __init__(self, label, type, apply, format_value=format_value_add_label, confirm=None, cost=0.0, choices=None,
                 prepare=None):
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value
        self.confirm = confirm
        self.cost = cost
        self.prepare = prepare
        self.choices = choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = False


axis_options = [
    AxisOption("Nothing", str, do_nothing),
    AxisOption("Seed", int, apply_field("seed")),
    AxisOption("Steps", int, apply_field("steps")),
    AxisOption("CFG Scale", float, apply_field("cfg_scale")),
    AxisOptionImg2Img("Denoising", float, apply_field("denoising_strength")),
]


class Script(scripts.Script):
    def title(self):
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        self.current_axis_options = [x for x in axis_options if type(x) == AxisOption or x.is_img2img == is_img2img]
        x_type = gr.Dropdown(label="X type", choices=[x.label for x in self.current_axis_options],
                             value=self.current_axis_options[1].label, type="index")
        x_values = gr.Textbox(label="X values", lines=1)
        return [x_type, x_values]

    def run(self, p, x_type, x_values):
        x_opt = self.current_axis_options[x_type]
        xs = [x_opt.type(x) for x in csv_string_to_list_strip(x_values)]
        if x_opt.confirm:
            x_opt.confirm(p, xs)
        results = []
        for x in xs:
            pc = copy(p)
            pc.styles = pc.styles[:]
            x_opt.apply(pc, x, xs)
            results.append(process_images(pc))
        images = [im for r in results for im in r.images]
        infotexts = [t for r in results for t in r.infotexts]
        return Processed(p, images, p.seed, infotexts[0] if infotexts else "", infotexts=infotexts)
