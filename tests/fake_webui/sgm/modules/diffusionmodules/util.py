"""Mirrors sgm/modules/diffusionmodules/util.py:206- timestep_embedding (cos first, then sin): Forge's
backend/nn/unet.py has the same function, so it lives once, in `fake_common.unet_layout`."""
from fake_common.unet_layout import timestep_embedding  # noqa: F401
