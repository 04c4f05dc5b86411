"""Neo's modules/processing.py: Forge 2's (the fake Forge's file, run in this module's namespace) plus the
zero-terminal-SNR schedule of `process_images_inner` (Neo l.985-997): when `opts.sd_noise_schedule` is
"Zero Terminal SNR" or the checkpoint is a ztsnr one (`p.sd_model.model_config.ztsnr`), the infotext gets
"Noise Schedule", the predictor's sigmas are rescaled (`rescale_zero_terminal_snr_sigmas`) right before
`p.sample(...)` and set back after it *returns* (not in a `finally`: an exception leaves them rescaled).
Here that code wraps the img2img `sample` method, which is what `p.sample` calls."""
from pathlib import Path

from backend.modules.k_prediction import rescale_zero_terminal_snr_sigmas

_FORGE = Path(__file__).resolve().parents[2] / "fake_forge" / "modules" / "processing.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))

_forge_sample = StableDiffusionProcessingImg2Img.sample  # noqa: F821


def _neo_sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
    sigmas_backup = None
    predictor = self.sd_model.forge_objects.unet.model.predictor
    if shared.opts.sd_noise_schedule == "Zero Terminal SNR" or getattr(self.sd_model.model_config, "ztsnr", False):  # noqa: F821
        self.extra_generation_params["Noise Schedule"] = "Zero Terminal SNR"
        sigmas_backup = predictor.sigmas
        predictor.set_sigmas(rescale_zero_terminal_snr_sigmas(predictor.sigmas))
    samples = _forge_sample(self, conditioning, unconditional_conditioning, seeds, subseeds,
                            subseed_strength, prompts)
    if sigmas_backup is not None:
        predictor.set_sigmas(sigmas_backup)
    return samples


StableDiffusionProcessingImg2Img.sample = _neo_sample  # noqa: F821
