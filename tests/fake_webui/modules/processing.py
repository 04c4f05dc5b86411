"""Mirrors modules/processing.py (A1111 1.10.1) for img2img.

- `StableDiffusionProcessing` fields and setup (l.135-513): `scripts` / `script_args` setters run the
  scripts' setup() (l.269-294); `comment`, `setup_prompts`, `setup_conds` (l.493-503, prompt_parser),
  `close` (l.404-410).
- `process_images` (l.819-860): before_process, then `process_images_inner` (l.863-1150) in this order:
  seeds, prompts, scripts.process, p.init under no_grad (creates p.sampler and p.init_latent), then per
  batch: before_process_batch, extra networks, process_batch, setup_conds, the infotext for params.txt,
  alpha-schedule override, p.sample, post_sample, VAE decode, postprocess_batch(_list), postprocess_image,
  infotext per image; and postprocess at the very end (not reached when anything raises).
- `StableDiffusionProcessingImg2Img.init` (l.1602-1757; inpainting "Whole picture" and "Only masked"): the
  source pixels (after resize / crop / masked-content fill) are encoded into `init_latent` by
  `images_tensor_to_samples`, a VAE posterior *sample* from the global generator (l.1730); 'Resize mode:
  latent upscale' resizes that latent (l.1733-1734); masked content 'latent noise' / 'latent nothing'
  replace it under the mask (l.1749-1754); and the pixels, as `image * 2 - 1`, go to
  `p.img2img_image_conditioning` (l.1757; l.375-396: zeros for a text-to-image model). `sample`
  (l.1759-1789): noise from p.rng, process_before_every_sampling(x=init_latent, noise=...), then
  `self.sampler.sample_img2img(self, self.init_latent, x, ...)`, then the inpaint blend.
- `create_infotext` (l.705-816, reduced key set; a list value gives each image its item, a callable one is
  called with the function's locals, l.801-809) and `Processed` (l.516-611; `js()` has no comments).
- The inpaint overlay (`apply_overlay`, `uncrop`, l.63-88, used at l.1053-1077): the result is pasted back
  into the source ("Only masked") and the source outside the mask laid over it.
Not mirrored: hires fix, refiner, face restoration, colour correction, saving, grids."""
from __future__ import annotations

import contextlib
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

import modules.shared as shared
from modules import (
    devices, extra_networks, images, infotext_utils, masking, paths, prompt_parser, rng, scripts, sd_models,
    sd_samplers, sd_samplers_common,
)
from modules.sd_hijack import model_hijack
from modules.sd_samplers_common import approximation_indexes, decode_first_stage, images_tensor_to_samples
from modules.shared import opts, state

opt_C = 4
opt_f = 8


def uncrop(image, dest_size, paste_loc):  # l.63-72
    x, y, w, h = paste_loc
    base_image = Image.new("RGBA", dest_size)
    base_image.paste(images.resize_image(1, image, w, h), (x, y))
    return base_image


def apply_overlay(image, paste_loc, overlay):  # l.75-88: the result pasted back into the source
    if overlay is None:
        return image, image.copy()
    if paste_loc is not None:
        image = uncrop(image, (overlay.width, overlay.height), paste_loc)
    original_denoised_image = image.copy()
    image = image.convert("RGBA")
    image.alpha_composite(overlay)
    return image.convert("RGB"), original_denoised_image


def inpaint_overlay(p, i, image):
    """What process_images_inner does to a decoded image after postprocess_image (l.1053-1077, without the
    colour correction and the postprocess_maskoverlay callback): paste it back and lay the source over it."""
    overlay_images = getattr(p, "overlay_images", None)
    overlay = overlay_images[i] if opts.overlay_inpaint and overlay_images and i < len(overlay_images) else None
    return apply_overlay(image, p.paste_to, overlay)[0]


def create_binary_mask(image, round=True):  # l.90-98
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        if round:
            image = image.split()[-1].convert("L").point(lambda x: 255 if x > 128 else 0)
        else:
            image = image.split()[-1].convert("L")
    else:
        image = image.convert("L")
    return image


