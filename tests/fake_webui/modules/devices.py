"""Mirrors modules/devices.py for a CPU fp32 run: autocast() is a null context when dtype is fp32
(devices.py:225-226), so every dtype below is float32."""
import contextlib

import torch

cpu = torch.device("cpu")
device = device_interrogate = device_gfpgan = device_esrgan = device_codeformer = cpu
dtype = dtype_vae = dtype_unet = dtype_inference = torch.float32
unet_needs_upcast = False


def autocast(disable=False):
    return contextlib.nullcontext()


def without_autocast(disable=False):
    return contextlib.nullcontext()


def torch_gc():
    pass


def cond_cast_float(x):
    return x.float() if unet_needs_upcast else x


def cond_cast_unet(x):
    return x.to(dtype_unet) if unet_needs_upcast else x


def test_for_nans(x, where):
    pass
