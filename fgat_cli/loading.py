"""Model loading for the standalone pipeline (CLI): offline first, from the files WebUI users already have.

`load_pipeline(model)` accepts
- a single `.safetensors` checkpoint in the original (ldm / sgm) layout: SD 1.x, SD 2.x (512 px epsilon and
  768 px v-prediction) and SDXL base. The family is detected from the state dict's keys; the architecture
  comes from the small configs shipped in `model_configs/`, so nothing touches the network;
- a local diffusers folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`, ...);
- a Hugging Face hub id (`owner/name`): taken from the local cache first, downloaded only where a network
  exists; offline, a clear error;
- nothing: `FGAT_MODEL`, else the bundled tiny demo model.

Pickled checkpoints (`.ckpt`, `.pt`, `.bin`) are never unpickled: convert them to `.safetensors`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from fgat_core.schedule import rescale_zero_terminal_snr, scaled_linear_alphas_cumprod

from .pipeline import FGATPipeline, cast, tiny_pipeline

CONFIG_ROOT = Path(__file__).resolve().parent / "model_configs"
CLIP_BPE = CONFIG_ROOT / "clip_tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
DEMO_MODEL = Path(__file__).resolve().parent / "demo_model"  # trained by fgat_demo/train.py on fgat_demo/world.py
FAMILY_NAMES = {
    "sd15": "Stable Diffusion 1.x",
    "sd2": "Stable Diffusion 2.x",
    "sd2-v": "Stable Diffusion 2.x (v-prediction)",
    "sdxl": "Stable Diffusion XL",
}
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
PREDICTION_TYPES = {"epsilon": "epsilon", "eps": "epsilon", "v_prediction": "v_prediction", "v": "v_prediction"}

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_OPENCLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPENCLIP_PREFIX = "conditioner.embedders.1.model."
REFINER_OPENCLIP_PREFIX = "conditioner.embedders.0.model."
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ---------------------------------------------------------------------------------------------- public
def load_pipeline(
    model: str | os.PathLike | None = None, device: str | None = None, dtype: str | None = None, *,
    prediction_type: str | None = None, config_dir: str | os.PathLike | None = None,
) -> FGATPipeline:
    """Load a model for FGAT.

    `model`: a `.safetensors` checkpoint, a local diffusers folder, a hub id, or None (FGAT_MODEL, else the
    bundled tiny demo model with a warning). `device`/`dtype`: see `pick_device` (CUDA fp16 when present,
    else CPU fp32). `prediction_type` (else $FGAT_PREDICTION_TYPE): "epsilon" or "v_prediction", overrides
    detection. `config_dir`: for single files, a folder laid out like `model_configs/<family>/` to use
    instead of the shipped configs (unusual architectures; tests use it for tiny models)."""
    check_load_arguments(model, device, dtype, prediction_type)
    from_env = model is None and os.environ.get("FGAT_MODEL") is not None
    model = model or os.environ.get("FGAT_MODEL") or None
    if model is None:
        return load_demo_pipeline(device, dtype)
    if from_env and not str(model).strip():
        raise ValueError(f"the environment variable FGAT_MODEL is {model!r} (only spaces): unset it for the demo "
                         "model, or set it to a .safetensors checkpoint, a diffusers folder or a hub id")
    dev, dt = pick_device(device, dtype)
    pred = _normalize_prediction_type(prediction_type or os.environ.get("FGAT_PREDICTION_TYPE"))
    path = Path(model).expanduser()
    if path.is_file():
        return load_single_file(path, dev, dt, prediction_type=pred, config_dir=config_dir)
    if path.is_dir():
        return load_diffusers_folder(path, dev, dt, prediction_type=pred)
    text = str(model)
    if _HUB_ID.match(text) and not text.startswith((".", "~")) and not path.suffix == ".safetensors":
        return load_hub_model(text, dev, dt, prediction_type=pred)
    raise ValueError(
        f"model not found: {text!r} is neither an existing file or folder nor a Hugging Face hub id "
        "(owner/name): pass a .safetensors checkpoint, a diffusers folder, or a hub id"
    )


def check_load_arguments(model: object, device: object, dtype: object, prediction_type: object) -> None:
    """`load_pipeline`'s arguments are text (or a path) or None: refused naming what is accepted."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"model must be a path (str or os.PathLike) to a .safetensors checkpoint or a diffusers "
                         f"folder, a hub id 'owner/name', or None for the demo model; got {type(model).__name__}")
    for name, value, kinds, example in (
        ("device", device, (str, torch.device), "'cpu', 'cuda' or 'cuda:1'"),
        ("dtype", dtype, (str, torch.dtype), "'fp16', 'bf16' or 'fp32'"),
        ("prediction_type", prediction_type, str, "'epsilon' or 'v_prediction'"),
    ):
        if value is not None and not isinstance(value, kinds):
            raise ValueError(f"{name} must be text such as {example}, or None for the default; got "
                             f"{type(value).__name__}")


