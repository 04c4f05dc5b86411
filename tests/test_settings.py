"""The one table of settings (`fgat_core.settings`): FGATConfig is built from it and cannot go invalid."""

import json
import math
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from fgat_core.config import FGATConfig
from fgat_core.errors import ConfigError
from fgat_core.infotext import parse_infotext
from fgat_core.settings import (
    SETTING,
    SETTINGS,
    TABLE_BLOCK,
    Inversion,
    MaskSource,
    Mode,
    markdown_table,
    update_markdown,
)

ROOT = Path(__file__).resolve().parents[1]


def test_config_fields_are_the_table_in_order_with_its_defaults_and_types():
    assert [f.name for f in fields(FGATConfig)] == [s.name for s in SETTINGS]
    default = FGATConfig()
    for f in fields(FGATConfig):
        s = SETTING[f.name]
        assert f.default == s.default and getattr(default, f.name) == s.default
        assert f.type == s.kind.__name__  # the annotation is the table's type (the Mode enum for choices)


def test_config_is_frozen():
    c = FGATConfig()
    for name, value in (("guidance_scale", math.nan), ("inversion", "foo"), ("delta", 5.0), ("delta", 0.5)):
        with pytest.raises(FrozenInstanceError):
            setattr(c, name, value)
    assert c == FGATConfig()


@pytest.mark.parametrize("name, value, message", [
    ("guidance_scale", math.nan, "FGATConfig.guidance_scale must be a number, got nan"),
    ("inversion", "foo", "FGATConfig.inversion must be one of direct, null-text, negative-prompt, ddim; got 'foo'"),
    ("delta", 5.0, "FGATConfig.delta must be in [0.0, 1.0], got 5.0"),
    ("steps", 1000, "FGATConfig.steps must be in [1, 999], got 1000"),
    ("window_end", 0.0, "FGATConfig.window_end must be in (0.0, 1.0], got 0.0"),
])
def test_replace_validates_and_names_the_field(name, value, message):
    with pytest.raises(ConfigError) as e:
        FGATConfig().replace(**{name: value})
    assert e.value.field == name and str(e.value) == message


def test_modes_are_coerced_to_their_enum_and_written_as_plain_strings():
    c = FGATConfig(inversion="null-text", mask_source="user")
    assert c.inversion is Inversion.NULL_TEXT and c.mask_source is MaskSource.USER
    assert FGATConfig(inversion=Inversion.DDIM).inversion is Inversion.DDIM
    d = c.to_dict()
    assert type(d["inversion"]) is str and d["inversion"] == "null-text"
    assert json.loads(json.dumps(d)) == d and FGATConfig.from_dict(d) == c
    assert f"{c.inversion} inversion" == "null-text inversion" and repr(c.mask_source) == "'user'"
    for s in SETTINGS:
        if isinstance(s.kind, type) and issubclass(s.kind, Mode):
            assert isinstance(getattr(c, s.name), s.kind)


def test_a_recorded_infotext_of_strings_still_parses_to_enums():
    # an infotext written before the settings became enums (the format is unchanged: JSON strings)
    text = ('delta=0.7; lam=0.2; gamma=0.2; window_start=0.24; window_end=0.44; steps=50; guidance_scale=7.5; '
            'inversion="negative-prompt"; matching="initial"; mask_source="none"; mask_word="cat"; '
            'gamma_on="uncond"; mask_layers="all"; dift_prompt="empty"; target_prompt="a tiger"')
    cfg, extras = parse_infotext(text)
    assert cfg.inversion is Inversion.NEGATIVE_PROMPT and cfg.mask_source is MaskSource.NONE
    assert (cfg.matching, cfg.gamma_on, cfg.mask_layers, cfg.dift_prompt) == ("initial", "uncond", "all", "empty")
    assert extras == {"target_prompt": "a tiger"}


