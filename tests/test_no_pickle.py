"""Nothing in this repository ever unpickles (issue 6): weights come from safetensors, settings from JSON.

An AST scan of every Python file: no pickle-family import, no `torch.load` without `weights_only=True`,
no `numpy.load(..., allow_pickle=True)`, no `read_pickle`, and every model `from_pretrained` pinned to
safetensors. The scanner is checked on code that breaks each rule, so a scan that finds nothing means
something."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "joblib", "shelve", "cloudpickle", "marshal"}
# from_pretrained on these reads JSON/text files only (no weights)
WEIGHTLESS = ("Tokenizer", "Config", "Scheduler", "Processor", "FeatureExtractor")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return ""


def _kw_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unpickling_sites(source: str, filename: str = "<string>") -> list[str]:
    """Every place in `source` that could unpickle, as 'file:line: what'."""
    found: list[str] = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PICKLE_MODULES:
                    found.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if mod in PICKLE_MODULES:
                found.append(f"{where}: from {node.module} import ...")
            if mod == "torch" and any(a.name == "load" for a in node.names):
                found.append(f"{where}: from torch import load")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if name in ("torch.load", "th.load") and not _kw_is(node, "weights_only", True):
                found.append(f"{where}: torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load") and _kw_is(node, "allow_pickle", True):
                found.append(f"{where}: numpy.load with allow_pickle=True")
            elif last in ("read_pickle", "Unpickler", "loads") and name.split(".")[0] in PICKLE_MODULES | {"pd"}:
                found.append(f"{where}: {name}")
            elif last == "read_pickle":
                found.append(f"{where}: {name}")
            elif last == "from_pretrained" and not any(w in name for w in WEIGHTLESS):
                if not _kw_is(node, "use_safetensors", True):
                    found.append(f"{where}: {name} without use_safetensors=True")
    return found


def python_files() -> list[Path]:
    """The repository's Python files; hidden folders (.git, .venv) and caches are not walked at all."""
    out: list[Path] = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules", "venv")]
        out.extend(Path(folder, f) for f in files if f.endswith(".py"))
    return sorted(out)


def test_no_python_file_can_unpickle():
    files = python_files()
    assert any(p.name == "loading.py" for p in files) and len(files) > 20  # the scan saw the code base
    found = [s for p in files for s in unpickling_sites(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert found == []


@pytest.mark.parametrize(
    "bad",
    [
        "import pickle",
        "import dill as d",
        "from pickle import loads",
        "from joblib import load",
        "import torch\nsd = torch.load('m.ckpt')",
        "import torch\nsd = torch.load('m.ckpt', weights_only=False)",
        "from torch import load",
        "import numpy as np\na = np.load('x.npy', allow_pickle=True)",
        "import pandas as pd\ndf = pd.read_pickle('x')",
        "from diffusers import UNet2DConditionModel\nu = UNet2DConditionModel.from_pretrained('folder')",
        "u = cls.from_pretrained('folder', use_safetensors=False)",
    ],
)
def test_the_scanner_finds_each_way_to_unpickle(bad):
    assert len(unpickling_sites(bad)) == 1


def test_the_scanner_accepts_the_safe_forms():
    ok = (
        "import torch\nsd = torch.load('m.pt', weights_only=True, map_location='cpu')\n"
        "import numpy as np\na = np.load('x.npy')\n"
        "from safetensors.torch import load_file\nsd = load_file('m.safetensors')\n"
        "u = cls.from_pretrained('folder', subfolder='unet', use_safetensors=True)\n"
        "t = CLIPTokenizer.from_pretrained('folder')\n"
        "import json\nd = json.loads('{}')\n"
    )
    assert unpickling_sites(ok) == []
