"""Mirrors modules/prompt_parser.py without prompt editing ([a:b:when]) and AND: every prompt is one
schedule entry ending at the last step, with weight 1. Data structures and batch reconstruction as the
real ones: SdConditioning l.139-154, get_learned_conditioning l.157-206, Composable/Multicond l.240-267,
reconstruct_cond_batch l.280-304, stack_conds l.307-318, reconstruct_multicond_batch l.321-350. SDXL's dict
conditioning ({"crossattn", "vector"}) is split per prompt and rebuilt as a DictWithShape (l.186-198,
257-277, 280-304, 343-350; Forge 2.0.1 prompt_parser.py:189-198, 271-365 is the same)."""
from collections import namedtuple

import torch

ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class SdConditioning(list):
    def __init__(self, prompts, is_negative_prompt=False, width=None, height=None, copy_from=None):
        super().__init__()
        self.extend(prompts)
        if copy_from is None:
            copy_from = prompts
        self.is_negative_prompt = is_negative_prompt or getattr(copy_from, "is_negative_prompt", False)
        self.width = width or getattr(copy_from, "width", None)
        self.height = height or getattr(copy_from, "height", None)


def get_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    res = []
    cache = {}
    for prompt in prompts:
        cached = cache.get(prompt)
        if cached is not None:
            res.append(cached)
            continue
        conds = model.get_learned_conditioning(SdConditioning([prompt], copy_from=prompts))
        cond = {k: v[0] for k, v in conds.items()} if isinstance(conds, dict) else conds[0]
        schedule = [ScheduledPromptConditioning(steps, cond)]
        cache[prompt] = schedule
        res.append(schedule)
    return res


class ComposableScheduledPromptConditioning:
    def __init__(self, schedules, weight=1.0):
        self.schedules = schedules
        self.weight = weight


class MulticondLearnedConditioning:
    def __init__(self, shape, batch):
        self.shape = shape
        self.batch = batch


def get_multicond_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    learned = get_learned_conditioning(model, prompts, steps, hires_steps, use_old_scheduling)
    return MulticondLearnedConditioning(shape=(len(prompts),),
                                        batch=[[ComposableScheduledPromptConditioning(x, 1.0)] for x in learned])


class DictWithShape(dict):
    def __init__(self, x, shape=None):
        super().__init__()
        self.update(x)

    @property
    def shape(self):
        return self["crossattn"].shape

    def to(self, *args, **kwargs):
        for k in self.keys():
            if isinstance(self[k], torch.Tensor):
                self[k] = self[k].to(*args, **kwargs)
        return self

    def advanced_indexing(self, item):
        return DictWithShape({k: v[item] for k, v in self.items() if isinstance(v, torch.Tensor)})


def reconstruct_cond_batch(c, current_step):
    param = c[0][0].cond
    is_dict = isinstance(param, dict)
    if is_dict:
        res = DictWithShape({k: torch.zeros((len(c),) + v.shape, device=v.device, dtype=v.dtype)
                             for k, v in param.items()})
    else:
        res = torch.zeros((len(c),) + param.shape, device=param.device, dtype=param.dtype)
    for i, cond_schedule in enumerate(c):
        target_index = 0
        for current, entry in enumerate(cond_schedule):
            if current_step <= entry.end_at_step:
                target_index = current
                break
        if is_dict:
            for k, v in cond_schedule[target_index].cond.items():
                res[k][i] = v
        else:
            res[i] = cond_schedule[target_index].cond
    return res


def stack_conds(tensors):
    token_count = max([x.shape[0] for x in tensors])
    for i in range(len(tensors)):
        if tensors[i].shape[0] != token_count:
            last_vector = tensors[i][-1:]
            tensors[i] = torch.vstack([tensors[i], last_vector.repeat([token_count - tensors[i].shape[0], 1])])
    return torch.stack(tensors)


def reconstruct_multicond_batch(c, current_step):
    param = c.batch[0][0].schedules[0].cond
    tensors = []
    conds_list = []
    for composable_prompts in c.batch:
        conds_for_batch = []
        for composable_prompt in composable_prompts:
            target_index = 0
            for current, entry in enumerate(composable_prompt.schedules):
                if current_step <= entry.end_at_step:
                    target_index = current
                    break
            conds_for_batch.append((len(tensors), composable_prompt.weight))
            tensors.append(composable_prompt.schedules[target_index].cond)
        conds_list.append(conds_for_batch)
    if isinstance(tensors[0], dict):
        return conds_list, DictWithShape({k: stack_conds([x[k] for x in tensors]) for k in tensors[0]})
    return conds_list, stack_conds(tensors).to(device=param.device, dtype=param.dtype)
