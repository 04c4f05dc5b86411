"""The README's first screen: exactly two set-up commands, and both are the ones the project really runs."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_has_exactly_two_setup_commands():
    cmds = _commands()
    assert len(cmds) == 2
    assert cmds[0].startswith("pip install -r requirements.txt && python -m fgat_cli transfer ")
    assert cmds[1] == "pip install -r requirements-test.txt && python -m pytest -q"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -r requirements-test.txt" in ci
    assert re.search(r"^python -m pytest -q$", ci, re.M)


def test_readme_main_command_runs(tmp_path):
    """The main job exactly as written (minus the install), with fewer steps and another output path."""
    job = _commands()[0].split("&&", 1)[1]
    argv = shlex.split(job)
    assert argv[:3] == ["python", "-m", "fgat_cli"]
    for flag in ("--source", "--target"):
        assert (ROOT / argv[argv.index(flag) + 1]).is_file()
    out = tmp_path / "result.png"
    argv[argv.index("--out") + 1] = str(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FGAT_MODEL", None)
    proc = subprocess.run([sys.executable, *argv[1:], "--steps", "6", "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.size == (64, 64)  # the demo world's size
    assert out.with_suffix(".json").is_file()
