"""Mirrors Forge's k_diffusion/external.py: k-diffusion's DiscreteSchedule and the CompVis eps / v denoisers
(l.76-213, the fake A1111's file, run here) and ForgeScheduleLinker (l.41-73): k-diffusion's schedule view of a
Forge predictor: `sigmas` (ascending), `get_sigmas(n)` (t from t_max to 0 by linspace, then t_to_sigma, then a
trailing 0: DiscreteSchedule's code, l.62-67 = l.94-99), `sigma_to_t` / `t_to_sigma` via the predictor. It has no
forward: it cannot be called as A1111's CompVisDenoiser can."""
from pathlib import Path

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "k_diffusion" / "external.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))


class ForgeScheduleLinker(nn.Module):  # noqa: F821
    def __init__(self, predictor):
        super().__init__()
        self.predictor = predictor

    @property
    def sigmas(self):
        return self.predictor.sigmas

    @property
    def log_sigmas(self):
        return self.predictor.sigmas.log()

    @property
    def sigma_min(self):
        return self.predictor.sigma_min

    @property
    def sigma_max(self):
        return self.predictor.sigma_max

    get_sigmas = DiscreteSchedule.get_sigmas  # noqa: F821

    def sigma_to_t(self, sigma, quantize=None):
        return self.predictor.timestep(sigma)

    def t_to_sigma(self, t):
        return self.predictor.sigma(t)
