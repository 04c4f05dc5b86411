"""Nothing lost (issue 22, items 1-5): atomic writes, a full disk leaving the previous files as they were,
locked preset saves under real concurrent processes, concurrent writers of one output."""

import errno
import json
import multiprocessing
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from fgat_cli import cli
from fgat_core import atomic
from fgat_core.atomic import write_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PROMPT = "a photo of a cat"
SIZE = 64



@pytest.fixture(autouse=True)
def _isolated(isolated_cli):
    """No user presets, no FGAT_MODEL (conftest.isolated_cli)."""



def _disk_full(monkeypatch):
    """Every fsync fails as on a full disk (ext4 with delayed allocation reports ENOSPC there)."""
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic.os, "fsync", full)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    write_text_atomic(target, "old\n")
    _disk_full(monkeypatch)
    with pytest.raises(OSError) as err:
        write_text_atomic(target, "new " * 1000)
    assert err.value.errno == errno.ENOSPC
    assert str(target) in str(err.value) and "no space left on device" in str(err.value)
    assert _snapshot(tmp_path) == {"r.json": b"old\n"}


def test_a_writer_that_fails_halfway_leaves_the_previous_file(tmp_path):
    target = tmp_path / "r.png"
    target.write_bytes(b"previous")

    def half(f):
        f.write(b"partial")
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="input/output error"):
        write_atomic(target, half)
    assert _snapshot(tmp_path) == {"r.png": b"previous"}


def test_atomic_files_get_the_ordinary_permissions(tmp_path):
    """mkstemp makes 0600 files; a result is as readable as a file opened the ordinary way."""
    umask = os.umask(0o022)
    try:
        new = write_text_atomic(tmp_path / "new.txt", "x")
        kept = tmp_path / "kept.txt"
        kept.write_text("y")
        kept.chmod(0o640)
        write_text_atomic(kept, "z")
    finally:
        os.umask(umask)
    assert new.stat().st_mode & 0o777 == 0o644
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "z"


def _transfer(out, images, *extra):
    source, target = images
    return ["transfer", "--source", str(source), "--target", str(target), "--source-prompt", PROMPT,
            "--out", str(out), "--quiet", "--steps", "4", *extra]


def test_a_full_disk_keeps_the_previous_result_and_sidecar(tmp_path, small, use_tiny, capsys, monkeypatch):
    out = tmp_path / "out" / "r.png"
    assert cli.main(_transfer(out, small, "--diagnostics")) == 0
    before = _snapshot(out.parent)
    assert set(before) == {"r.png", "r.json", "r-diagnostics.png"}
    capsys.readouterr()
    _disk_full(monkeypatch)
    assert cli.main(_transfer(out, small, "--diagnostics", "--delta", "0.3")) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and str(out) in err and "Traceback" not in err
    assert _snapshot(out.parent) == before  # nothing truncated, nothing 0-byte, no temporary file left


def test_a_full_disk_in_a_batch_names_the_row_and_keeps_earlier_files(tmp_path, small, use_tiny, capsys,
                                                                        monkeypatch):
    source, target = small
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"source,target,source_prompt,out\n{source},{target},{PROMPT},a.png\n"
                     f"{source},{target},{PROMPT},b.png\n")
    out_dir = tmp_path / "res"
    args = ["batch", "--pairs", str(pairs), "--out-dir", str(out_dir), "--quiet", "--steps", "4"]
    assert cli.main(args) == 0
    before = _snapshot(out_dir)
    capsys.readouterr()
    _disk_full(monkeypatch)
    assert cli.main(args) != 0
    err = capsys.readouterr().err
    assert "line 2" in err and "line 3" in err and "no space left on device" in err
    assert str(out_dir / "a.png") in err and str(out_dir / "b.png") in err
    assert _snapshot(out_dir) == before


def _forked(target, args_list):
    """Real processes (fork: they start with this process's imports, so they are ready at once), released
    together by one event: `target(go, *args)` for each `args`. Returns the started processes."""
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    procs = [ctx.Process(target=target, args=(go, *args)) for args in args_list]
    for p in procs:
        p.start()
    go.set()
    return procs


def _exit_codes(procs) -> list:
    for p in procs:
        p.join(timeout=300)
    return [p.exitcode for p in procs]


