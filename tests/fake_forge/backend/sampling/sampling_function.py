"""Mirrors backend/sampling/sampling_function.py (Forge 2.0.1).

- `calc_cond_uncond_batch` (l.154-289): cond and uncond entries are batched in *reversed* order, so the
  UNet batch is usually [uncond, cond]; `transformer_options["cond_or_uncond"]` (1 = uncond, 0 = cond),
  `["sigmas"]`, `["cond_mark"]`, `["cond_indices"]`, `["uncond_indices"]` are set per call (l.253-257); a
  `model_function_wrapper` receives (apply_model, {input, timestep, c, cond_or_uncond}) (l.270-273).
  Area / mask conditioning and ControlNet are not mirrored.
- `sampling_function_inner` (l.292-322): CFG 1 skips the uncond branch; the CFG combine; post-CFG functions.
- `sampling_function(self, denoiser_params, cond_scale, cond_composition)` (l.325-363): reads x, sigma and the
  conds from the CFG denoiser's params (so cfg_denoiser callbacks that reassign them take effect).
- `sampling_prepare` (l.366-399) loads the UNet through memory management; `sampling_cleanup` (l.402-408).

Test instrumentation: `prepared` / `cleaned` record the UnetPatchers given to those two functions."""
import math

import torch
from backend import memory_management
from backend.operations import cleanup_cache
from backend.sampling.condition import compile_conditions, compile_weighted_conditions

prepared: list = []
cleaned: list = []


def get_area_and_mult(conds, x_in, timestep_in):
    area = (x_in.shape[2], x_in.shape[3], 0, 0)
    strength = conds.get("strength", 1.0)
    input_x = x_in
    mult = torch.ones_like(input_x) * strength
    conditioning = {c: v.process_cond(batch_size=x_in.shape[0], device=x_in.device, area=area)
                    for c, v in conds["model_conds"].items()}
    return dict(input_x=input_x, mult=mult, conditioning=conditioning, area=area)


def compute_cond_mark(cond_or_uncond, sigmas):  # l.129-137: one 0 (cond) / 1 (uncond) per batch row
    cl = int(sigmas.shape[0])
    return torch.Tensor([cx for cx in cond_or_uncond for _ in range(cl)]).to(sigmas)


def compute_cond_indices(cond_or_uncond, sigmas):
    cl = int(sigmas.shape[0])
    cond_indices, uncond_indices = [], []
    for i, cx in enumerate(cond_or_uncond):
        (cond_indices if cx == 0 else uncond_indices).extend(range(i * cl, (i + 1) * cl))
    return cond_indices, uncond_indices


def cond_cat(c_list):
    temp = {}
    for x in c_list:
        for k in x:
            temp.setdefault(k, []).append(x[k])
    return {k: conds[0].concat(conds[1:]) for k, conds in temp.items()}


def calc_cond_uncond_batch(model, cond, uncond, x_in, timestep, model_options):
    out_cond = torch.zeros_like(x_in)
    out_count = torch.ones_like(x_in) * 1e-37
    out_uncond = torch.zeros_like(x_in)
    out_uncond_count = torch.ones_like(x_in) * 1e-37
    COND, UNCOND = 0, 1

    to_run = [(get_area_and_mult(x, x_in, timestep), COND) for x in cond]
    if uncond is not None:
        to_run += [(get_area_and_mult(x, x_in, timestep), UNCOND) for x in uncond]

    while len(to_run) > 0:
        first = to_run[0]
        to_batch_temp = [i for i in range(len(to_run))
                         if to_run[i][0]["input_x"].shape == first[0]["input_x"].shape
                         and to_run[i][0]["conditioning"].keys() == first[0]["conditioning"].keys()
                         and all(to_run[i][0]["conditioning"][k].can_concat(first[0]["conditioning"][k])
                                 for k in first[0]["conditioning"])]
        to_batch_temp.reverse()
        to_batch = to_batch_temp  # free memory is plentiful: everything that can be batched is (l.208-213)

        input_x, mult, c, cond_or_uncond = [], [], [], []
        for x in to_batch:
            o = to_run.pop(x)
            input_x.append(o[0]["input_x"])
            mult.append(o[0]["mult"])
            c.append(o[0]["conditioning"])
            cond_or_uncond.append(o[1])
        batch_chunks = len(cond_or_uncond)
        input_x = torch.cat(input_x)
        c = cond_cat(c)
        timestep_ = torch.cat([timestep] * batch_chunks)

        transformer_options = dict(model_options.get("transformer_options", {}))
        transformer_options["cond_or_uncond"] = cond_or_uncond[:]
        transformer_options["sigmas"] = timestep
        transformer_options["cond_mark"] = compute_cond_mark(cond_or_uncond, timestep)
        transformer_options["cond_indices"], transformer_options["uncond_indices"] = compute_cond_indices(
            cond_or_uncond, timestep)
        c["transformer_options"] = transformer_options

        if "model_function_wrapper" in model_options:
            output = model_options["model_function_wrapper"](
                model.apply_model, {"input": input_x, "timestep": timestep_, "c": c, "cond_or_uncond": cond_or_uncond}
            ).chunk(batch_chunks)
        else:
            output = model.apply_model(input_x, timestep_, **c).chunk(batch_chunks)

        for o in range(batch_chunks):
            if cond_or_uncond[o] == COND:
                out_cond += output[o] * mult[o]
                out_count += mult[o]
            else:
                out_uncond += output[o] * mult[o]
                out_uncond_count += mult[o]

    out_cond /= out_count
    out_uncond /= out_uncond_count
    return out_cond, out_uncond


