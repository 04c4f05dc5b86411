"""Start the fake Forge Neo for a test: `FakeForge`'s driver (img2img through the UI path or the API, infotext
paste, leftover checks) with the fake Neo's root first on sys.path.

`ztsnr=True` marks the checkpoint as a zero-terminal-SNR one, as Neo's loader does for a file with a `ztsnr`
key (`backend/loader.py:671`: `guess.ztsnr = "ztsnr" in sd`)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

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


def flow_predictor(engine: str):
    """The predictor Neo's engine class `engine` builds (backend/diffusion_engine/<file>, line), with the
    `sampling_settings` of its huggingface_guess config (modules_forge/packages/huggingface_guess/model_list.py,
    line): Neo's own flow-model classes, none of which has `log_sigmas`."""
    from backend.modules import k_prediction as k

    def config(**sampling_settings):
        return SimpleNamespace(sampling_settings=sampling_settings)

    predictors = {
        "Flux": lambda: k.PredictionFlux(seq_len=4096, base_seq_len=256, max_seq_len=4096, base_shift=0.5,
                                         max_shift=1.15),  # flux.py:34 (dev; schnell: mu=1.0, l.32)
        "Chroma": lambda: k.PredictionFlux(mu=1.0),  # chroma.py:23
        "Flux2": lambda: k.PredictionFlux2(config(shift=2.02)),  # flux2.py:30; Flux2K4B, model_list.py:293
        "Lumina2": lambda: k.PredictionDiscreteFlow(config(multiplier=1.0, shift=6.0)),  # lumina.py:24; l.374
        "QwenImage": lambda: k.PredictionDiscreteFlow(config(multiplier=1.0, shift=1.15)),  # qwen.py:33; l.508
        "Wan": lambda: k.PredictionDiscreteFlow(config(shift=8.0)),  # wan.py:30; WAN21_T2V, l.464
        "ZImage": lambda: k.PredictionDiscreteFlow(config(multiplier=1.0, shift=3.0)),  # zimage.py:24; l.412
        "Anima": lambda: k.PredictionDiscreteFlow(config(multiplier=1.0, shift=3.0)),  # anima.py:25; l.438
    }
    return predictors[engine]()


def fake_neo(pipe, **kwargs) -> FakeNeo:
    """The fake Neo around `pipe`, started by `with fake_neo(pipe) as neo:` and stopped on leaving."""
    return FakeNeo(pipe, **kwargs)