# ---------------------------------------------------------------------------------------------- front ends
def test_the_cli_has_exactly_one_flag_per_setting():
    from fgat_cli.cli import build_parser

    for command in ("transfer", "batch", "presets"):
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        flags = [a for a in sub._actions if a.dest.startswith("cfg_")]
        assert [a.option_strings for a in flags] == [[s.flag] for s in SETTINGS]
        for a, s in zip(flags, SETTINGS, strict=True):
            assert tuple(a.choices or ()) == s.choices and a.help.startswith(s.help)


# the script's positional args as released (an API contract): name, label, kind, default, slider bounds, choices;
# issue 21 changed five defaults (delta, inversion, mask threshold, dilation, layers), added mask layers 'full'
# and appended five controls after the frozen order
POSITIONAL_CONTRACT = [
    ('enabled', 'Fine-grained Appearance Transfer', 'bool', False, None, None, None, ()),
    ('target_image', 'Target image (appearance to transfer)', 'image', None, None, None, None, ()),
    ('target_prompt', 'Target prompt', 'text', '', None, None, None, ()),
    ('mask_word', 'Object word (empty: last word of the prompt)', 'text', '', None, None, None, ()),
    ('mask_source', 'Mask source', 'choice', 'attention', None, None, None, ('attention', 'inpaint mask', 'none')),
    ('delta', 'δ transfer strength', 'float', 0.9, 0.0, 1.0, 0.01, ()),
    ('lam', 'λ latent balance', 'float', 0.2, 0.0, 1.0, 0.01, ()),
    ('gamma', 'γ noise balance', 'float', 0.2, 0.0, 1.0, 0.01, ()),
    ('window_start', 'Window start (% of steps)', 'percent', 24.0, 0, 99, 1, ()),
    ('window_end', 'Window end (% of steps)', 'percent', 44.0, 1, 100, 1, ()),
    ('matching', 'Matching', 'choice', 'progressive', None, None, None, ('progressive', 'initial')),
    ('inversion', 'Inversion', 'choice', 'negative-prompt', None, None, None,
     ('direct', 'null-text', 'negative-prompt', 'ddim')),
    ('dift_ensemble', 'DIFT ensemble', 'int', 1, 1, 32, 1, ()),
    ('diagnostics', 'Diagnostics images', 'bool', False, None, None, None, ()),
    ('mask_threshold', 'Mask threshold', 'float', 0.4, 0.0, 0.95, 0.05, ()),
    ('mask_dilate', 'Mask dilation (latent px)', 'int', 0, 0, 8, 1, ()),
    ('mask_layers', 'Attention layers for the mask', 'choice', 'full', None, None, None, ('quarter', 'all', 'full')),
    ('dift_timestep', 'DIFT timestep', 'int', 261, 0, 999, 1, ()),
    ('dift_prompt', 'DIFT prompt', 'choice', 'own', None, None, None, ('own', 'empty')),
    ('gamma_on', 'γ mixes', 'choice', 'guided', None, None, None, ('guided', 'uncond')),
    ('null_text_steps', 'Null-text iterations', 'int', 10, 1, 100, 1, ()),
    ('null_text_lr', 'Null-text learning rate', 'float', 0.01, 0.0001, 0.1, 0.0001, ()),
    ('null_text_epsilon', 'Null-text early stop', 'float', 1e-05, 0.0, 0.001, 1e-06, ()),
    ('match_chunk', 'Matching chunk (rows)', 'int', 1024, 64, 16384, 64, ()),
    ('target_mask', 'Target-side mask', 'choice', 'restrict', None, None, None, ('none', 'gate', 'restrict')),
    ('target_mask_word', 'Target object word (empty: last word of the target prompt)', 'text', '', None, None, None,
     ()),
    ('background_lock', 'Background lock', 'choice', 'on', None, None, None, ('off', 'on')),
    ('mask_threshold_mode', 'Mask threshold mode', 'choice', 'fixed', None, None, None, ('fixed', 'otsu')),
    ('mask_levels', 'Attention levels for the mask', 'choice', 'all', None, None, None, ('before-window', 'all')),]


