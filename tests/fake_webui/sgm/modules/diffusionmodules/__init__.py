from . import denoiser_scaling, discretizer  # noqa: F401