def _save_presets(go, folder: str, index: int) -> None:
    os.environ["FGAT_PRESETS_DIR"] = folder
    go.wait()
    codes = [cli.main(["presets", "--save", f"p{index}-{k}", "--delta", "0.3"]) for k in range(4)]
    os._exit(0 if codes == [0, 0, 0, 0] else 1)


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_concurrent_preset_saves_keep_every_preset(tmp_path, capsys):
    """12 processes, released together, each saving 4 presets (as `presets --save`): all 48 are kept."""
    folder = tmp_path / "presets"
    assert _exit_codes(_forked(_save_presets, [(str(folder), i) for i in range(12)])) == [0] * 12
    saved = json.loads((folder / "presets.json").read_text())
    assert sorted(saved) == sorted(f"p{i}-{k}" for i in range(12) for k in range(4))
    assert sorted(p.name for p in folder.iterdir()) == ["presets.json", "presets.json.lock"]


def _write_many(go, path: str, index: int) -> None:
    block = bytes([index]) * 65536
    go.wait()
    for _ in range(20):
        write_atomic(path, lambda f: [f.write(block) for _ in range(16)])
    os._exit(0)


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_concurrent_writers_of_one_output_leave_one_whole_file(tmp_path):
    """Runs writing the same --out: each writes its own temporary file and renames it, so the path always
    holds one writer's complete file, never a mix or a truncation."""
    path = tmp_path / "same.png"
    procs = _forked(_write_many, [(str(path), i) for i in range(1, 5)])
    while any(p.is_alive() for p in procs):
        if path.exists():
            data = path.read_bytes()
            assert len(data) == 16 * 65536 and len(set(data)) == 1
    assert _exit_codes(procs) == [0] * 4
    assert [p.name for p in tmp_path.iterdir()] == ["same.png"]  # no temporary file left


def _no_model(monkeypatch):
    def refuse(args):
        raise AssertionError("the model was loaded: the check should have come first")
    monkeypatch.setattr(cli, "_load", refuse)


@pytest.mark.parametrize("which", ["source", "target", "mask"])
def test_an_out_that_is_an_input_is_refused_before_any_model_work(tmp_path, small, capsys, monkeypatch, which):
    _no_model(monkeypatch)
    source, target = (tmp_path / "s.png", tmp_path / "t.png")
    source.write_bytes(small[0].read_bytes())
    target.write_bytes(small[1].read_bytes())
    mask = tmp_path / "m.png"
    Image.new("L", (SIZE, SIZE), 255).save(mask)
    link = tmp_path / "sub" / "link.png"  # the input reached through a symlink and a '..'
    link.parent.mkdir()
    link.symlink_to({"source": source, "target": target, "mask": mask}[which])
    before = _snapshot(tmp_path)
    out = tmp_path / "sub" / ".." / "sub" / "link.png"
    assert cli.main(_transfer(out, (source, target), "--mask", str(mask))) == 2
    err = capsys.readouterr().err
    assert f"is the {which} image" in err and "choose another --out" in err
    assert _snapshot(tmp_path) == before


def test_an_out_whose_sidecar_is_an_input_is_refused(tmp_path, small, capsys, monkeypatch):
    _no_model(monkeypatch)
    source = tmp_path / "s.json"  # an odd name, but a PNG all the same
    source.write_bytes(small[0].read_bytes())
    assert cli.main(_transfer(tmp_path / "s.png", (source, small[1]))) == 2
    assert "sidecar file" in capsys.readouterr().err and source.read_bytes() == small[0].read_bytes()