def load_demo_pipeline(device: str | None = None, dtype: str | None = None) -> FGATPipeline:
    """The bundled demo model (64 px cats, fish, birds, cars and flowers of `fgat_demo.world`), on the CPU in
    fp32 unless a device or dtype is asked for; the tiny random-weight model where its weights are absent."""
    dev, dt = pick_device(device or "cpu", dtype)
    if (DEMO_MODEL / "unet" / "diffusion_pytorch_model.safetensors").is_file():
        print("note: no --model and no FGAT_MODEL: using the bundled demo model, trained on the demo world "
              "(64 px cat, fish, bird, car, flower; see the README's 'Demo world')", file=sys.stderr)
        pipe = load_diffusers_folder(DEMO_MODEL, dev, dt)
        pipe.name = "fgat-demo-world"
        return pipe
    print(
        "warning: no --model and no FGAT_MODEL: using the bundled tiny demo model (random weights); "
        "its output only demonstrates the wiring",
        file=sys.stderr,
    )
    return tiny_pipeline(device=dev, dtype=dt)


def pick_device(device: str | None, dtype: str | None) -> tuple[torch.device, torch.dtype]:
    """The device (default: CUDA when present, else CPU) and dtype (default: fp16 on CUDA, fp32 elsewhere)."""
    try:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here: use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                         "device(s), numbered from 0")
    if dtype is None:
        dt = torch.float16 if dev.type == "cuda" else torch.float32
    else:
        table = {"fp16": torch.float16, "float16": torch.float16, "half": torch.float16, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32,
                 "float": torch.float32}
        if isinstance(dtype, torch.dtype) and dtype in table.values():
            return dev, dtype
        if dtype not in table:
            raise ValueError(f"unsupported dtype {dtype!r}: use one of fp16, bf16, fp32")
        dt = table[dtype]
    return dev, dt


# ---------------------------------------------------------------------------------------------- single file
def load_single_file(
    path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *,
    prediction_type: str | None = None, config_dir: str | os.PathLike | None = None,
) -> FGATPipeline:
    """An original-layout (ldm/sgm) `.safetensors` checkpoint, with the shipped configs (or `config_dir`)."""
    path = Path(path)
    shapes = read_safetensors_shapes(path)
    family = detect_family(shapes, path.name)
    # the `v_pred` / `ztsnr` marker keys ComfyUI and Forge read in v-prediction (zero terminal SNR) SDXL files
    pred = _normalize_prediction_type(prediction_type) or ("v_prediction" if "v_pred" in shapes else None)
    pred = pred or prediction_type_from_yaml(path)
    ztsnr = "ztsnr" in shapes
    conf = Path(config_dir) if config_dir is not None else config_folder(family, pred)
    _check_config_folder(conf, family)
    sd = read_safetensors(path, dtype)
    unet = _build(_diffusers_cls("UNet2DConditionModel"), conf / "unet")
    _load_into(unet, _convert_unet(sd, unet.config), "UNet", path, family)
    vae = _build(_diffusers_cls("AutoencoderKL"), conf / "vae")
    _load_into(vae, _convert_vae(sd, vae.config), "VAE", path, family)
    if family == "sdxl":
        te = _build_text_encoder(conf / "text_encoder")
        _load_into(te, _convert_clip(sd, SDXL_CLIP_PREFIX, te), "text encoder (CLIP ViT-L)", path, family)
        te2 = _build_text_encoder(conf / "text_encoder_2", projection=True)
        _load_into(te2, _convert_open_clip(sd, SDXL_OPENCLIP_PREFIX, te2), "text encoder 2 (OpenCLIP bigG)",
                   path, family)
    elif family == "sd2":
        te, te2 = _build_text_encoder(conf / "text_encoder"), None
        _load_into(te, _convert_open_clip(sd, SD2_OPENCLIP_PREFIX, te), "text encoder (OpenCLIP ViT-H)",
                   path, family)
    else:
        te, te2 = _build_text_encoder(conf / "text_encoder"), None
        _load_into(te, _convert_clip(sd, SD1_CLIP_PREFIX, te), "text encoder (CLIP ViT-L)", path, family)
    del sd
    unet.to(device=device)  # already in `dtype` (cast while reading)
    if pred is None and family == "sd2":
        pred = "v_prediction" if unet_predicts_v(unet) else "epsilon"
    pred = pred or "epsilon"
    sched_dir = conf if config_dir is not None else config_folder(family, pred)
    return _assemble(unet, vae, te, te2, conf, sched_dir, pred, device, dtype, path.stem, zero_terminal_snr=ztsnr)


