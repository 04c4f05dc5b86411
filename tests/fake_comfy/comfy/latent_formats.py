"""comfy/latent_formats.py (ComfyUI 0.33.0): `LatentFormat.process_in/process_out` (l.4-22, raw VAE latent <->
the model's space: (x - shift) * scale), `SD15` (l.24-27, scale 0.18215) and `SDXL` (scale 0.13025, l.37). The
fake takes the tiny VAE's own scaling factor."""


class LatentFormat:
    scale_factor = 1.0
    latent_channels = 4

    def process_in(self, latent):
        return latent * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor


class SD15(LatentFormat):
    def __init__(self, scale_factor=0.18215):
        self.scale_factor = scale_factor


class SDXL(LatentFormat):
    scale_factor = 0.13025
