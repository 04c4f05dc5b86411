"""Mirrors modules/extra_networks.py: `<name:args>` tags are cut from prompts (re_extra_net l.175, parse_prompt l.178-191,
parse_prompts l.194-207); no network is ever activated in the fake."""
import re

re_extra_net = re.compile(r"<(\w+):([^>]+)>")


def parse_prompt(prompt):
    res = {}

    def found(m):
        res.setdefault(m.group(1), []).append(m.group(2).split(":"))
        return ""

    prompt = re.sub(re_extra_net, found, prompt)
    return prompt, res


def parse_prompts(prompts):
    res = []
    extra_data = None
    for prompt in prompts:
        updated_prompt, parsed = parse_prompt(prompt)
        if extra_data is None:
            extra_data = parsed
        res.append(updated_prompt)
    return res, extra_data


def activate(p, extra_network_data):
    pass


def deactivate(p, extra_network_data):
    pass
