"""Neo's backend/modules/k_prediction.py: Forge 2's (the fake Forge's file, run here) plus
`rescale_zero_terminal_snr_sigmas` (Neo l.43-60), which processing.py applies for ztsnr checkpoints."""
from pathlib import Path

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