def test_batch_checks_every_file_it_writes_for_clashes_and_escapes(tmp_path, small, capsys, monkeypatch):
    _no_model(monkeypatch)
    source, target = small
    src_copy = tmp_path / "res" / "mine.png"
    src_copy.parent.mkdir()
    src_copy.write_bytes(source.read_bytes())
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,target,source_prompt,out\n"
                     f"{source},{target},{PROMPT},batch.png\n"          # line 2: its sidecar is the summary
                     f"{source},{target},{PROMPT},a.png\n"              # line 3
                     f"{source},{target},{PROMPT},a-diagnostics.png\n"  # line 4: line 3's diagnostics sheet
                     f"{source},{target},{PROMPT},../escape.png\n"      # line 5: outside --out-dir
                     f"{source},{target},{PROMPT},{tmp_path / 'abs.png'}\n"  # line 6: outside too
                     f"{src_copy},{target},{PROMPT},mine.png\n"         # line 7: its own source
                     f"{source},{target},{PROMPT},sub/../a.png\n")      # line 8: line 3's image again
    before = _snapshot(tmp_path / "res")
    assert cli.main(["batch", "--pairs", str(pairs), "--out-dir", str(tmp_path / "res"), "--diagnostics",
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = {int(m.split("line ")[1].split(":")[0]): m for m in err.splitlines() if "pairs.csv line" in m}
    assert "batch summary" in lines[2]
    assert "diagnostics" in lines[4] and "line 3" in lines[4]
    assert "outside the output folder" in lines[5] and "outside the output folder" in lines[6]
    assert "is the source image" in lines[7] and "choose another 'out' value" in lines[7]
    assert "writes the same output" in lines[8] and "line 3" in lines[8]
    assert 3 not in lines
    assert _snapshot(tmp_path / "res") == before and not (tmp_path / "escape.png").exists()


def test_a_batch_row_whose_out_is_another_rows_input_is_refused(tmp_path, small, capsys, monkeypatch):
    _no_model(monkeypatch)
    res = tmp_path / "res"
    res.mkdir()
    other = res / "b.png"
    other.write_bytes(small[1].read_bytes())
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"source,target,source_prompt,out\n{small[0]},{small[1]},{PROMPT},b.png\n"
                     f"{small[0]},{other},{PROMPT},c.png\n")
    assert cli.main(["batch", "--pairs", str(pairs), "--out-dir", str(res), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "would overwrite the target image of pairs.csv line 3" in err


def test_transfer_decodes_each_input_once(tmp_path, small, use_tiny, monkeypatch):
    from fgat_cli import runner

    opened = []
    real = runner.load_image

    def counting(path, *a, **k):
        opened.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(runner, "load_image", counting)
    mask = tmp_path / "m.png"
    Image.new("L", (SIZE, SIZE), 255).save(mask)
    assert cli.main(_transfer(tmp_path / "r.png", small, "--mask", str(mask))) == 0
    assert sorted(opened) == ["m.png", "source.png", "target.png"]


def test_the_demo_tokenizer_leaves_nothing_in_the_temp_directory_and_still_works():
    import tempfile

    from fgat_cli.tiny import tiny_tokenizer

    before = sorted(os.listdir(tempfile.gettempdir()))
    tok = tiny_tokenizer()
    assert sorted(os.listdir(tempfile.gettempdir())) == before
    assert tok.tokenize("a photo of a cat") == ["a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>"]


def test_the_test_session_checks_its_temp_directory():
    """The conftest guard is live: this session's temp directory is its own, shared with subprocesses."""
    import tempfile

    import conftest

    assert tempfile.gettempdir() == conftest.SESSION_TEMP == os.environ["TMPDIR"]
    stray = tempfile.mkdtemp(prefix="fgat-tok-")
    try:
        assert os.path.basename(stray) in conftest.leftovers(conftest.SESSION_TEMP)
    finally:
        os.rmdir(stray)
    assert os.path.basename(stray) not in conftest.leftovers(conftest.SESSION_TEMP)


def _count_mask_word_lookups(monkeypatch) -> list[tuple[str, ...]]:
    from fgat_cli import pipeline, runner

    calls = []
    for module in (runner, pipeline):
        real = module.word_token_indices
        def counting(prompt, word, *a, _real=real):
            target = len(a) > 2 and a[2] == ("target_prompt", "target_mask_word")  # the target-side mask's word
            calls.append((prompt, word, "target") if target else (prompt, word))
            return _real(prompt, word, *a)

        monkeypatch.setattr(module, "word_token_indices", counting)
    return calls


def test_transfer_locates_the_mask_word_once(tmp_path, small, use_tiny, monkeypatch):
    """Issue 19: checked before the load and located there; the positions are handed to the pipeline."""
    calls = _count_mask_word_lookups(monkeypatch)
    assert cli.main(_transfer(tmp_path / "r.png", small, "--mask-word", "cat")) == 0
    assert calls == [(PROMPT, "cat"), (PROMPT, "", "target")]  # the target prompt is the source's


def test_batch_locates_each_rows_mask_word_once(tmp_path, small, use_tiny, monkeypatch):
    source, target = small
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,target,source_prompt,out\n"
                     f"{source},{target},{PROMPT},a.png\n{source},{target},a photo of a cat sitting,b.png\n")
    calls = _count_mask_word_lookups(monkeypatch)
    args = ["batch", "--pairs", str(pairs), "--out-dir", str(tmp_path / "res"), "--quiet", "--steps", "4"]
    assert cli.main(args) == 0
    rows = (PROMPT, "a photo of a cat sitting")  # each row's target prompt is its source prompt
    assert sorted(calls) == sorted([(p, "") for p in rows] + [(p, "", "target") for p in rows])
