"""The one table of settings (`fgat_core.settings`): FGATConfig is built from it and cannot go invalid."""

import json
import math
from dataclasses import FrozenInstanceError, fields

import pytest

from fgat_core.config import FGATConfig
from fgat_core.errors import ConfigError
from fgat_core.infotext import parse_infotext
from fgat_core.settings import SETTING, SETTINGS, Inversion, MaskSource, Mode


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