def get_fixed_seed(seed):  # l.675-688
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except Exception:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def decode_latent_batch(model, batch, target_device=None, check_for_nans=False):  # l.625-672
    samples = []
    for i in range(batch.shape[0]):
        sample = decode_first_stage(model, batch[i:i + 1])[0]
        if target_device is not None:
            sample = sample.to(target_device)
        samples.append(sample)
    return samples


@dataclass(repr=False)
class StableDiffusionProcessing:
    sd_model: object = None
    outpath_samples: str = None
    outpath_grids: str = None
    prompt: str = ""
    negative_prompt: str = ""
    styles: list = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: str = None
    scheduler: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    tiling: bool = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict = None
    eta: float = None
    denoising_strength: float = None
    s_min_uncond: float = None
    s_churn: float = None
    s_tmax: float = None
    s_tmin: float = None
    s_noise: float = None
    override_settings: dict = None
    override_settings_restore_afterwards: bool = True
    disable_extra_networks: bool = False

    scripts_value: Any = field(default=None, init=False)
    script_args_value: Any = field(default=None, init=False)
    scripts_setup_complete: bool = field(default=False, init=False)
    sampler: Any = field(default=None, init=False)
    is_using_inpainting_conditioning: bool = field(default=False, init=False)
    paste_to: tuple = field(default=None, init=False)
    overlay_images: list = field(default=None, init=False)
    is_hr_pass: bool = field(default=False, init=False)
    c: tuple = field(default=None, init=False)
    uc: tuple = field(default=None, init=False)
    rng: Any = field(default=None, init=False)
    step_multiplier: int = field(default=1, init=False)
    color_corrections: list = field(default=None, init=False)
    all_prompts: list = field(default=None, init=False)
    all_negative_prompts: list = field(default=None, init=False)
    all_seeds: list = field(default=None, init=False)
    all_subseeds: list = field(default=None, init=False)
    iteration: int = field(default=0, init=False)
    main_prompt: str = field(default=None, init=False)
    main_negative_prompt: str = field(default=None, init=False)
    prompts: list = field(default=None, init=False)
    negative_prompts: list = field(default=None, init=False)
    seeds: list = field(default=None, init=False)
    subseeds: list = field(default=None, init=False)
    extra_network_data: dict = field(default=None, init=False)
    sd_model_name: str = field(default=None, init=False)
    sd_model_hash: str = field(default=None, init=False)
    sd_vae_name: str = field(default=None, init=False)
    sd_vae_hash: str = field(default=None, init=False)
    is_api: bool = field(default=False, init=False)

    def __post_init__(self):  # l.228-252
        self.comments = {}
        if self.styles is None:
            self.styles = []
        self.sampler_noise_scheduler_override = None
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        self.script_args = self.script_args or {}
        self.token_merging_ratio = 0

    def fill_fields_from_opts(self):  # l.254-259
        self.s_min_uncond = self.s_min_uncond if self.s_min_uncond is not None else opts.s_min_uncond
        self.s_churn = self.s_churn if self.s_churn is not None else opts.s_churn
        self.s_tmin = self.s_tmin if self.s_tmin is not None else opts.s_tmin
        self.s_tmax = (self.s_tmax if self.s_tmax is not None else opts.s_tmax) or float("inf")
        self.s_noise = self.s_noise if self.s_noise is not None else opts.s_noise

    @property
    def sd_model(self):
        return shared.sd_model

    @sd_model.setter
    def sd_model(self, value):
        pass

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self):
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def comment(self, text):
        self.comments[text] = 1

    def img2img_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        # l.375-396: depth, edit, inpainting and unclip models are refused by FGAT; any other model gets the
        # dummy zero conditioning (l.395-396)
        return latent_image.new_zeros(latent_image.shape[0], 5, 1, 1)

    def init(self, all_prompts, all_seeds, all_subseeds):
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def close(self):
        self.sampler = None
        self.c = None
        self.uc = None

    def get_token_merging_ratio(self, for_hr=False):
        return 0

    def setup_prompts(self):  # l.418-438
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]
        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        self.all_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in self.all_prompts]
        self.all_negative_prompts = [shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles)
                                     for x in self.all_negative_prompts]
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    def setup_conds(self):  # l.493-503 (no cond cache)
        prompts = prompt_parser.SdConditioning(self.prompts, width=self.width, height=self.height)
        negative_prompts = prompt_parser.SdConditioning(self.negative_prompts, width=self.width, height=self.height,
                                                        is_negative_prompt=True)
        sampler_config = sd_samplers.find_sampler_config(self.sampler_name)
        total_steps = sampler_config.total_steps(self.steps) if sampler_config else self.steps
        self.step_multiplier = total_steps // self.steps
        with devices.autocast():
            self.uc = prompt_parser.get_learned_conditioning(shared.sd_model, negative_prompts, total_steps)
            self.c = prompt_parser.get_multicond_learned_conditioning(shared.sd_model, prompts, total_steps)

    def parse_extra_network_prompts(self):  # l.508-509
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def save_samples(self):
        return False


