"""Neo's backend/modules/k_prediction.py: Forge 2's (the fake Forge's file, run here) plus
`rescale_zero_terminal_snr_sigmas` (Neo l.43-60), which processing.py applies for ztsnr checkpoints, and the
flow-model predictors of Neo's other engines (l.211-353; none has `log_sigmas`), with the "const" branches
they take in AbstractPrediction (l.70-102)."""
import math
from pathlib import Path

import torch

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "modules" / "k_prediction.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))


def rescale_zero_terminal_snr_sigmas(sigmas):
    alphas_cumprod = 1 / ((sigmas * sigmas) + 1)
    alphas_bar_sqrt = alphas_cumprod.sqrt()
    alphas_bar_sqrt_0 = alphas_bar_sqrt[0].clone()
    alphas_bar_sqrt_T = alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= alphas_bar_sqrt_T
    alphas_bar_sqrt *= alphas_bar_sqrt_0 / (alphas_bar_sqrt_0 - alphas_bar_sqrt_T)
    alphas_bar = alphas_bar_sqrt**2
    alphas_bar[-1] = 4.8973451890853435e-08
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


# ---------------------------------------------------------------------------------- flow models (Neo l.37-353)
def time_snr_shift(alpha, t):  # l.37-40
    if alpha == 1.0:
        return t
    return alpha * t / (1 + (alpha - 1) * t)


_VP_INPUT, _VP_NOISE = AbstractPrediction.calculate_input, AbstractPrediction.noise_scaling  # noqa: F821 - exec'd


def _calculate_input(self, sigma, noise):  # AbstractPrediction.calculate_input, l.70-75
    return noise if self.prediction_type == "const" else _VP_INPUT(self, sigma, noise)


def _noise_scaling(self, sigma, noise, latent_image, max_denoise=False):  # AbstractPrediction l.86-96
    if self.prediction_type == "const":
        return sigma * noise + (1.0 - sigma) * latent_image
    return _VP_NOISE(self, sigma, noise, latent_image, max_denoise)


AbstractPrediction.calculate_input = _calculate_input  # noqa: F821
AbstractPrediction.noise_scaling = _noise_scaling  # noqa: F821


class _FlowPrediction(AbstractPrediction):  # noqa: F821 - what l.211-353's classes write out each
    sigma_min, sigma_max = Prediction.sigma_min, Prediction.sigma_max  # noqa: F821 - sigmas[0], sigmas[-1]

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return self.shifted(1.0 - percent)


class PredictionFlux(_FlowPrediction):
    """l.241-278 (Flux.1, Chroma): sigmas = diffusers' exponential time shift of t in (0, 1] by mu (its
    `calculate_shift` and `FlowMatchEulerDiscreteScheduler._time_shift_exponential`, inlined); timestep = sigma;
    percent_to_sigma = 1 - percent."""

    def __init__(self, seq_len=4096, base_seq_len=256, max_seq_len=4096, base_shift=0.5, max_shift=1.15,
                 pseudo_timestep_range=10000, mu=None):
        super().__init__(sigma_data=1.0, prediction_type="const")
        if mu is None:
            m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
            mu = seq_len * m + base_shift - m * base_seq_len
        self.mu, self.pseudo_timestep_range = mu, pseudo_timestep_range
        t = torch.arange(1, pseudo_timestep_range + 1, 1) / pseudo_timestep_range
        self.register_buffer("sigmas", math.exp(mu) / (math.exp(mu) + (1 / t - 1)))

    def shifted(self, t):
        return t

    def timestep(self, sigma):
        return sigma

    def sigma(self, timestep):
        return timestep


class PredictionFlux2(_FlowPrediction):
    """l.281-317 (Flux.2 Klein): sigma(t) = flux_time_shift(shift, 1, t), t in (0, 1]; timestep = sigma."""

    def __init__(self, model_config):
        super().__init__(sigma_data=None, prediction_type="const")
        self.shift = model_config.sampling_settings.get("shift", 1.15)
        self.register_buffer("sigmas", self.sigma(torch.arange(1, 10001, 1) / 10000))

    def shifted(self, t):
        return math.exp(self.shift) / (math.exp(self.shift) + (1 / t - 1))

    def timestep(self, sigma):
        return sigma

    def sigma(self, timestep):
        return self.shifted(timestep)


class PredictionDiscreteFlow(_FlowPrediction):
    """l.320-353 (Lumina 2, Qwen-Image, Wan, Z-Image, Anima): sigma(t) = time_snr_shift(shift, t / multiplier);
    timestep = sigma * multiplier."""

    def __init__(self, model_config):
        super().__init__(sigma_data=None, prediction_type="const")
        settings = model_config.sampling_settings
        self.shift, self.multiplier = settings.get("shift", 1.0), settings.get("multiplier", 1000)
        self.register_buffer("sigmas", self.sigma(torch.arange(1, 1001, 1) / 1000 * self.multiplier))

    def shifted(self, t):
        return time_snr_shift(self.shift, t)

    def timestep(self, sigma):
        return sigma * self.multiplier

    def sigma(self, timestep):
        return self.shifted(timestep / self.multiplier)
