"""comfy/model_sampling.py (ComfyUI 0.33.0): `rescale_zero_terminal_snr_sigmas` (l.5-22), `EPS` (l.30-50:
calculate_input x / sqrt(sigma^2 + 1), calculate_denoised x - out * sigma), `V_PREDICTION` (l.52-55), `X0`
(l.103), `ModelSamplingDiscrete` (l.141-217: the scaled-linear betas' sigma table, zsnr rescale, sigma ->
timestep by argmin over log sigmas)."""
import torch


def rescale_zero_terminal_snr_sigmas(sigmas):
    alphas_cumprod = 1 / ((sigmas * sigmas) + 1)
    alphas_bar_sqrt = alphas_cumprod.sqrt()
    alphas_bar_sqrt_0 = alphas_bar_sqrt[0].clone()
    alphas_bar_sqrt_T = alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= (alphas_bar_sqrt_T)
    alphas_bar_sqrt *= alphas_bar_sqrt_0 / (alphas_bar_sqrt_0 - alphas_bar_sqrt_T)
    alphas_bar = alphas_bar_sqrt**2
    alphas_bar[-1] = 4.8973451890853435e-08
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


def reshape_sigma(sigma, noise_dim):
    if sigma.nelement() == 1:
        return sigma.view(())
    return sigma.view(sigma.shape[:1] + (1,) * (noise_dim - 1))


class EPS:
    def calculate_input(self, sigma, noise):
        sigma = reshape_sigma(sigma, noise.ndim)
        return noise / (sigma ** 2 + self.sigma_data ** 2) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        sigma = reshape_sigma(sigma, model_output.ndim)
        return model_input - model_output * sigma


class V_PREDICTION(EPS):
    def calculate_denoised(self, sigma, model_output, model_input):
        sigma = reshape_sigma(sigma, model_output.ndim)
        return (model_input * self.sigma_data ** 2 / (sigma ** 2 + self.sigma_data ** 2)
                - model_output * sigma * self.sigma_data / (sigma ** 2 + self.sigma_data ** 2) ** 0.5)


class X0(EPS):
    def calculate_denoised(self, sigma, model_output, model_input):
        return model_output


class ModelSamplingDiscrete(torch.nn.Module):
    def __init__(self, model_config=None, zsnr=None):
        super().__init__()
        settings = model_config.sampling_settings if model_config is not None else {}
        if zsnr is None:
            zsnr = settings.get("zsnr", False)
        start, end = settings.get("linear_start", 0.00085), settings.get("linear_end", 0.012)
        betas = torch.linspace(start ** 0.5, end ** 0.5, 1000, dtype=torch.float64) ** 2  # "linear" (ldm util)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.zsnr = zsnr
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        if zsnr:
            sigmas = rescale_zero_terminal_snr_sigmas(sigmas)
        self.set_sigmas(sigmas)
        self.sigma_data = 1.0

    def set_sigmas(self, sigmas):
        self.register_buffer("sigmas", sigmas.float())
        self.register_buffer("log_sigmas", sigmas.log().float())

    def timestep(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma.to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)
