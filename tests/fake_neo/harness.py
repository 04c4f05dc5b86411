"""Start the fake Forge Neo for a test: `FakeForge`'s driver (img2img through the UI path or the API, infotext
paste, leftover checks) with the fake Neo's root first on sys.path.

`ztsnr=True` marks the checkpoint as a zero-terminal-SNR one, as Neo's loader does for a file with a `ztsnr`
key (`backend/loader.py:671`: `guess.ztsnr = "ztsnr" in sd`)."""
from __future__ import annotations

from pathlib import Path

from fake_forge.harness import FakeForge

NEO_ROOT = Path(__file__).resolve().parent


class FakeNeo(FakeForge):
    root = NEO_ROOT

    def __init__(self, pipe, *, ztsnr: bool = False, **kwargs) -> None:
        self.ztsnr = ztsnr
        super().__init__(pipe, **kwargs)

    def _load_model(self) -> None:
        super()._load_model()
        self.sd_model.model_config.ztsnr = self.ztsnr

    def model_alphas_cumprod(self):
        """a_t the generation samples with (float64): 1 / (1 + sigma^2) of the predictor's sigmas, rescaled to
        zero terminal SNR as Neo does around `p.sample` for a ztsnr checkpoint or schedule."""
        from backend.modules.k_prediction import rescale_zero_terminal_snr_sigmas

        sigmas = self.unet_patcher.model.predictor.sigmas
        if self.ztsnr or self.shared.opts.sd_noise_schedule == "Zero Terminal SNR":
            sigmas = rescale_zero_terminal_snr_sigmas(sigmas)
        return 1.0 / (1.0 + sigmas.double() ** 2)


def fake_neo(pipe, **kwargs) -> FakeNeo:
    """The fake Neo around `pipe`, started by `with fake_neo(pipe) as neo:` and stopped on leaving."""
    return FakeNeo(pipe, **kwargs)
