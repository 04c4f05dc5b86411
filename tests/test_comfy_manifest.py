"""Every ComfyUI symbol FGAT's node pack touches (ComfyUI 0.33.0, 783545f), and that the fake comfy defines it.

As for the WebUIs (test_webui_manifest.py, whose source readers are reused): the symbols `fgat_comfy/` reaches
through an import from ComfyUI's packages are read from the source with `ast` and must be listed; the objects a
workflow hands the nodes (MODEL, CLIP, VAE) are used by attribute, which no import shows, so their attributes are
listed by hand (`OBJECTS`). Every listed symbol must be defined in the fake (read from its source, so no fake is
imported): a module, a top-level name, a class member, or an attribute a method sets on `self`."""

import ast
from pathlib import Path

import pytest
import test_webui_manifest as webui

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fake_comfy"
PACKAGES = ("comfy", "folder_paths", "nodes", "server", "comfy_api")

IMPORTED = [
    "comfy.model_management",
    "comfy.model_management.load_models_gpu",
    "comfy.model_management.throw_exception_if_processing_interrupted",
    "comfy.utils",
    "comfy.utils.ProgressBar",
    "folder_paths",
    "folder_paths.get_user_directory",
]
# used by attribute on the objects the nodes receive (no import shows them)
OBJECTS = [
    "comfy.model_patcher.ModelPatcher.clone",
    "comfy.model_patcher.ModelPatcher.get_model_object",
    "comfy.model_patcher.ModelPatcher.model",
    "comfy.model_patcher.ModelPatcher.model_options",
    "comfy.model_patcher.ModelPatcher.load_device",
    "comfy.model_base.BaseModel.apply_model",
    "comfy.model_base.BaseModel.diffusion_model",
    "comfy.model_base.BaseModel.concat_keys",
    "comfy.model_base.BaseModel.encode_adm",
    "comfy.model_base.BaseModel.memory_required",
    "comfy.model_base.BaseModel.process_latent_in",
    "comfy.model_base.BaseModel.process_latent_out",
    "comfy.model_base.BaseModel.model_sampling",
    "comfy.model_base.SDXL.encode_adm",
    "comfy.model_sampling.ModelSamplingDiscrete.set_sigmas",  # registers the `sigmas` buffer FGAT reads
    "comfy.model_sampling.EPS",
    "comfy.model_sampling.V_PREDICTION",
    "comfy.sd.CLIP.tokenize",
    "comfy.sd.CLIP.encode_from_tokens",
    "comfy.sd.CLIP.tokenizer",
    "comfy.sd1_clip.SD1Tokenizer.clip_name",
    "comfy.sd1_clip.SDTokenizer.inv_vocab",
    "comfy.sd1_clip.SDTokenizer.start_token",
    "comfy.sd1_clip.SDTokenizer.end_token",
    "comfy.sd1_clip.SDTokenizer.pad_token",
    "comfy.sdxl_clip.SDXLTokenizer.clip_l",
    "comfy.sd.VAE.encode",
    "comfy.sd.VAE.decode",
    "comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel",
]
MANIFEST = IMPORTED + OBJECTS


def _sets_on_self(cls: ast.ClassDef, name: str) -> bool:
    return any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
               and n.attr == name and isinstance(n.ctx, ast.Store) for n in ast.walk(cls))


def defined_in_fake(symbol: str) -> bool:
    parts = symbol.split(".")
    for i in range(len(parts), 0, -1):
        path = webui._module_file([FAKE], parts[:i])
        if path is None:
            continue
        body, cls = ast.parse(path.read_text(encoding="utf-8")).body, None
        for name in parts[i:]:
            node = webui._defines(body, name)
            if node is None:
                return cls is not None and name == parts[-1] and _sets_on_self(cls, name)
            cls = node if isinstance(node, ast.ClassDef) else None
            body = node.body if cls is not None else []
        return True
    return False


@pytest.mark.parametrize("symbol", MANIFEST)
def test_every_listed_symbol_is_defined_by_the_fake_comfy(symbol):
    assert defined_in_fake(symbol)


def test_every_comfy_symbol_the_node_pack_imports_is_listed(monkeypatch):
    monkeypatch.setattr(webui, "WEBUI_PACKAGES", PACKAGES)
    used = {s for p in sorted((ROOT / "fgat_comfy").glob("*.py")) for _scope, s in webui.used_symbols(p)}
    assert sorted(used - set(IMPORTED)) == []
    assert used  # the reader found the node pack's imports


def test_the_check_catches_a_symbol_the_fake_lacks():
    assert defined_in_fake("comfy.model_patcher.ModelPatcher.patches")  # set in __init__
    assert not defined_in_fake("comfy.model_patcher.ModelPatcher.not_a_comfy_method")
    assert not defined_in_fake("comfy.not_a_module.thing")