def sampling_function_inner(model, x, timestep, uncond, cond, cond_scale, model_options={}, seed=None,
                            return_full=False):
    edit_strength = sum(item.get("strength", 1) for item in cond)
    if math.isclose(cond_scale, 1.0) and not model_options.get("disable_cfg1_optimization", False):
        uncond_ = None
    else:
        uncond_ = uncond
    for fn in model_options.get("sampler_pre_cfg_function", []):
        model, cond, uncond_, x, timestep, model_options = fn(model, cond, uncond_, x, timestep, model_options)
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond_, x, timestep, model_options)
    if "sampler_cfg_function" in model_options:
        args = {"cond": x - cond_pred, "uncond": x - uncond_pred, "cond_scale": cond_scale, "timestep": timestep,
                "input": x, "sigma": timestep, "cond_denoised": cond_pred, "uncond_denoised": uncond_pred,
                "model": model, "model_options": model_options}
        cfg_result = x - model_options["sampler_cfg_function"](args)
    elif not math.isclose(edit_strength, 1.0):
        cfg_result = uncond_pred + (cond_pred - uncond_pred) * cond_scale * edit_strength
    else:
        cfg_result = uncond_pred + (cond_pred - uncond_pred) * cond_scale
    for fn in model_options.get("sampler_post_cfg_function", []):
        args = {"denoised": cfg_result, "cond": cond, "uncond": uncond, "model": model,
                "uncond_denoised": uncond_pred, "cond_denoised": cond_pred, "sigma": timestep,
                "model_options": model_options, "input": x}
        cfg_result = fn(args)
    if return_full:
        return cfg_result, cond_pred, uncond_pred
    return cfg_result


def sampling_function(self, denoiser_params, cond_scale, cond_composition):
    unet_patcher = self.inner_model.inner_model.forge_objects.unet
    model = unet_patcher.model
    x = denoiser_params.x
    timestep = denoiser_params.sigma
    uncond = compile_conditions(denoiser_params.text_uncond)
    cond = compile_weighted_conditions(denoiser_params.text_cond, cond_composition)
    model_options = unet_patcher.model_options
    seed = self.p.seeds[0]
    for modifier in model_options.get("conditioning_modifiers", []):
        model, x, timestep, uncond, cond, cond_scale, model_options, seed = modifier(
            model, x, timestep, uncond, cond, cond_scale, model_options, seed)
    return sampling_function_inner(model, x, timestep, uncond, cond, cond_scale, model_options, seed,
                                   return_full=True)


def sampling_prepare(unet, x):
    B, C, H, W = x.shape
    memory_estimation_function = unet.model_options.get("memory_peak_estimation_modifier", unet.memory_required)
    unet_inference_memory = memory_estimation_function([B * 2, C, H, W])
    memory_management.load_models_gpu(models=[unet] + unet.extra_model_patchers_during_sampling,
                                      memory_required=unet_inference_memory,
                                      hard_memory_preservation=unet.extra_preserved_memory_during_sampling)
    prepared.append(unet)


def sampling_cleanup(unet):
    cleanup_cache()
    cleaned.append(unet)
