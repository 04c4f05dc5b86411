"""Mirrors modules/rng.py:6-176 with randn_source "CPU": `randn` seeds the global generator (l.11) and
draws from a per-seed generator; ImageRNG.first() gives each seed's first tensor, next() continues."""
import torch

from modules import devices, shared


def manual_seed(seed):  # l.66-73
    torch.manual_seed(seed)


def randn(seed, shape, generator=None):  # l.6-19
    manual_seed(seed)
    return torch.randn(shape, device=devices.cpu, generator=generator).to(devices.device)


def randn_without_seed(shape, generator=None):  # l.47-56
    return torch.randn(shape, device=devices.cpu, generator=generator).to(devices.device)


def randn_like(x):  # l.35-44
    return torch.randn_like(x, device=devices.cpu).to(x.device)


def create_generator(seed):  # l.76-81
    return torch.Generator(devices.cpu).manual_seed(int(seed))


class ImageRNG:  # l.99-169 (seed resize and subseeds not mirrored)
    def __init__(self, shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0, seed_resize_from_w=0):
        self.shape = tuple(map(int, shape))
        self.seeds = seeds
        self.generators = [create_generator(seed) for seed in seeds]
        self.is_first = True

    def first(self):
        xs = [randn(seed, self.shape, generator=g) for seed, g in zip(self.seeds, self.generators)]
        return torch.stack(xs).to(shared.device)

    def next(self):
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([randn_without_seed(self.shape, generator=g) for g in self.generators]).to(shared.device)
