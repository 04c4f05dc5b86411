"""Mirrors modules/sd_samplers.py:11-44: all_samplers, find_sampler_config, create_sampler. The fake Forge uses
this file too: Forge's modules/sd_samplers.py has the same three (l.11-45; its LCM and alternative samplers and
create_sampler's `no_sdxl` check are not mirrored)."""
from modules import sd_samplers_common, sd_samplers_kdiffusion, sd_samplers_timesteps

all_samplers = [*sd_samplers_kdiffusion.samplers_data_k_diffusion, *sd_samplers_timesteps.samplers_data_timesteps]
all_samplers_map = {x.name: x for x in all_samplers}


def find_sampler_config(name):
    if name is not None:
        return all_samplers_map.get(name, None)
    return all_samplers[0]


def create_sampler(name, model):
    config = find_sampler_config(name)
    assert config is not None, f"bad sampler name: {name}"
    sampler = config.constructor(model)
    sampler.config = config
    return sampler


def fix_p_invalid_sampler_and_scheduler(p):
    pass

