"""Single-file loading checked against an independent oracle: diffusers' own code, not tests/ldm_layout.py.

- Writer: `_oracle_ldm` transcribes the key tables of diffusers' diffusers -> original scripts
  (scripts/convert_diffusers_to_original_stable_diffusion.py and ..._sdxl.py, Apache-2.0), which are hard-coded to
  the real block structure. The tiny models here keep that structure (SD 1.x/2.x: 4 levels x 2 layers; SDXL: 3
  levels, transformer depths 1/2/10; 12/24/32-block text encoders; SD 2.x files hold 24 OpenCLIP blocks, the
  encoder uses 23) with tiny widths, so the files have exactly the key names of real checkpoints.
- Reader: each component is loaded by the project's `load_pipeline` and by diffusers' single-file loaders
  (`UNet2DConditionModel/AutoencoderKL.from_single_file`, `create_diffusers_clip_model_from_ldm`) from the same
  file and a local config folder (no hub); every tensor must equal the other reader's and the source model's.
- tests/ldm_layout.py (the writer the project's own tests use) must give the same tensors as the oracle writer.
- Detection: `detect_family` against diffusers' `infer_diffusers_model_type` on full-size key sets (meta tensors).
- Variants real files have: fp16 storage, EMA copies beside the weights, no position_ids, pre-`text_model.` CLIP keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fgat_cli import loading
from tests.ldm_layout import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm

SD1_CLIP, SD2_CLIP = "cond_stage_model.transformer.", "cond_stage_model.model."
XL_CLIP, XL_OPENCLIP = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."


# ---------------------------------------------------------------------------------------------- oracle writer
def _unet_tables(sdxl: bool) -> list[tuple[str, str]]:
    """(ldm, diffusers) prefix pairs, in the order of diffusers' scripts (string replacement is order-sensitive)."""
    table = []
    for i in range(3 if sdxl else 4):
        for j in range(2):
            table.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if (i > 0) if sdxl else (i < 3):
                table.append((f"input_blocks.{3 * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(4 if sdxl else 3):
            table.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if (i < 2) if sdxl else (i > 0):
                table.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if sdxl or i < 3:
            table.append((f"input_blocks.{3 * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            table.append((f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}.", f"up_blocks.{i}.upsamplers.0."))
    if sdxl:
        table.append(("output_blocks.2.2.conv.", "output_blocks.2.1.conv."))
    table.append(("middle_block.1.", "mid_block.attentions.0."))
    table += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    return table


_UNET_WHOLE = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
               "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
_UNET_RESNET = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
                ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut")]


def _oracle_unet(sd: dict, sdxl: bool) -> dict:
    out = {}
    for k, v in sd.items():
        stem, _, param = k.rpartition(".")
        if stem in _UNET_WHOLE:
            out["model.diffusion_model." + _UNET_WHOLE[stem] + "." + param] = v
            continue
        name = k
        if "resnets" in name:
            for ldm, hf in _UNET_RESNET:
                name = name.replace(hf, ldm)
        for ldm, hf in _unet_tables(sdxl):
            name = name.replace(hf, ldm)
        out["model.diffusion_model." + name] = v
    return out


def _vae_tables() -> list[tuple[str, str]]:
    table = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"),
             ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(4):
        table += [(f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}.") for j in range(2)]
        if i < 3:
            table.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            table.append((f"up.{3 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        table += [(f"decoder.up.{3 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}.") for j in range(3)]
    return table + [(f"mid.block_{i + 1}.", f"mid_block.resnets.{i}.") for i in range(2)]


def _oracle_vae(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        name = k
        for ldm, hf in _vae_tables():
            name = name.replace(hf, ldm)
        if "attentions" in k:
            for ldm, hf in [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
                            ("proj_out.", "to_out.0.")]:
                name = name.replace(hf, ldm)
            if v.dim() == 2:  # linear -> 1x1 convolution
                v = v.reshape(*v.shape, 1, 1)
        out["first_stage_model." + name] = v
    return out


def _hf_text(model) -> dict:
    """A transformers CLIP text model's weights as its files store them (`text_model.` prefix)."""
    return {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
            for k, v in model.state_dict().items()}


_OPENCLIP = [("transformer.resblocks.", "text_model.encoder.layers."), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
             (".c_fc.", ".fc1."), (".c_proj.", ".fc2."), (".attn", ".self_attn"),
             ("ln_final.", "text_model.final_layer_norm."),
             ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
             ("positional_embedding", "text_model.embeddings.position_embedding.weight")]
_OPENCLIP_RE = re.compile("|".join(re.escape(hf) for _, hf in _OPENCLIP))


def _oracle_open_clip(sd: dict, prefix: str) -> dict:
    """diffusers' convert_openclip_text_enc_state_dict: q|k|v fused into in_proj, OpenCLIP names."""
    sub = lambda k: _OPENCLIP_RE.sub(lambda m: {hf: ldm for ldm, hf in _OPENCLIP}[m.group(0)], k)  # noqa: E731
    out, qkv = {}, {}
    for k, v in sd.items():
        m = re.match(r"(.*)\.([qkv])_proj\.(weight|bias)$", k)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = v
        elif k == "text_projection.weight":
            out[prefix + "text_projection"] = v.T.contiguous()
        else:
            out[prefix + sub(k)] = v
    for (pre, kind), parts in qkv.items():
        out[f"{prefix}{sub(pre)}.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def _oracle_ldm(unet, vae, te, te2=None, family: str = "sd1", position_ids: bool = True) -> dict:
    sd = {**_oracle_unet(unet.state_dict(), family == "sdxl"), **_oracle_vae(vae.state_dict())}
    if family == "sd2":
        sd.update(_oracle_open_clip(_hf_text(te), SD2_CLIP))
        return sd
    prefix = SD1_CLIP if family == "sd1" else XL_CLIP
    sd.update({prefix + k: v for k, v in _hf_text(te).items()})
    if position_ids:  # real files carry the buffer
        sd[prefix + "text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    if te2 is not None:
        sd.update(_oracle_open_clip(_hf_text(te2), XL_OPENCLIP))
        sd[XL_OPENCLIP + "logit_scale"] = torch.tensor(4.6052)
    return sd


def _sd2_file_extras(sd: dict, te) -> dict:
    """What real SD 2.x files hold beyond the 23 blocks the encoder uses: block 23, text_projection, logit_scale."""
    w = te.config.hidden_size
    g = torch.Generator().manual_seed(5)
    for k in [k for k in sd if k.startswith(SD2_CLIP + "transformer.resblocks.0.")]:
        sd[k.replace(".resblocks.0.", ".resblocks.23.")] = torch.randn(sd[k].shape, generator=g)
    sd[SD2_CLIP + "text_projection"] = torch.randn(w, w, generator=g)
    sd[SD2_CLIP + "logit_scale"] = torch.tensor(4.6052)
    return sd


# ---------------------------------------------------------------------------------------------- tiny models
def _distinct(model, seed: int):
    """Every parameter random (default inits leave biases and norms at 0/1, where a swap would go unseen)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def _text(vocab: int, hidden: int, layers: int, act: str, projection: bool = False, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_attention_heads=2,
                         num_hidden_layers=layers, max_position_embeddings=77, projection_dim=hidden, hidden_act=act)
    return _distinct((CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg), seed)


def _unet(family: str, context: int, pooled: int = 0):
    from diffusers import UNet2DConditionModel

    if family == "sdxl":
        return _distinct(UNet2DConditionModel(
            sample_size=8, block_out_channels=(8, 16, 32), layers_per_block=2, norm_num_groups=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=2, use_linear_projection=True,
            cross_attention_dim=context, addition_embed_type="text_time", addition_time_embed_dim=4,
            projection_class_embeddings_input_dim=6 * 4 + pooled,
        ), 1)
    return _distinct(UNet2DConditionModel(
        sample_size=8, block_out_channels=(8, 16, 32, 32), layers_per_block=2, norm_num_groups=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, attention_head_dim=2,
        cross_attention_dim=context, use_linear_projection=family == "sd2",
    ), 1)


def _vae():
    from diffusers import AutoencoderKL

    return _distinct(AutoencoderKL(block_out_channels=(4, 8, 16, 16), layers_per_block=2, norm_num_groups=4,
                                   down_block_types=("DownEncoderBlock2D",) * 4,
                                   up_block_types=("UpDecoderBlock2D",) * 4, sample_size=32), 2)


@pytest.fixture(scope="module")
def models():
    from fgat_cli.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    v = len(tok)
    te1 = _text(v, 8, 12, "quick_gelu", seed=3)
    te2 = _text(v, 16, 32, "gelu", projection=True, seed=4)
    te_sd2 = _text(v, 12, 23, "gelu", seed=5)
    vae = _vae()
    return {
        "tok": tok,
        "sd1": (_unet("sd1", 8), vae, te1, None),
        "sd2": (_unet("sd2", 12), vae, te_sd2, None),
        "sdxl": (_unet("sdxl", 8 + 16, pooled=16), vae, te1, te2),
    }


def _configs(folder: Path, tok, unet, vae, te, te2) -> Path:
    import json

    unet.save_config(folder / "unet")
    vae.save_config(folder / "vae")
    te.config.save_pretrained(folder / "text_encoder")
    tok.save_pretrained(folder / "tokenizer")
    if te2 is not None:
        te2.config.save_pretrained(folder / "text_encoder_2")
        tok.save_pretrained(folder / "tokenizer_2")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000,
         "prediction_type": "epsilon"}))
    return folder


def _file(tmp_path: Path, models, family: str, **kw) -> tuple[Path, Path, dict]:
    unet, vae, te, te2 = models[family]
    sd = _oracle_ldm(unet, vae, te, te2, family, **kw)
    if family == "sd2":
        sd = _sd2_file_extras(sd, te)
    path = tmp_path / f"{family}.safetensors"
    save_file({k: v.detach().contiguous() for k, v in sd.items()}, str(path))
    return path, _configs(tmp_path / "conf", models["tok"], unet, vae, te, te2), sd


def _same(a, b, what: str, cast=None) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), f"{what}: key sets differ: {sorted(set(sa) ^ set(sb))[:4]}"
    for k in sa:
        x, y = sa[k], sb[k]
        if cast is not None:
            y = y.to(cast).to(x.dtype)
        assert x.shape == y.shape and torch.equal(x, y), f"{what}: {k} differs"


def _diffusers_components(path: Path, conf: Path, te_cls, te2_cls=None) -> dict:
    """The same file read by diffusers' single-file loaders, configs from the local folder (no hub)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from safetensors.torch import load_file

    ckpt = load_file(str(path))
    out = {
        "unet": UNet2DConditionModel.from_single_file(str(path), config=str(conf), subfolder="unet",
                                                      local_files_only=True),
        "vae": AutoencoderKL.from_single_file(str(path), config=str(conf), subfolder="vae", local_files_only=True),
        "text_encoder": create_diffusers_clip_model_from_ldm(te_cls, ckpt, subfolder="text_encoder", config=str(conf),
                                                             local_files_only=True),
    }
    if te2_cls is not None:
        out["text_encoder_2"] = create_diffusers_clip_model_from_ldm(
            te2_cls, ckpt, subfolder="text_encoder_2", config=str(conf), local_files_only=True)
    return out


# ---------------------------------------------------------------------------------------------- writers agree
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_project_writer_equals_the_diffusers_script_writer(models, family):
    unet, vae, te, te2 = models[family]
    want = _oracle_ldm(unet, vae, te, te2, family)
    got = {**unet_to_ldm(unet.state_dict(), unet.config), **vae_to_ldm(vae.state_dict(), vae.config)}
    if family == "sd2":
        got.update(open_clip_to_ldm(te.state_dict(), SD2_CLIP))
        got = {k: v for k, v in got.items() if not k.endswith("logit_scale")}
    else:
        got.update(clip_to_ldm(te.state_dict(), SD1_CLIP if family == "sd1" else XL_CLIP))
        if te2 is not None:
            got.update(open_clip_to_ldm(te2.state_dict(), XL_OPENCLIP))
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].shape == want[k].shape and torch.equal(got[k], want[k]), k


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_tiny_files_have_the_key_names_of_full_size_checkpoints(models, family):
    """The tiny structure reproduces the real key set: the oracle writer on the shipped full-size configs (meta)."""
    conf = loading.CONFIG_ROOT / ("sd15" if family == "sd1" else "sdxl")
    unet = loading._build(loading._diffusers_cls("UNet2DConditionModel"), conf / "unet")
    vae = loading._build(loading._diffusers_cls("AutoencoderKL"), conf / "vae")
    full = {**_oracle_unet(unet.state_dict(), family == "sdxl"), **_oracle_vae(vae.state_dict())}
    tiny_unet, tiny_vae = models[family][:2]
    tiny = {**_oracle_unet(tiny_unet.state_dict(), family == "sdxl"), **_oracle_vae(tiny_vae.state_dict())}
    assert sorted(tiny) == sorted(full)
    assert sum(k.startswith("model.diffusion_model.") for k in full) == (686 if family == "sd1" else 1680)
    back = loading._convert_unet(full, unet.config)  # the loader's UNet conversion at full size
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in unet.state_dict().items()}


# ---------------------------------------------------------------------------------------------- readers agree
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_loader_reads_what_diffusers_reads(models, family, tmp_path):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    path, conf, _ = _file(tmp_path, models, family)
    pipe = loading.load_pipeline(str(path), "cpu", "fp32", config_dir=conf, prediction_type="epsilon")
    ref = _diffusers_components(path, conf, CLIPTextModel, CLIPTextModelWithProjection if family == "sdxl" else None)
    unet, vae, te, te2 = models[family]
    for name, src in (("unet", unet), ("vae", vae), ("text_encoder", te), ("text_encoder_2", te2)):
        if src is None:
            assert getattr(pipe, name, None) is None
            continue
        _same(getattr(pipe, name), ref[name], f"{family} {name}: loader vs diffusers")
        _same(getattr(pipe, name), src, f"{family} {name}: loader vs source")
    assert pipe.is_sdxl == (family == "sdxl")


def test_variants_of_real_files(models, tmp_path):
    """fp16 storage, EMA copies beside the weights (diffusers keeps the non-EMA ones, as the loader does), no
    position_ids, and SD 1.x CLIP keys without `text_model.` (older transformers)."""
    from transformers import CLIPTextModel

    unet, vae, te, _ = models["sd1"]
    path, conf, sd = _file(tmp_path, models, "sd1", position_ids=False)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    unet_keys = [k for k in sd if k.startswith("model.diffusion_model.")]
    assert len(unet_keys) > 100  # diffusers' EMA rule
    sd.update({"model_ema." + "".join(k.split(".")[1:]): sd[k] + 1 for k in unet_keys})
    sd["model_ema.decay"], sd["model_ema.num_updates"] = torch.tensor(0.9999), torch.tensor(1, dtype=torch.int32)
    save_file(sd, str(path))
    pipe = loading.load_pipeline(str(path), "cpu", "fp32", config_dir=conf)
    ref = _diffusers_components(path, conf, CLIPTextModel)
    for name, src in (("unet", unet), ("vae", vae), ("text_encoder", te)):
        _same(getattr(pipe, name), ref[name], f"{name}: loader vs diffusers (fp16 + EMA file)")
        _same(getattr(pipe, name), src, f"{name}: loader vs fp16-rounded source", cast=torch.float16)

    old = {(SD1_CLIP + k[len(SD1_CLIP + "text_model."):] if k.startswith(SD1_CLIP) else k): v for k, v in sd.items()}
    save_file(old, str(path))
    pipe = loading.load_pipeline(str(path), "cpu", "fp32", config_dir=conf)
    _same(pipe.text_encoder, te, "pre-text_model. CLIP keys", cast=torch.float16)


# ---------------------------------------------------------------------------------------------- detection
@pytest.fixture(scope="module")
def full_keys():
    """Full-size original-layout key sets (meta tensors: shapes only) from the shipped configs."""
    out = {}
    for family, conf_name in (("sd1", "sd15"), ("sd2", "sd2"), ("sdxl", "sdxl")):
        conf = loading.CONFIG_ROOT / conf_name
        unet = loading._build(loading._diffusers_cls("UNet2DConditionModel"), conf / "unet")
        vae = loading._build(loading._diffusers_cls("AutoencoderKL"), conf / "vae")
        te = loading._build_text_encoder(conf / "text_encoder")
        te2 = loading._build_text_encoder(conf / "text_encoder_2", projection=True) if family == "sdxl" else None
        out[family] = _oracle_ldm(unet, vae, te, te2, family)
    return out


def _detect(keys: dict):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    ours = loading.detect_family({k: tuple(v.shape) for k, v in keys.items()})
    return ours, infer_diffusers_model_type(keys)


@pytest.mark.parametrize("family, ours, theirs", [("sd1", "sd15", "v1"), ("sd2", "sd2", "v2"),
                                                  ("sdxl", "sdxl", "xl_base")])
def test_detection_agrees_with_diffusers(full_keys, family, ours, theirs):
    assert _detect(full_keys[family]) == (ours, theirs)


def _meta(*shape):
    return torch.empty(shape, device="meta")


@pytest.mark.parametrize("family, channels, theirs", [("sd1", 9, "inpainting"), ("sd2", 9, "inpainting_v2"),
                                                      ("sdxl", 9, "xl_inpaint"), ("sd1", 8, "instruct-pix2pix")])
def test_inpaint_and_pix2pix_are_refused_where_diffusers_names_them(full_keys, family, channels, theirs):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    keys = dict(full_keys[family])
    keys["model.diffusion_model.input_blocks.0.0.weight"] = _meta(320, channels, 3, 3)
    assert infer_diffusers_model_type(keys) == theirs
    with pytest.raises(ValueError, match=f"{channels} input channels"):
        loading.detect_family({k: tuple(v.shape) for k, v in keys.items()})


def test_refiner_is_refused_where_diffusers_names_it(full_keys):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    keys = {k.replace(XL_OPENCLIP, "conditioner.embedders.0.model."): v for k, v in full_keys["sdxl"].items()
            if not k.startswith(XL_CLIP)}
    assert infer_diffusers_model_type(keys) == "xl_refiner"
    with pytest.raises(ValueError, match="refiner"):
        loading.detect_family({k: tuple(v.shape) for k, v in keys.items()})


def test_sd3_and_flux_files_are_refused():
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    sd3 = {"model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": _meta(9216),
           "model.diffusion_model.pos_embed": _meta(1, 36864, 1536),
           "text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.weight": _meta(77, 768)}
    flux = {"model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale": _meta(128)}
    for keys, theirs in ((sd3, "sd3"), (flux, "flux-schnell")):
        assert infer_diffusers_model_type(keys) == theirs
        with pytest.raises(ValueError):
            loading.detect_family({k: tuple(v.shape) for k, v in keys.items()})


def test_playground_v25_is_not_taken_for_sdxl_base(full_keys):
    """Playground v2.5 ships as an SDXL-layout single file plus `edm_mean`/`edm_std` (an EDM model, VAE scaling 0.5
    with latent mean/std): diffusers names it 'playground-v2-5'. Loading it as SDXL base (epsilon, DDPM schedule,
    scaling 0.13025) gives wrong images without any error, so the loader must refuse it (or handle EDM)."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    keys = {**full_keys["sdxl"], "edm_mean": _meta(1, 4, 1, 1), "edm_std": _meta(1, 4, 1, 1)}
    assert infer_diffusers_model_type(keys) == "playground-v2-5"
    try:
        family = loading.detect_family({k: tuple(v.shape) for k, v in keys.items()})
    except ValueError:
        return
    pytest.fail(f"a Playground v2.5 (EDM) checkpoint is detected as {family!r} and would load as SDXL base")