class Processed:  # l.516-611
    def __init__(self, p, images_list, seed=-1, info="", subseed=None, index_of_first_image=0, infotexts=None):
        self.images = images_list
        self.prompt = p.prompt
        self.negative_prompt = p.negative_prompt
        self.seed = seed
        self.subseed = subseed
        self.info = info
        self.comments = "".join(f"{comment}\n" for comment in p.comments)
        self.width = p.width
        self.height = p.height
        self.sampler_name = p.sampler_name
        self.cfg_scale = p.cfg_scale
        self.steps = p.steps
        self.batch_size = p.batch_size
        self.denoising_strength = getattr(p, "denoising_strength", None)
        self.extra_generation_params = p.extra_generation_params
        self.index_of_first_image = index_of_first_image
        self.all_prompts = p.all_prompts or [self.prompt]
        self.all_negative_prompts = p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = p.all_seeds or [self.seed]
        self.all_subseeds = p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)

    def js(self):  # l.571-607 (reduced)
        obj = {"prompt": self.all_prompts[0], "all_prompts": self.all_prompts, "seed": self.seed,
               "all_seeds": self.all_seeds, "width": self.width, "height": self.height,
               "sampler_name": self.sampler_name, "cfg_scale": self.cfg_scale, "steps": self.steps,
               "denoising_strength": self.denoising_strength, "extra_generation_params": self.extra_generation_params,
               "infotexts": self.infotexts}
        return json.dumps(obj, default=lambda o: None)


def create_random_tensors(shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0,
                          seed_resize_from_w=0, p=None):  # l.616-618
    return rng.ImageRNG(shape, seeds).next()


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                    use_main_prompt=False, index=None, all_negative_prompts=None):  # l.705-816
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size
    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts
    prompt_text = p.main_prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.main_negative_prompt if use_main_prompt else all_negative_prompts[index]
    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "Schedule type": p.scheduler,
        "CFG scale": p.cfg_scale,
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        "Model hash": p.sd_model_hash,
        "Model": p.sd_model_name,
        "Denoising strength": p.extra_generation_params.get("Denoising strength"),
        "RNG": opts.randn_source if opts.randn_source != "GPU" else None,
        **p.extra_generation_params,
    }
    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**locals())
        except Exception:
            generation_params[key] = None
    generation_params_text = ", ".join(
        [k if k == v else f"{k}: {infotext_utils.quote(v)}" for k, v in generation_params.items() if v is not None])
    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt_text}{negative_prompt_text}\n{generation_params_text}".strip()


def process_images(p):  # l.819-860
    if p.scripts is not None:
        p.scripts.before_process(p)
    stored_opts = {k: opts.data[k] if k in opts.data else opts.get_default(k) for k in p.override_settings.keys()}
    try:
        for k, v in p.override_settings.items():
            opts.set(k, v, is_api=True, run_callbacks=False)
        sd_models.apply_token_merging(p.sd_model, p.get_token_merging_ratio())
        res = process_images_inner(p)
    finally:
        sd_models.apply_token_merging(p.sd_model, 0)
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(opts, k, v)
    return res


# Where Forge's process_images_inner differs from A1111's, one function each (the fake Forge's processing.py,
# which runs this file, redefines them):
def clear_model_notes(p):  # l.896: the model's comments for the infotext start empty
    model_hijack.clear_comments()


def model_notes(p):  # l.968, l.979: who holds the model's comments and extra_generation_params
    return model_hijack


@contextlib.contextmanager
def generation_context(p):  # l.919: the generation runs under no_grad and the ldm model's ema_scope
    with torch.no_grad(), p.sd_model.ema_scope():
        yield