def test_webui_controls_keep_the_positional_contract():
    from fgat_webui.args import CONTROLS

    got = [(c.name, c.label, c.kind, c.default, c.minimum, c.maximum, c.step, c.choices) for c in CONTROLS]
    assert got == POSITIONAL_CONTRACT
    assert all(type(c.default) is type(want[3]) for c, want in zip(CONTROLS, POSITIONAL_CONTRACT, strict=True))


def test_webui_has_one_control_per_setting_that_is_not_host_owned_with_the_tables_bounds():
    from fgat_webui.args import CONTROLS, WEBUI_OWNED

    by_name = {c.name: c for c in CONTROLS}
    assert len(by_name) == len(CONTROLS)
    assert [s.name for s in SETTINGS if s.name not in by_name] == list(WEBUI_OWNED) == ["steps", "guidance_scale",
                                                                                         "seed"]
    for s in SETTINGS:
        if s.host_owned:
            continue
        c, spec = by_name[s.name], s.control
        assert (c.label, c.minimum, c.maximum, c.step, c.advanced) == (
            spec.label, spec.minimum, spec.maximum, spec.step, spec.row == "advanced")
        if c.minimum is not None:  # a slider never offers a value the config refuses
            scale = 100 if spec.percent else 1
            assert c.minimum / scale in s.valid and c.maximum / scale in s.valid and c.minimum <= c.default <= c.maximum


def test_xyz_axes_are_the_settings_with_an_axis_and_the_preset():
    from fgat_webui.args import OVERRIDES
    from fgat_webui.xyz import AXES

    assert [(label, name) for label, _, name in AXES] == [
        ("[FGAT] δ transfer strength", "delta"), ("[FGAT] λ latent balance", "lam"),
        ("[FGAT] γ noise balance", "gamma"), ("[FGAT] Window end (%)", "window_end"), ("[FGAT] Preset", "preset")]
    assert list(OVERRIDES) == [s.name for s in SETTINGS if s.xyz] + ["preset"]


# ---------------------------------------------------------------------------------------------- docs
def test_markdown_rows_say_what_the_table_says():
    table = markdown_table("all").splitlines()
    assert table[0] == "| Field | CLI flag | Default | Range | Meaning | WebUI control | X/Y/Z |"
    assert "| `delta` | `--delta` | 0.9 | [0, 1] | δ: transfer weight (Eq. 3) | δ transfer strength | yes |" in table
    assert ("| `inversion` | `--inversion` | `negative-prompt` | `direct`, `null-text`, `negative-prompt`, `ddim` | "
            "how the source is inverted | Inversion |  |") in table
    assert ("| `seed` | `--seed` | 0 | ≥ 0 | seed of the DIFT noise (a host uses its generation seed) | "
            "the WebUI's own |  |") in table
    assert len(table) == 2 + len(SETTINGS)
    common = [row.split(" | ")[0][3:-1] for row in markdown_table("common").splitlines()[2:]]
    assert common == ["delta", "lam", "gamma", "window_start", "window_end", "inversion", "matching", "mask_source",
                      "mask_word", "dift_ensemble", "target_mask", "target_mask_word", "background_lock"]


def test_every_marked_settings_table_in_the_docs_is_the_generated_one():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = []
    for path in docs:
        text = path.read_text(encoding="utf-8")
        assert text.count("<!-- settings-table:") == text.count("<!-- /settings-table -->"), path.name
        for m in TABLE_BLOCK.finditer(text):
            found.append((path.name, m.group(2)))
            assert m.group(3) == markdown_table(m.group(2)), (
                f"{path.name}'s settings-table:{m.group(2)} differs from fgat_core/settings.py: run "
                f"`python -m fgat_core.settings_tables --update {path.relative_to(ROOT)}`")
    assert ("README.md", "all") in found or any(which == "all" for _, which in found)


def test_update_markdown_rewrites_only_the_marked_blocks():
    text = "intro\n<!-- settings-table:common -->\nold\n<!-- /settings-table -->\noutro\n"
    assert update_markdown(text) == ("intro\n<!-- settings-table:common -->\n" + markdown_table("common")
                                     + "<!-- /settings-table -->\noutro\n")
