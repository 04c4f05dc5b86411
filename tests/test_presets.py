"""Presets (fgat_core.presets) on a hand-edited, corrupt or unwritable presets file; names that could escape
the presets folder."""

from __future__ import annotations

import errno
import json
import os

import pytest

from fgat_core.config import FGATConfig
from fgat_core.presets import BUILTIN, PresetStore, check_name, paper_config

# ============================================================================ presets
VALID = FGATConfig(delta=0.7).to_dict()


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"{not json", "cannot be read"),
        (b"\xff\xfe\x00garbage", "cannot be read"),
        (b"[" * 200_000, "cannot be read"),  # nesting deeper than the parser's recursion limit
        (b'["a list"]', "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"{" + b" " * 1_100_000 + b"}", "larger than 1 MB"),
    ],
    ids=["syntax", "binary", "deep", "list", "string", "huge"],
)
def test_corrupt_presets_file_is_reported_and_ignored(tmp_path, content, reason):
    (tmp_path / "presets.json").write_bytes(content)
    store = PresetStore(tmp_path)
    assert store.names() == list(BUILTIN)
    assert len(store.errors) == 1 and reason in store.errors[0] and "ignored" in store.errors[0]
    assert store.get("Paper") == paper_config()
    with pytest.raises(ValueError, match=f"preset 'x' cannot be used: the presets file .* {reason}"):
        store.get("x")  # not 'unknown preset': the user's file, where it might be, is unreadable


def test_a_requested_preset_that_is_invalid_says_why_and_a_shadowed_one_is_reported(tmp_path):
    (tmp_path / "presets.json").write_text('{"bad": {"delta": "x"}, "Paper": {"delta": 0.9}}')
    store = PresetStore(tmp_path)
    with pytest.raises(ValueError, match=r"preset 'bad' cannot be used: preset 'bad' in .* is invalid \(.*delta"):
        store.get("bad")
    assert store.get("Paper") == paper_config()  # the built-in wins ...
    assert any("built-in preset's name" in e for e in store.errors)  # ... and the user is told
    with pytest.raises(ValueError, match="unknown preset 'other'; available presets"):
        store.get("other")


def test_presets_file_that_is_a_folder_is_reported(tmp_path):
    (tmp_path / "presets.json").mkdir()
    store = PresetStore(tmp_path)
    assert store.names() == list(BUILTIN) and "cannot be read" in store.errors[0]


def test_hand_edited_presets_keep_the_good_entries(tmp_path):
    bad = {
        "list": [1, 2],
        "string delta": {**VALID, "delta": "0.5"},
        "delta too big": {**VALID, "delta": 5},
        "unknown inversion": {**VALID, "inversion": "magic"},
        "unknown key": {**VALID, "colour": "red"},
        "fractional steps": {**VALID, "steps": 10.5},
        "bool steps": {**VALID, "steps": True},
        "word not text": {**VALID, "mask_word": 3},
        "../escape": VALID,
        "a/b": VALID,
    }
    text = json.dumps({"good one": {"delta": 0.3, "steps": 20}, **bad})
    text = text[:-1] + ', "nan delta": {"delta": NaN}}'  # json.loads accepts NaN: the schema must not
    (tmp_path / "presets.json").write_text(text, encoding="utf-8")
    store = PresetStore(tmp_path)
    assert store.names() == list(BUILTIN) + ["good one"]
    assert store.get("good one") == FGATConfig(delta=0.3, steps=20)
    assert len(store.errors) == len(bad) + 1
    for name, err in zip([*bad, "nan delta"], store.errors, strict=True):
        assert err.startswith(f"preset {name!r}") and err.endswith("it was ignored")


@pytest.mark.parametrize(
    "name",
    ["../evil", "..", ".", "a/b", "/abs", "a\\b", "..\\x", "a\x00b", "x" * 65, "", "   ", ".hidden", "a\nb", 7, None],
)
def test_preset_names_cannot_escape_the_presets_folder(tmp_path, name):
    folder = tmp_path / "presets"
    store = PresetStore(folder)
    with pytest.raises(ValueError, match="invalid preset name"):
        store.save(name, FGATConfig())
    with pytest.raises(ValueError):
        check_name(name)
    assert _files(tmp_path) == set()


def test_saving_writes_only_the_one_presets_file(tmp_path):
    """... and its lock file, empty, which stays: removing a lock file races with the next process to lock it."""
    folder = tmp_path / "presets"
    store = PresetStore(folder)
    store.save("My preset (v2) + more", FGATConfig(delta=0.5))
    store.save("Katze ü", FGATConfig(lam=0.3))
    assert _files(tmp_path) == {"presets", os.path.join("presets", "presets.json"),
                                os.path.join("presets", "presets.json.lock")}
    assert (folder / "presets.json.lock").stat().st_size == 0
    assert PresetStore(folder).get("Katze ü") == FGATConfig(lam=0.3)
    with pytest.raises(ValueError, match="built-in"):
        store.save("Paper", FGATConfig())


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symlinks need POSIX")
def test_a_symlinked_presets_file_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "presets.json").symlink_to(outside)
    PresetStore(folder).save("mine", FGATConfig())
    assert outside.read_text(encoding="utf-8") == "{}"
    assert not (folder / "presets.json").is_symlink()
    assert PresetStore(folder).names()[-1] == "mine"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    store = PresetStore(tmp_path)
    store.save("first", FGATConfig())
    old = (tmp_path / "presets.json").read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("fgat_core.atomic.os.fsync", disk_full)
    with pytest.raises(OSError, match="no space left on device") as err:
        store.save("second", FGATConfig())
    assert str(tmp_path / "presets.json") in str(err.value)
    assert (tmp_path / "presets.json").read_bytes() == old
    assert _files(tmp_path) == {"presets.json", "presets.json.lock"}


def test_saving_keeps_hand_edited_entries_it_cannot_use(tmp_path):
    text = json.dumps({"typo": {"delta": "0.5"}, "kept": {"lam": 0.4}})
    (tmp_path / "presets.json").write_text(text, encoding="utf-8")
    store = PresetStore(tmp_path)
    store.save("new", FGATConfig(gamma=0.3))
    stored = json.loads((tmp_path / "presets.json").read_text(encoding="utf-8"))
    assert stored["typo"] == {"delta": "0.5"}  # left for the user to fix, not dropped
    assert stored["kept"] == {"lam": 0.4}
    assert store.names()[-2:] == ["kept", "new"] and "preset 'typo'" in store.errors[0]
    store.delete("new")
    assert json.loads((tmp_path / "presets.json").read_text(encoding="utf-8")) == json.loads(text)


def test_an_unreadable_presets_file_is_never_overwritten(tmp_path):
    (tmp_path / "presets.json").write_text('{"mine": {"delta": 0.5},', encoding="utf-8")  # a missing brace
    store = PresetStore(tmp_path)
    with pytest.raises(ValueError, match=r"cannot be read .*fix it or move it away, then save again"):
        store.save("new", FGATConfig())
    with pytest.raises(ValueError, match="no user preset named 'mine'"):
        store.delete("mine")
    assert (tmp_path / "presets.json").read_text(encoding="utf-8") == '{"mine": {"delta": 0.5},'