def reload_model(p):  # l.941: before each batch iteration
    sd_models.reload_model_weights()


def model_latent_channels(sd_model):  # l.948
    return getattr(sd_model, "latent_channels", opt_C)


def after_extra_networks(p):  # l.961: nothing after the extra networks in A1111
    pass


def sampling_context():  # l.987: p.sample under autocast, or without it when the UNet needs upcasting
    return devices.without_autocast() if devices.unet_needs_upcast else devices.autocast()


def before_every_sampling(p, x, conditioning, unconditional_conditioning):
    """img2img `sample` (l.1766-1768): the scripts' process_before_every_sampling sees the noise `x`, which is
    what is sampled from (Forge adds to this; the fake Forge's processing.py redefines it)."""
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p=p, x=p.init_latent, noise=x, c=conditioning,
                                                uc=unconditional_conditioning)
    return x


def process_images_inner(p):  # l.863-1150
    devices.torch_gc()
    seed = get_fixed_seed(p.seed)
    subseed = get_fixed_seed(p.subseed)
    p.sd_model_name = shared.sd_model.sd_checkpoint_info.name_for_extra
    p.sd_model_hash = shared.sd_model.sd_model_hash
    clear_model_notes(p)
    p.fill_fields_from_opts()
    p.setup_prompts()
    p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
    p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]

    if p.scripts is not None:
        p.scripts.process(p)

    infotexts = []
    output_images = []
    with generation_context(p):
        with devices.autocast():
            p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        if state.job_count == -1:
            state.job_count = p.n_iter
        for n in range(p.n_iter):
            p.iteration = n
            if state.skipped:
                state.skipped = False
            if state.interrupted or state.stopping_generation:
                break
            reload_model(p)
            p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            p.seeds = p.all_seeds[n * p.batch_size:(n + 1) * p.batch_size]
            p.subseeds = p.all_subseeds[n * p.batch_size:(n + 1) * p.batch_size]
            latent_channels = model_latent_channels(shared.sd_model)
            p.rng = rng.ImageRNG((latent_channels, p.height // opt_f, p.width // opt_f), p.seeds,
                                 subseeds=p.subseeds, subseed_strength=p.subseed_strength,
                                 seed_resize_from_h=p.seed_resize_from_h, seed_resize_from_w=p.seed_resize_from_w)
            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds,
                                               subseeds=p.subseeds)
            if len(p.prompts) == 0:
                break
            p.parse_extra_network_prompts()
            if not p.disable_extra_networks:
                extra_networks.activate(p, p.extra_network_data)
            after_extra_networks(p)
            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            p.setup_conds()
            p.extra_generation_params.update(model_notes(p).extra_generation_params)
            if n == 0:  # l.974-977: params.txt is written here, so the infotext must be complete by now
                with open(os.path.join(paths.data_path, "params.txt"), "w", encoding="utf8") as file:
                    file.write(create_infotext(p, p.prompts, p.seeds, p.subseeds, index=0,
                                               all_negative_prompts=p.negative_prompts))
            for comment in model_notes(p).comments:
                p.comment(comment)
            sd_models.apply_alpha_schedule_override(p.sd_model, p)
            with sampling_context():
                samples_ddim = p.sample(conditioning=p.c, unconditional_conditioning=p.uc, seeds=p.seeds,
                                        subseeds=p.subseeds, subseed_strength=p.subseed_strength, prompts=p.prompts)
            if p.scripts is not None:
                ps = scripts.PostSampleArgs(samples_ddim)
                p.scripts.post_sample(p, ps)
                samples_ddim = ps.samples
            x_samples_ddim = decode_latent_batch(p.sd_model, samples_ddim, target_device=devices.cpu,
                                                 check_for_nans=True)
            x_samples_ddim = torch.stack(x_samples_ddim).float()
            x_samples_ddim = torch.clamp((x_samples_ddim + 1.0) / 2.0, min=0.0, max=1.0)
            del samples_ddim
            state.nextjob()
            if p.scripts is not None:
                p.scripts.postprocess_batch(p, x_samples_ddim, batch_number=n)
                p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
                p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
                batch_params = scripts.PostprocessBatchListArgs(list(x_samples_ddim))
                p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
                x_samples_ddim = batch_params.images

            def infotext(index=0, use_main_prompt=False):
                return create_infotext(p, p.prompts, p.seeds, p.subseeds, use_main_prompt=use_main_prompt,
                                       index=index, all_negative_prompts=p.negative_prompts)

            for i, x_sample in enumerate(x_samples_ddim):
                p.batch_index = i
                x_sample = 255.0 * np.moveaxis(x_sample.cpu().numpy(), 0, 2)
                image = Image.fromarray(x_sample.astype(np.uint8))
                if p.scripts is not None:
                    pp = scripts.PostprocessImageArgs(image)
                    p.scripts.postprocess_image(p, pp)
                    image = pp.image
                image = inpaint_overlay(p, i, image)
                text = infotext(i)
                infotexts.append(text)
                if opts.enable_pnginfo:
                    image.info["parameters"] = text
                output_images.append(image)

    if not infotexts:
        infotexts.append(create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=0))
    res = Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0],
                    subseed=p.all_subseeds[0], infotexts=infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):  # l.1556-1792
    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float = None
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = None
    latent_mask: Image = None

    image_mask: Any = field(default=None, init=False)
    nmask: torch.Tensor = field(default=None, init=False)
    image_conditioning: torch.Tensor = field(default=None, init=False)
    mask_for_overlay: Image = field(default=None, init=False)
    init_latent: torch.Tensor = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        self.image_mask = self.mask
        self.mask = None
        self.initial_noise_multiplier = (opts.initial_noise_multiplier if self.initial_noise_multiplier is None
                                         else self.initial_noise_multiplier)
        if self.mask_blur is not None:
            self.mask_blur_x = self.mask_blur_y = self.mask_blur

    def init(self, all_prompts, all_seeds, all_subseeds):
        self.extra_generation_params["Denoising strength"] = self.denoising_strength
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        crop_region = None
        image_mask = self.image_mask
        if image_mask is not None:
            image_mask = create_binary_mask(image_mask, round=self.mask_round)
            if self.inpainting_mask_invert:
                image_mask = ImageOps.invert(image_mask)
            if self.mask_blur_x > 0 or self.mask_blur_y > 0:  # real: cv2 Gaussian blur per axis (l.1621-1634)
                image_mask = image_mask.filter(ImageFilter.GaussianBlur(max(self.mask_blur_x, self.mask_blur_y)))
                self.extra_generation_params["Mask blur"] = self.mask_blur_x
            if self.inpaint_full_res:  # 'Inpaint area: Only masked' (l.1636-1654)
                self.mask_for_overlay = image_mask
                mask = image_mask.convert("L")
                crop_region = masking.get_crop_region_v2(mask, self.inpaint_full_res_padding)
                if crop_region:
                    crop_region = masking.expand_crop_region(crop_region, self.width, self.height, mask.width,
                                                             mask.height)
                    x1, y1, x2, y2 = crop_region
                    image_mask = images.resize_image(2, mask.crop(crop_region), self.width, self.height)
                    self.paste_to = (x1, y1, x2 - x1, y2 - y1)
                    self.extra_generation_params["Inpaint area"] = "Only masked"
                    self.extra_generation_params["Masked area padding"] = self.inpaint_full_res_padding
                else:  # a blank mask: plain img2img, with a comment
                    crop_region = image_mask = self.mask_for_overlay = None
                    self.inpaint_full_res = False
                    model_hijack.comments.append(
                        'Unable to perform "Inpaint Only mask" because mask is blank, switch to img2img mode.')
            else:
                image_mask = images.resize_image(self.resize_mode, image_mask, self.width, self.height)
                np_mask = np.clip(np.array(image_mask).astype(np.float32) * 2, 0, 255).astype(np.uint8)
                self.mask_for_overlay = Image.fromarray(np_mask)
            self.overlay_images = []
        latent_mask = self.latent_mask if self.latent_mask is not None else image_mask
        imgs = []
        for img in self.init_images:  # l.1668-1705
            image = images.flatten(img, opts.img2img_background_color)
            if crop_region is None and self.resize_mode != 3:
                image = images.resize_image(self.resize_mode, image, self.width, self.height)
            if image_mask is not None:  # the source outside the mask, pasted over the result (l.1682-1688)
                if self.mask_for_overlay.size != image.size:
                    self.mask_for_overlay = images.resize_image(self.resize_mode, self.mask_for_overlay,
                                                                image.width, image.height)
                image_masked = Image.new("RGBa", image.size)
                image_masked.paste(image.convert("RGBA").convert("RGBa"),
                                   mask=ImageOps.invert(self.mask_for_overlay.convert("L")))
                self.overlay_images.append(image_masked.convert("RGBA"))
            if crop_region is not None:
                image = images.resize_image(2, image.crop(crop_region), self.width, self.height)
            if image_mask is not None and self.inpainting_fill != 1:  # real: masking.fill (l.1695-1700)
                blurred = image.filter(ImageFilter.GaussianBlur(16))
                image = Image.composite(blurred, image, latent_mask.convert("L"))
            image = np.moveaxis(np.array(image).astype(np.float32) / 255.0, 2, 0)
            imgs.append(image)
        if len(imgs) == 1:
            batch_images = np.expand_dims(imgs[0], axis=0).repeat(self.batch_size, axis=0)
            if self.overlay_images is not None:
                self.overlay_images = self.overlay_images * self.batch_size
        elif len(imgs) <= self.batch_size:
            self.batch_size = len(imgs)
            batch_images = np.array(imgs)
        else:
            raise RuntimeError(f"bad number of images passed: {len(imgs)}; expecting {self.batch_size} or less")
        image = torch.from_numpy(batch_images)
        image = image.to(shared.device, dtype=devices.dtype_vae)
        self.init_latent = images_tensor_to_samples(image, approximation_indexes.get(opts.sd_vae_encode_method),
                                                    self.sd_model)
        if self.resize_mode == 3:  # l.1733-1734
            self.init_latent = torch.nn.functional.interpolate(self.init_latent, size=(self.height // opt_f,
                                                               self.width // opt_f), mode="bilinear")
        if image_mask is not None:
            latmask = latent_mask.convert("RGB").resize((self.init_latent.shape[3], self.init_latent.shape[2]))
            latmask = np.moveaxis(np.array(latmask, dtype=np.float32), 2, 0) / 255
            latmask = latmask[0]
            if self.mask_round:
                latmask = np.around(latmask)
            latmask = np.tile(latmask[None], (self.init_latent.shape[1], 1, 1))
            self.mask = torch.asarray(1.0 - latmask).to(shared.device).type(devices.dtype)
            self.nmask = torch.asarray(latmask).to(shared.device).type(devices.dtype)
            if self.inpainting_fill == 2:  # l.1749-1751
                self.init_latent = self.init_latent * self.mask + create_random_tensors(
                    self.init_latent.shape[1:], all_seeds[0:self.init_latent.shape[0]]) * self.nmask
                self.extra_generation_params["Masked content"] = "latent noise"
            elif self.inpainting_fill == 3:  # l.1753-1755
                self.init_latent = self.init_latent * self.mask
                self.extra_generation_params["Masked content"] = "latent nothing"
        self.image_conditioning = self.img2img_image_conditioning(image * 2 - 1, self.init_latent, image_mask,
                                                                  self.mask_round)  # l.1757

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        x = self.rng.next()
        if self.initial_noise_multiplier != 1.0:
            self.extra_generation_params["Noise multiplier"] = self.initial_noise_multiplier
            x *= self.initial_noise_multiplier
        x = before_every_sampling(self, x, conditioning, unconditional_conditioning)
        samples = self.sampler.sample_img2img(self, self.init_latent, x, conditioning, unconditional_conditioning,
                                              image_conditioning=self.image_conditioning)
        if self.mask is not None:
            blended_samples = samples * self.nmask + self.init_latent * self.mask
            if self.scripts is not None:
                mba = scripts.MaskBlendArgs(samples, self.nmask, self.init_latent, self.mask, blended_samples)
                self.scripts.on_mask_blend(self, mba)
                blended_samples = mba.blended_latent
            samples = blended_samples
        del x
        devices.torch_gc()
        return samples


__all__ = ["StableDiffusionProcessing", "StableDiffusionProcessingImg2Img", "Processed", "process_images",
           "create_infotext", "sd_samplers_common"]
