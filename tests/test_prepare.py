"""The preparation layer every front end shares (fgat_core.prepare): value parsers, the default mask word, the
word's location among host token ids, and `check_request`'s typed errors (`field` and `problem`, which the CLI
renders with its flags and the WebUI words its own way)."""

import pytest
from PIL import Image

from fgat_core.config import FGATConfig
from fgat_core.errors import ConfigError, InputError, flag_name
from fgat_core.prepare import (
    LENIENT_BOOLS,
    Request,
    check_request,
    default_mask_word,
    locate_word_ids,
    parse_bool,
    parse_number,
    parse_text,
)

TARGET = Image.new("RGB", (64, 64), (10, 20, 30))


@pytest.mark.parametrize(("value", "expected"), [(True, True), (0, False), (" TRUE ", True), ("false", False)])
def test_parse_bool_takes_bools_zero_one_and_the_words(value, expected):
    assert parse_bool(value, "x") is expected


def test_parse_bool_takes_yes_and_on_only_where_asked():
    with pytest.raises(ValueError, match=r"'enabled' must be true or false, got 'yes'"):
        parse_bool("yes", "'enabled'")
    assert parse_bool("yes", "transfer", LENIENT_BOOLS) is True
    assert parse_bool("off", "transfer", LENIENT_BOOLS) is False


def test_parse_number_and_text():
    assert parse_number("0.5", "delta", integer=False) == 0.5
    assert parse_number(3.0, "steps", integer=True) == 3 and isinstance(parse_number(3.0, "s", integer=True), int)
    for bad, message in ((True, "must be a number, got True"), (float("nan"), "must be a number, got nan"),
                         ("x" * 500, r"must be a number, got 'x+…\(502 characters\)"), (2.5, "whole number")):
        with pytest.raises(ValueError, match=message):
            parse_number(bad, "n", integer=True)
    assert parse_text(None, "prompt") == ""
    with pytest.raises(ValueError, match="prompt must be text, got int"):
        parse_text(5, "prompt")


@pytest.mark.parametrize(("prompt", "word"), [("a photo of a cat", "cat"), ("a ((cat:1.3)), 4k", "cat"),
                                              ("Cat, 2", "Cat"), ("!!! 42", None), ("", None)])
def test_the_default_mask_word_is_the_last_word_with_letters(prompt, word):
    assert default_mask_word(prompt) == word


def test_locate_word_ids_finds_every_whole_word_occurrence():
    #            <|start|>  a   cat</w>  bob  cat</w>  cat</w>
    ids = [0, 1, 7, 5, 7, 7]
    texts = ["<|startoftext|>", "a</w>", "cat</w>", "bob", "cat</w>", "cat</w>"]
    assert locate_word_ids(ids, [7], texts) == [2, 5]  # 'cat' in 'bobcat' (position 4) is not the word
    assert locate_word_ids(ids, [7]) == [2, 4, 5]  # without token texts every match counts
    assert locate_word_ids(ids, [9], texts) == [] and locate_word_ids(ids, [], texts) == []


def test_check_request_returns_the_window_and_calls_locate_per_distinct_prompt():
    seen = []
    window = check_request(Request(FGATConfig(steps=50), ["a cat", "a cat", "a dog"], TARGET),
                           lambda prompt, word: seen.append((prompt, word)))
    assert window == (12, 22) and seen == [("a cat", ""), ("a dog", "")]
    check_request(Request(FGATConfig(mask_source="none"), ["a cat"], TARGET), lambda *a: pytest.fail("no word"))


def _problem(request: Request) -> InputError:
    with pytest.raises(InputError) as info:
        check_request(request)
    return info.value


def test_check_request_errors_carry_field_and_problem():
    user = FGATConfig(mask_source="user")
    no_target = _problem(Request(FGATConfig(), [], None))
    assert (no_target.field, no_target.problem) == ("target", "missing")
    missing = _problem(Request(user, [], TARGET))
    assert (missing.field, missing.problem) == ("mask", "missing")
    assert missing.render(flag_name) == ("--mask-source is 'user' but no mask image was given: add --mask "
                                         "(white = transfer)")
    assert check_request(Request(user, [], TARGET, host_mask=True)) == (12, 22)  # the host's own mask (inpaint)
    assert check_request(Request(user, [], TARGET, transfer=False)) == (12, 22)  # a reconstruction needs none
    mask = Image.new("L", (64, 32), 255)
    unused = _problem(Request(FGATConfig(), [], TARGET, mask=mask, mask_value="m.png"))
    assert (unused.field, unused.problem) == ("mask", "unused")
    aspect = _problem(Request(user, [], TARGET, mask=mask, mask_value="m.png", mask_frames=[(64, 64)]))
    assert aspect.problem == "aspect" and aspect.extra["mw"] == 64 and aspect.extra["mh"] == 32
    assert str(aspect).startswith("the mask image 'm.png' is 64x32 px, but the source image is 64x64 px")
    assert check_request(Request(user, [], TARGET, mask=mask, mask_frames=[(64, 64), (128, 64)])) == (12, 22)


def test_check_request_checks_the_window_first():
    with pytest.raises(ConfigError) as info:
        check_request(Request(FGATConfig(steps=2, window_start=0.1, window_end=0.2), [], None))
    assert info.value.field == "steps"
