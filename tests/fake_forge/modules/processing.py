"""Forge's modules/processing.py: A1111 1.10.1's (the fake A1111's file, run in this module's namespace)
with Forge's changes for img2img:

- `process_images_inner` (Forge l.852-1156): the whole generation runs under **`torch.inference_mode()`**
  (l.911), not `torch.no_grad()`; no ldm `ema_scope` and no `model_hijack`; before each batch iteration
  `p.sd_model.forge_objects` is reset to a shallow copy of `forge_objects_original` (l.937) and, after the
  extra networks, of `forge_objects_after_applying_lora` (l.957); the engine holds the comments (l.885-886),
  `p.sample` runs without autocast (l.990). The fake A1111's process_images_inner calls one small function
  for each of these differences, which this file redefines;
- `StableDiffusionProcessingImg2Img.sample` (Forge l.1842-1880, A1111's but for `before_every_sampling`):
  `forge_objects` is reset again right before `process_before_every_sampling` (l.1851), so UNet patches belong on a clone made there; `p.modified_noise`
  replaces the noise when a script sets it (l.1861-1863);
- `StableDiffusionProcessing.modified_noise` (l.253)."""
from pathlib import Path

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "processing.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))

StableDiffusionProcessing.modified_noise = None  # noqa: F821  (l.253)


# process_images_inner (Forge l.852-1156) is A1111's with these differences:
def clear_model_notes(p):  # l.885-886: the engine holds the comments and extra_generation_params
    p.sd_model.comments = []
    p.sd_model.extra_generation_params = {}


def model_notes(p):  # l.964, l.975
    return p.sd_model


def generation_context(p):  # l.911: the whole generation runs under inference mode
    return torch.inference_mode()  # noqa: F821


def reload_model(p):  # l.935-937: each batch iteration starts from the original forge_objects
    sd_models.forge_model_reload()  # noqa: F821
    p.sd_model.forge_objects = p.sd_model.forge_objects_original.shallow_copy()


def model_latent_channels(sd_model):  # l.943
    return sd_model.forge_objects.vae.latent_channels


def after_extra_networks(p):  # l.957: the UNet patches of the extra networks (LoRA) are kept
    p.sd_model.forge_objects = p.sd_model.forge_objects_after_applying_lora.shallow_copy()


def sampling_context():  # l.990: p.sample without an autocast of its own
    return contextlib.nullcontext()  # noqa: F821


def before_every_sampling(p, x, conditioning, unconditional_conditioning):  # img2img sample, l.1851-1863
    p.sd_model.forge_objects = p.sd_model.forge_objects_after_applying_lora.shallow_copy()  # l.1851
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p=p, x=p.init_latent, noise=x, c=conditioning,
                                                uc=unconditional_conditioning)
    if p.modified_noise is not None:  # l.1861-1863
        x = p.modified_noise
        p.modified_noise = None
    return x