def read_safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a `.safetensors` file, from its header only (nothing loaded); clear errors for
    pickles, wrong types and corrupt files."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path.name}: pickled checkpoints ({suffix}) are not loaded, because unpickling can run arbitrary "
            "code. Convert it to .safetensors (e.g. the WebUI's Checkpoint Merger with 'safetensors' as the "
            "format, or diffusers' conversion scripts) and pass that file"
        )
    if suffix != ".safetensors":
        raise ValueError(
            f"{path.name}: unsupported model file type {suffix or '(no extension)'!r}: pass a .safetensors "
            "checkpoint or a diffusers folder"
        )
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types; all mean "not a readable file"
        raise ValueError(
            f"{path.name}: not a readable .safetensors file ({type(e).__name__}: {e}); it may be truncated or "
            "corrupt: download or convert it again"
        ) from None
    if not shapes:
        raise ValueError(f"{path.name}: the .safetensors file holds no tensors")
    return shapes


def read_safetensors(path: str | os.PathLike, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """All tensors of a `.safetensors` file on the CPU (floating ones cast to `dtype`), EMA copies skipped
    when the plain weights are present."""
    from safetensors import safe_open

    path = Path(path)
    out: dict[str, Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            has_plain = any(k.startswith(UNET_PREFIX) for k in keys)
            for k in keys:
                if has_plain and k.startswith("model_ema."):
                    continue
                t = f.get_tensor(k)
                if dtype is not None and t.is_floating_point():
                    t = t.to(dtype)
                out[k] = t
    except Exception as e:
        raise ValueError(
            f"{path.name}: could not read its tensors ({type(e).__name__}: {e}); the file may be truncated or "
            "corrupt: download or convert it again"
        ) from None
    return out


def detect_family(shapes: Mapping[str, tuple[int, ...]], name: str = "checkpoint") -> str:
    """'sd15', 'sd2' or 'sdxl' from an original-layout state dict's keys (and shapes); a ValueError that
    says what the file is instead, where it is none of them."""
    keys = list(shapes)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if not has(UNET_PREFIX):
        sample = ", ".join(sorted(keys)[:3])
        if any(k.startswith(("lora_unet_", "lora_te", "lora_")) or ".lora_" in k for k in keys):
            what = "a LoRA, not a full checkpoint: load it in the WebUI on top of a checkpoint"
        elif has("down_blocks.") or has("conv_in."):
            what = "a diffusers-format component (UNet or VAE alone): pass the whole diffusers folder instead"
        elif has("encoder.down.") or has("decoder.up."):
            what = "a VAE on its own, not a full checkpoint"
        elif has("text_model.") or has("transformer.resblocks."):
            what = "a text encoder on its own, not a full checkpoint"
        else:
            what = "not a Stable Diffusion checkpoint"
        raise ValueError(
            f"{name}: {what} (no {UNET_PREFIX}* UNet weights; its keys start with: {sample}). Pass an SD 1.x, "
            "SD 2.x or SDXL checkpoint (.safetensors) or a diffusers folder"
        )
    conv_in = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is not None and len(conv_in) == 4 and conv_in[1] != 4:
        raise ValueError(
            f"{name}: its UNet takes {conv_in[1]} input channels (an inpainting, instruct-pix2pix or depth "
            "model); FGAT needs a plain text-to-image checkpoint (4 channels)"
        )
    if "edm_mean" in shapes or "edm_std" in shapes or any(k.startswith("edm_vpred") for k in shapes):
        kind, keys = ("Playground v2.5", "edm_mean/edm_std") if "edm_mean" in shapes else ("CosXL", "edm_vpred")
        raise ValueError(
            f"{name}: an EDM-schedule model ({kind}: SDXL layout with {keys} keys), which FGAT's DDIM schedule "
            "does not fit, so its output would be wrong: use an SDXL base checkpoint (or a finetune of it)"
        )
    if has(SDXL_OPENCLIP_PREFIX):
        if not has(SDXL_CLIP_PREFIX):
            raise ValueError(f"{name}: SDXL checkpoint without its first text encoder "
                             f"({SDXL_CLIP_PREFIX}*): the file is incomplete")
        return "sdxl"
    if has(REFINER_OPENCLIP_PREFIX):
        raise ValueError(f"{name}: an SDXL refiner, which FGAT does not support: use an SDXL base checkpoint")
    if has(SD2_OPENCLIP_PREFIX):
        if UNET_PREFIX + "label_emb.0.0.weight" in shapes:
            raise ValueError(f"{name}: an SD 2.x unCLIP / image-variation model, which FGAT does not support")
        return "sd2"
    if has(SD1_CLIP_PREFIX):
        return "sd15"
    if has(UNET_PREFIX + "joint_blocks") or has(UNET_PREFIX + "double_blocks"):
        kind = "an SD3 (MMDiT)" if has(UNET_PREFIX + "joint_blocks") else "a Flux"
        raise ValueError(f"{name}: {kind} model, a transformer rather than a UNet, which FGAT does not support: "
                         "use an SD 1.x, SD 2.x or SDXL checkpoint")
    if UNET_PREFIX + "label_emb.0.0.weight" in shapes:
        raise ValueError(f"{name}: an SDXL UNet without its text encoders (no conditioner.embedders.*): FGAT "
                         "needs the full checkpoint")
    raise ValueError(
        f"{name}: the UNet is there but no text encoder (no cond_stage_model.* or conditioner.* weights): "
        "FGAT needs the full checkpoint"
    )


def config_folder(family: str, prediction_type: str | None = None) -> Path:
    """The shipped config folder for a family ('sd2' with v-prediction: 'sd2-v')."""
    if family == "sd2" and prediction_type == "v_prediction":
        family = "sd2-v"
    folder = CONFIG_ROOT / family
    if not folder.is_dir():
        raise ValueError(f"no shipped configs for {family!r} in {CONFIG_ROOT}: the installation is incomplete")
    return folder


def prediction_type_from_yaml(path: str | os.PathLike) -> str | None:
    """The prediction type of `model.yaml` beside `model.safetensors` (the WebUI's convention): 'v_prediction'
    where `model.params.parameterization` is "v" (ldm) or the denoiser's scaling is a `VScaling` (sgm: SDXL,
    SD 2.1 in Stability's configs), else 'epsilon'; None without a yaml."""
    path = Path(path)
    for cand in (path.with_suffix(".yaml"), path.with_suffix(".yml")):
        if cand.is_file():
            break
    else:
        return None
    import yaml

    try:
        conf = yaml.safe_load(cand.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{cand.name}: not a readable YAML file ({e}): fix or remove it") from None
    params = ((conf.get("model") or {}).get("params") or {}) if isinstance(conf, dict) else {}
    if params.get("parameterization") == "v":
        return "v_prediction"
    scaling = ((params.get("denoiser_config") or {}).get("params") or {}).get("scaling_config") or {}
    target = str(scaling.get("target", "")) if isinstance(scaling, dict) else ""
    return "v_prediction" if target.rsplit(".", 1)[-1].startswith("VScaling") else "epsilon"


@torch.no_grad()
def unet_predicts_v(unet: nn.Module) -> bool:
    """Whether an SD 2.x UNet predicts v rather than eps: the WebUI's check (A1111
    modules/sd_models_config.py, is_using_v_parameterization_for_sd2) on a diffusers UNet.

    One UNet call on a constant 8x8 latent (0.5) with a constant 2-token context (0.5) at t = 999. There the
    latent is almost pure noise, so an eps-model returns roughly its input, while a v-model returns about
    -x0 ≈ -(input)/sqrt(1 - a) shifted far below it: v when mean(out - x) < -1."""
    p = next(unet.parameters())
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=p.device, dtype=p.dtype)
    ctx = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, device=p.device, dtype=p.dtype)
    t = torch.tensor([999], device=p.device)
    out = unet(x, t, encoder_hidden_states=ctx).sample
    return bool((out.float() - x.float()).mean().item() < -1)


# ---------------------------------------------------------------------------------------------- folders
def load_diffusers_folder(
    folder: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *,
    prediction_type: str | None = None,
) -> FGATPipeline:
    """A local diffusers folder (as `save_pretrained` writes it). Only `.safetensors` weights are read."""
    folder = Path(folder)
    if not (folder / "unet").is_dir():
        raise ValueError(
            f"{folder}: not a diffusers model folder (no unet/ subfolder): pass a folder with model_index.json, "
            "unet/, vae/, text_encoder/, tokenizer/ and scheduler/, or a .safetensors checkpoint"
        )
    missing = [s for s in ("vae", "text_encoder", "scheduler") if not (folder / s).is_dir()]
    if missing:
        raise ValueError(f"{folder}: the diffusers folder lacks {', '.join(missing)}/: it is incomplete")
    sdxl = (folder / "text_encoder_2").is_dir()
    unet = _from_pretrained(_diffusers_cls("UNet2DConditionModel"), folder, "unet")
    vae = _from_pretrained(_diffusers_cls("AutoencoderKL"), folder, "vae")
    te = _from_pretrained(_text_encoder_cls(folder / "text_encoder"), folder, "text_encoder")
    te2 = _from_pretrained(_text_encoder_cls(folder / "text_encoder_2", True), folder, "text_encoder_2") if sdxl \
        else None
    sched = _read_json(folder / "scheduler" / "scheduler_config.json")
    pred = prediction_type or sched.get("prediction_type", "epsilon")
    return _assemble(unet, vae, te, te2, folder, folder, pred, device, dtype, folder.name)


def load_hub_model(
    repo_id: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *,
    prediction_type: str | None = None,
) -> FGATPipeline:
    """A diffusers repository on the Hugging Face hub: the local cache first; a download only where a
    network exists (never with HF_HUB_OFFLINE=1); the `.safetensors` weights and configs only."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ValueError(f"{repo_id!r} looks like a hub id, but huggingface_hub is not installed: pass a local "
                         "diffusers folder or a .safetensors file") from None
    patterns = [
        "model_index.json", "*/config.json", "scheduler/*.json", "tokenizer*/*",
        "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model-*.safetensors",
        "vae/diffusion_pytorch_model.safetensors", "text_encoder*/model.safetensors",
        "text_encoder*/model-*.safetensors", "*.safetensors.index.json",
    ]
    try:
        folder = snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True)
    except Exception:
        folder = None
    if folder is None or not (Path(folder) / "unet").is_dir():
        if hub_offline():
            raise ValueError(
                f"{repo_id!r} is neither a local file or folder nor in the local Hugging Face cache, and the hub "
                "is offline (HF_HUB_OFFLINE): pass a local diffusers folder or a .safetensors checkpoint "
                "(--model PATH)"
            )
        try:
            folder = snapshot_download(repo_id, allow_patterns=patterns)
        except Exception as e:
            raise ValueError(
                f"could not download {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {e}); offline or "
                "unreachable? Pass a local diffusers folder or a .safetensors checkpoint (--model PATH)"
            ) from None
    return load_diffusers_folder(folder, device, dtype, prediction_type=prediction_type)


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DIFFUSERS_OFFLINE"))


# ---------------------------------------------------------------------------------------------- configs only
def random_pipeline(
    family: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *, seed: int = 0,
    config_dir: str | os.PathLike | None = None,
) -> FGATPipeline:
    """Full-size networks of a family ('sd15', 'sd2', 'sd2-v', 'sdxl') from the shipped configs, with seeded
    random weights (benchmarks: the speed of a real-size model without its weights)."""
    conf = Path(config_dir) if config_dir is not None else CONFIG_ROOT / family
    base = "sd2" if family == "sd2-v" else family
    _check_config_folder(conf, base)
    torch.manual_seed(seed)
    with torch.device(device):
        unet = _diffusers_cls("UNet2DConditionModel").from_config(_read_json(conf / "unet" / "config.json"))
        vae = _diffusers_cls("AutoencoderKL").from_config(_read_json(conf / "vae" / "config.json"))
        te = _text_encoder_cls(conf / "text_encoder")(_text_config(conf / "text_encoder"))
        te2 = None
        if base == "sdxl":
            te2 = _text_encoder_cls(conf / "text_encoder_2", True)(_text_config(conf / "text_encoder_2"))
    cast(unet, dtype)
    pred = _read_json(conf / "scheduler" / "scheduler_config.json").get("prediction_type", "epsilon")
    return _assemble(unet, vae, te, te2, conf, conf, pred, device, dtype, f"random-{family}")


def clip_tokenizer(pad_token: str = "<|endoftext|>", model_max_length: int = 77):
    """The CLIP BPE tokenizer (SD 1.x, SD 2.x, both SDXL encoders) from the shipped OpenAI CLIP vocabulary
    (`model_configs/clip_tokenizer/`): 49408 tokens, <|startoftext|> = 49406, <|endoftext|> = 49407."""
    import gzip

    from transformers import CLIPTokenizer

    from .tiny import _bytes_to_unicode

    lines = gzip.open(CLIP_BPE, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # the first line is a header; CLIP uses 48894 merges
    chars = _bytes_to_unicode()
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory(prefix="fgat-clip-tok-") as d:
        (Path(d) / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
        (Path(d) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        return CLIPTokenizer(
            str(Path(d) / "vocab.json"), str(Path(d) / "merges.txt"), pad_token=pad_token,
            model_max_length=model_max_length,
        )


def alphas_cumprod_from_config(config: Mapping) -> Tensor:
    """a_t of a diffusers scheduler config (scaled_linear or linear betas; `rescale_betas_zero_snr`), float64."""
    n = int(config.get("num_train_timesteps", 1000))
    b0, b1 = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    kind = config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        ac = scaled_linear_alphas_cumprod(b0, b1, n)
    elif kind == "linear":
        ac = torch.cumprod(1.0 - torch.linspace(b0, b1, n, dtype=torch.float64), dim=0)
    else:
        raise ValueError(f"unsupported beta_schedule {kind!r} in the scheduler config: use scaled_linear or linear")
    return rescale_zero_terminal_snr(ac) if config.get("rescale_betas_zero_snr") else ac


# ---------------------------------------------------------------------------------------------- internals
def _normalize_prediction_type(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if key not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction type {value!r}: use epsilon or v_prediction")
    return PREDICTION_TYPES[key]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"missing config file {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _check_config_folder(conf: Path, family: str) -> None:
    needed = ["unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json"]
    if family == "sdxl":
        needed.append("text_encoder_2/config.json")
    missing = [n for n in needed if not (conf / n).is_file()]
    if missing:
        raise ValueError(f"config folder {conf} lacks {', '.join(missing)} (needed for {FAMILY_NAMES[family]})")


def _diffusers_cls(name: str):
    import diffusers

    return getattr(diffusers, name)


def _text_encoder_cls(folder: Path, projection: bool = False):
    import transformers

    arch = None
    if (folder / "config.json").is_file():
        arch = (_read_json(folder / "config.json").get("architectures") or [None])[0]
    if projection or arch == "CLIPTextModelWithProjection":
        return transformers.CLIPTextModelWithProjection
    return transformers.CLIPTextModel


def _text_config(folder: Path):
    from transformers import CLIPTextConfig

    data = _read_json(folder / "config.json")
    if data.get("model_type") == "clip" and "text_config" in data:  # a full CLIP config
        data = data["text_config"]
    data = {k: v for k, v in data.items() if k not in ("architectures", "model_type", "transformers_version",
                                                        "_name_or_path", "torch_dtype", "dtype")}
    return CLIPTextConfig(**data)


def _build(cls, folder: Path) -> nn.Module:
    """A diffusers model from its config, with no memory or time spent on initial weights (meta device)."""
    with torch.device("meta"):
        return cls.from_config(_read_json(folder / "config.json"))


def _build_text_encoder(folder: Path, projection: bool = False) -> nn.Module:
    with torch.device("meta"):
        return _text_encoder_cls(folder, projection)(_text_config(folder))


def _from_pretrained(cls, folder: Path, sub: str):
    try:
        return cls.from_pretrained(str(folder), subfolder=sub, local_files_only=True, use_safetensors=True)
    except Exception as e:
        for weights in sorted((folder / sub).glob("*.safetensors")):  # a truncated download, named as such
            try:
                read_safetensors_shapes(weights)
            except ValueError as bad:
                raise ValueError(f"{folder}: {sub}/{bad}") from None
        pickled = [p.name for p in (folder / sub).glob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
        advice = ("FGAT reads .safetensors weights only (pickled weights such as "
                  f"{pickled[0]} are never unpickled): convert them, or pass a .safetensors checkpoint"
                  if pickled else "check that the folder is a complete diffusers model (download it again)")
        raise ValueError(f"{folder}: could not load {sub}/ ({type(e).__name__}: {str(e)[:300]}). {advice}") from None


def _tokenizer(folder: Path, default_pad: str):
    """A folder's CLIP tokenizer: its own vocab.json/merges.txt where present, else the shipped CLIP BPE
    vocabulary with the folder's tokenizer_config.json settings."""
    if (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file():
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    conf = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    pad = conf.get("pad_token", default_pad)
    if isinstance(pad, dict):  # the AddedToken form
        pad = pad.get("content", default_pad)
    return clip_tokenizer(pad, int(conf.get("model_max_length", 77)))


def _assemble(unet, vae, te, te2, conf: Path, sched_dir: Path, pred: str, device, dtype, name: str, *,
              zero_terminal_snr: bool = False) -> FGATPipeline:
    sched = _read_json(sched_dir / "scheduler" / "scheduler_config.json")
    if zero_terminal_snr:  # a single file's `ztsnr` marker: the schedule it was trained on
        sched = {**sched, "rescale_betas_zero_snr": True}
    tok = _tokenizer(conf / "tokenizer", "<|endoftext|>")
    tok2 = _tokenizer(conf / "tokenizer_2", "!") if te2 is not None else None
    pipe = FGATPipeline(
        unet, vae, te, tok, alphas_cumprod=alphas_cumprod_from_config(sched), prediction_type=pred,
        text_encoder_2=te2, tokenizer_2=tok2, device=device, dtype=dtype, name=name,
    )
    if te2 is not None and dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
        pipe.vae = UpcastVAE(pipe.vae)
    return pipe


class UpcastVAE(nn.Module):
    """A VAE run in float32 inside a float16 pipeline. SDXL's VAE overflows in fp16 (NaN, black images;
    diffusers marks it `force_upcast`): images and latents keep the pipeline's dtype outside, the VAE computes
    in fp32 inside. Applied to SDXL models with `force_upcast` in their VAE config when the dtype is fp16."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.inner = vae.float()

    @property
    def config(self):
        return self.inner.config

    @property
    def _inner_dtype(self) -> torch.dtype:
        return next(self.inner.parameters()).dtype

    def encode(self, x: Tensor):
        from types import SimpleNamespace

        mean = self.inner.encode(x.to(self._inner_dtype)).latent_dist.mean.to(x.dtype)
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=mean))

    def decode(self, z: Tensor):
        from types import SimpleNamespace

        return SimpleNamespace(sample=self.inner.decode(z.to(self._inner_dtype)).sample.to(z.dtype))


# ---------------------------------------------------------------------------------------------- conversion
def _convert_unet(sd: Mapping[str, Tensor], config) -> dict[str, Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    out = convert_ldm_unet_checkpoint(dict(sd), dict(config))
    return {k: v for k, v in out.items() if v is not None}


def _convert_vae(sd: Mapping[str, Tensor], config) -> dict[str, Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    vae_sd = {k: v for k, v in sd.items() if k.startswith(VAE_PREFIX)}
    out = convert_ldm_vae_checkpoint(vae_sd, dict(config))
    return {k: v for k, v in out.items() if v is not None}


def _fit_text_model_prefix(sd: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """transformers >= 5.6 flattened CLIPTextModel (no `text_model.` prefix); older ones and
    CLIPTextModelWithProjection keep it. Make the converted keys match the model at hand."""
    wrapped = any(k.startswith("text_model.") for k in model.state_dict())
    out = {}
    for k, v in sd.items():
        bare = k.removeprefix("text_model.")
        out["text_model." + bare if wrapped and not bare.startswith("text_projection") else bare] = v
    return out


def _convert_clip(sd: Mapping[str, Tensor], prefix: str, model: nn.Module) -> dict[str, Tensor]:
    """OpenAI CLIP in the ldm layout is already transformers' layout under a prefix."""
    return _fit_text_model_prefix({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, model)


def _convert_open_clip(sd: Mapping[str, Tensor], prefix: str, model: nn.Module) -> dict[str, Tensor]:
    """OpenCLIP (SD 2.x ViT-H, SDXL bigG) to transformers' CLIP layout with diffusers' converter. Blocks past
    the model's depth are dropped (SD 2.x reads the penultimate layer, so its encoder has 23 of 24 blocks)."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    depth = model.config.num_hidden_layers
    block = re.compile(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    sub = {}
    for k, v in sd.items():
        if not k.startswith(prefix):
            continue
        m = block.match(k)
        if m and int(m.group(1)) >= depth:
            continue
        sub[k] = v
    converted = convert_open_clip_checkpoint(_ConfigHolder(model.config), sub, prefix=prefix)
    return _fit_text_model_prefix(converted, model)


class _ConfigHolder:
    def __init__(self, config) -> None:
        self.config = config


_IGNORABLE = ("position_ids", "logit_scale")


def _load_into(module: nn.Module, sd: dict[str, Tensor], what: str, path: Path, family: str) -> None:
    """Load converted weights into a meta-built module; a short, specific error where they do not fit."""
    want = module.state_dict()
    has_projection = any(k.endswith("text_projection.weight") for k in want)
    sd = {k: v for k, v in sd.items()
          if not (k.endswith(_IGNORABLE) and k not in want)
          and not (k.endswith("text_projection.weight") and not has_projection)}
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    wrong = sorted(k for k in set(want) & set(sd) if tuple(want[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights missing (e.g. {', '.join(missing[:2])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:2])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: file {tuple(sd[k].shape)}, "
                         f"model {tuple(want[k].shape)})")
        raise ValueError(
            f"{path.name}: its {what} weights do not fit the {FAMILY_NAMES[family]} architecture: "
            f"{'; '.join(parts)}. The file may be damaged or a variant FGAT does not support"
        )
    module.load_state_dict(sd, strict=True, assign=True)
    for name, buf in list(module.named_buffers()):
        if buf.is_meta:  # non-persistent buffers (CLIP position_ids) are not in any checkpoint
            if not name.endswith("position_ids"):
                raise ValueError(f"{path.name}: no value for the {what} buffer {name}")
            owner = module.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("position_ids", torch.arange(buf.shape[-1]).expand(buf.shape).clone(),
                                  persistent=False)
    module.eval().requires_grad_(False)
