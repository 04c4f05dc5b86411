"""Mirrors modules/sd_unet.py apply_unet (no alternative UNets in the fake)."""


def apply_unet(option=None):
    pass
