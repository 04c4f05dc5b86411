"""Mirrors modules/lowvram.py is_enabled (never in the fake)."""


def is_enabled(sd_model):
    return False
