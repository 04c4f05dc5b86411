"""Mirrors backend/sampling/condition.py (Forge 2.0.1): Condition (l.17-36), ConditionCrossAttn (l.45-72,
concatenation pads token lengths to their lcm), compile_conditions (l.91-119: a tensor -> c_crossattn; the
SDXL dict {crossattn, vector} -> c_crossattn + y), compile_weighted_conditions (l.122-142)."""
import math

import torch


def repeat_to_batch_size(tensor, batch_size):
    if tensor.shape[0] > batch_size:
        return tensor[:batch_size]
    if tensor.shape[0] < batch_size:
        return tensor.repeat([math.ceil(batch_size / tensor.shape[0])] + [1] * (len(tensor.shape) - 1))[:batch_size]
    return tensor


def lcm(a, b):
    return abs(a * b) // math.gcd(a, b)


class Condition:
    def __init__(self, cond):
        self.cond = cond

    def _copy_with(self, cond):
        return self.__class__(cond)

    def process_cond(self, batch_size, device, **kwargs):
        return self._copy_with(repeat_to_batch_size(self.cond, batch_size).to(device))

    def can_concat(self, other):
        return self.cond.shape == other.cond.shape

    def concat(self, others):
        return torch.cat([self.cond] + [x.cond for x in others])


class ConditionCrossAttn(Condition):
    def can_concat(self, other):
        s1, s2 = self.cond.shape, other.cond.shape
        if s1 != s2:
            if s1[0] != s2[0] or s1[2] != s2[2]:
                return False
            if lcm(s1[1], s2[1]) // min(s1[1], s2[1]) > 4:
                return False
        return True

    def concat(self, others):
        conds = [self.cond]
        crossattn_max_len = self.cond.shape[1]
        for x in others:
            crossattn_max_len = lcm(crossattn_max_len, x.cond.shape[1])
            conds.append(x.cond)
        out = []
        for c in conds:
            if c.shape[1] < crossattn_max_len:
                c = c.repeat(1, crossattn_max_len // c.shape[1], 1)
            out.append(c)
        return torch.cat(out)


def compile_conditions(cond):
    if cond is None:
        return None
    if isinstance(cond, torch.Tensor):
        return [dict(cross_attn=cond, model_conds=dict(c_crossattn=ConditionCrossAttn(cond)))]
    cross_attn = cond["crossattn"]
    pooled_output = cond["vector"]
    result = dict(cross_attn=cross_attn, pooled_output=pooled_output,
                  model_conds=dict(c_crossattn=ConditionCrossAttn(cross_attn), y=Condition(pooled_output)))
    return [result]


def compile_weighted_conditions(cond, weights):
    transposed = list(map(list, zip(*weights)))
    results = []
    for cond_pre in transposed:
        current_indices = []
        current_weight = 0
        for i, w in cond_pre:
            current_indices.append(i)
            current_weight = w
        if hasattr(cond, "advanced_indexing"):
            feed = cond.advanced_indexing(current_indices)
        elif isinstance(cond, dict):
            feed = {k: v[current_indices] for k, v in cond.items()}
        else:
            feed = cond[current_indices]
        h = compile_conditions(feed)
        h[0]["strength"] = current_weight
        results += h
    return results
