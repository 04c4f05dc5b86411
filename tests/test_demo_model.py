"""The bundled demo model (fgat_cli/demo_model): shipped as safetensors within the size budget, loaded offline by
default, and shaped so that the diffusers host, DIFT (>= 8x8 grid) and the attention mask run on it unchanged."""

import json

import torch

from fgat_cli.loading import DEMO_MODEL, load_pipeline
from fgat_core.host import CONTEXT
from fgat_core.mask import AttentionRecorder, downsampled_size
from fgat_demo.world import IMAGE_SIZE, render, sample_scene


def test_weights_are_safetensors_within_25_mb():
    files = [p for p in DEMO_MODEL.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".ckpt", ".pth")]
    assert {p.parent.name for p in weights} == {"unet", "vae", "text_encoder"}
    assert all(p.suffix == ".safetensors" for p in weights)
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    info = json.loads((DEMO_MODEL / "training.json").read_text())
    assert info["stages"]["unet"]["step"] > 0 and info["stages"]["vae"]["step"] > 0


def test_default_model_is_the_demo_model_with_an_8x8_dift_grid(monkeypatch, capsys):
    monkeypatch.delenv("FGAT_MODEL", raising=False)
    pipe = load_pipeline()
    assert pipe.name == "fgat-demo-world" and "bundled demo model" in capsys.readouterr().err
    assert pipe.vae_factor == 4 and IMAGE_SIZE % pipe.size_multiple == 0
    from PIL import Image

    img = Image.fromarray((render(sample_scene(0)) * 255).astype("uint8"))
    z = pipe.encode_image(img)
    assert z.shape == (1, 4, 16, 16)
    cond = pipe.encode_prompt("a photo of a cat")
    feats = pipe.host.features(z, torch.tensor([261]), cond)
    assert feats.shape[-2:] == (8, 8)
    # the attention mask averages cross-attention maps at 1/4 of the latent size: the UNet has them
    with AttentionRecorder(pipe.host.attention_layers(), [5], (16, 16), "quarter") as rec:
        rec.active, rec.rows = True, [0]
        pipe.host.eps(z, torch.tensor([261]), cond)
    assert set(rec.sums) == {downsampled_size((16, 16), 4)} == {(4, 4)}
    assert pipe.decode(z).size == (IMAGE_SIZE, IMAGE_SIZE)


def test_only_the_category_word_carries_the_category(monkeypatch):
    """The demo text encoder has no transformer layers (token + position embedding, final norm), so prompts that
    differ in the category word differ in that token's context only: the UNet can learn the category from that
    token alone, which is what lets its cross-attention to the word find the object (the attention mask)."""
    monkeypatch.delenv("FGAT_MODEL", raising=False)
    pipe = load_pipeline()
    cat, fish = pipe.encode_prompt("a photo of a cat"), pipe.encode_prompt("a photo of a fish")
    diff = (cat[CONTEXT] - fish[CONTEXT]).abs().amax(-1)[0]
    ids = pipe.tokenizer("a photo of a cat").input_ids
    word = ids.index(pipe.tokenizer.convert_tokens_to_ids("cat</w>"))
    assert diff[word] > 0.1
    assert torch.count_nonzero(diff) == 1
