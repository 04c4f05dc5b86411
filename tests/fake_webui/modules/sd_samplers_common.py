"""Mirrors modules/sd_samplers_common.py: SamplerData (l.11-19), setup_img2img_steps (l.22-31), the VAE
helpers (l.34-112), store_latent (l.115-120), InterruptedException (l.142-143), TorchHijack (l.205-226) and
the Sampler base (l.229-355): callback_state sets state.sampling_step after each step, launch_sampling
returns the last latent on Interrupt/Skip, initialize resets the denoiser's step counter and hijacks
k-diffusion's `torch` so its randn_like draws from p.rng."""
import inspect
from collections import namedtuple

import torch

import k_diffusion.sampling
from modules import devices, shared
from modules.shared import opts, state

SamplerDataTuple = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])


class SamplerData(SamplerDataTuple):
    def total_steps(self, steps):
        if self.options.get("second_order", False):
            steps = steps * 2
        return steps


def setup_img2img_steps(p, steps=None):
    if opts.img2img_fix_steps or steps is not None:
        requested_steps = (steps or p.steps)
        steps = int(requested_steps / min(p.denoising_strength, 0.999)) if p.denoising_strength > 0 else 0
        t_enc = requested_steps - 1
    else:
        steps = p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
    return steps, t_enc


approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


def samples_to_images_tensor(sample, approximation=None, model=None):
    if model is None:
        model = shared.sd_model
    with torch.no_grad(), devices.without_autocast():
        return model.decode_first_stage(sample.to(model.first_stage_model.dtype))


def decode_first_stage(model, x):
    x = x.to(devices.dtype_vae)
    return samples_to_images_tensor(x, approximation_indexes.get(opts.sd_vae_decode_method, 0), model)


def images_tensor_to_samples(image, approximation=None, model=None):
    """image[0, 1] -> latent, through the posterior *sample* (ldm get_first_stage_encoding)."""
    if model is None:
        model = shared.sd_model
    image = image.to(shared.device, dtype=devices.dtype_vae)
    image = image * 2 - 1
    if len(image) > 1:
        return torch.stack([model.get_first_stage_encoding(model.encode_first_stage(torch.unsqueeze(img, 0)))[0]
                            for img in image])
    return model.get_first_stage_encoding(model.encode_first_stage(image))


def store_latent(decoded):
    state.current_latent = decoded


class InterruptedException(BaseException):
    pass


class TorchHijack:
    def __init__(self, p):
        self.rng = p.rng

    def __getattr__(self, item):
        if item == "randn_like":
            return self.randn_like
        if hasattr(torch, item):
            return getattr(torch, item)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{item}'")

    def randn_like(self, x):
        return self.rng.next()


def model_conditioning_key(sd_model):
    """What `Sampler.__init__` reads as `conditioning_key` (l.249); the fake Forge's file says 'crossattn'."""
    return getattr(sd_model.model, "conditioning_key", "crossattn")


class Sampler:
    def __init__(self, funcname):
        self.funcname = funcname
        self.func = funcname
        self.extra_params = []
        self.sampler_noises = None
        self.stop_at = None
        self.eta = None
        self.config = None
        self.last_latent = None
        self.s_min_uncond = None
        self.s_churn = 0.0
        self.s_tmin = 0.0
        self.s_tmax = float("inf")
        self.s_noise = 1.0
        self.eta_option_field = "eta_ancestral"
        self.eta_infotext_field = "Eta"
        self.eta_default = 1.0
        self.conditioning_key = model_conditioning_key(shared.sd_model)
        self.p = None
        self.model_wrap_cfg = None
        self.sampler_extra_args = None
        self.options = {}

    def callback_state(self, d):
        step = d["i"]
        if self.stop_at is not None and step > self.stop_at:
            raise InterruptedException
        state.sampling_step = step
        shared.total_tqdm.update()

    def launch_sampling(self, steps, func):
        self.model_wrap_cfg.steps = steps
        self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
        state.sampling_steps = steps
        state.sampling_step = 0
        try:
            return func()
        except InterruptedException:
            return self.last_latent

    def number_of_needed_noises(self, p):
        return p.steps

    def initialize(self, p) -> dict:
        self.p = p
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.mask = p.mask if hasattr(p, "mask") else None
        self.model_wrap_cfg.nmask = p.nmask if hasattr(p, "nmask") else None
        self.model_wrap_cfg.step = 0
        self.model_wrap_cfg.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.eta = p.eta if p.eta is not None else getattr(opts, self.eta_option_field, 0.0)
        self.s_min_uncond = getattr(p, "s_min_uncond", 0.0)
        k_diffusion.sampling.torch = TorchHijack(p)
        extra_params_kwargs = {}
        for param_name in self.extra_params:
            if hasattr(p, param_name) and param_name in inspect.signature(self.func).parameters:
                extra_params_kwargs[param_name] = getattr(p, param_name)
        if "eta" in inspect.signature(self.func).parameters:
            if self.eta != self.eta_default:
                p.extra_generation_params[self.eta_infotext_field] = self.eta
            extra_params_kwargs["eta"] = self.eta
        return extra_params_kwargs

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        raise NotImplementedError()

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        raise NotImplementedError()

    def launch_img2img(self, p, x, xi, conditioning, unconditional_conditioning, image_conditioning, t_enc,
                       schedule: tuple[str, torch.Tensor]):
        """The end of every sampler's `sample_img2img` (sd_samplers_kdiffusion.py:152-188,
        sd_samplers_timesteps.py:117-139; the same lines in Forge's files): `initialize`, the schedule
        (`schedule`: ("sigmas", sigma_sched) or ("timesteps", timesteps_sched)) passed when `self.func` takes
        it, `init_latent`, the sampler's extra args, `self.func` run under launch_sampling for t_enc + 1 steps
        from `xi`, the infotext."""
        extra_params_kwargs = self.initialize(p)
        if schedule[0] in inspect.signature(self.func).parameters:
            extra_params_kwargs[schedule[0]] = schedule[1]
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning,
                                   "uncond": unconditional_conditioning, "cond_scale": p.cfg_scale,
                                   "s_min_uncond": self.s_min_uncond}
        samples = self.launch_sampling(t_enc + 1, lambda: self.func(
            self.model_wrap_cfg, xi, extra_args=self.sampler_extra_args, disable=False, callback=self.callback_state,
            **extra_params_kwargs))
        self.add_infotext(p)
        return samples

    def add_infotext(self, p):
        if self.model_wrap_cfg.padded_cond_uncond:
            p.extra_generation_params["Pad conds"] = True
