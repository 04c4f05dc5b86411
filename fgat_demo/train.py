"""Train the bundled demo model on the demo world (fgat_demo/world.py): a small SD-layout model, on the CPU.

    python -m fgat_demo.train                      # everything: VAE, latent cache, UNet, decoder, export
    python -m fgat_demo.train --stage unet         # one stage (resumes from its last checkpoint)

Stages (each resumable: rerun the same command after an interruption):
1. `vae`: an AutoencoderKL (4-channel latent at 1/4 of the image: 64 px -> 16x16), L1 + a small KL, on
   random 32x32 crops of freshly rendered scenes (the VAE is fully convolutional, so crops train it for
   whole images at a quarter of the cost); 4000 steps of 32 crops.
2. `cache`: renders the UNet's training scenes once and stores their latents (the VAE's mean, scaled to
   unit variance: the scale goes into the VAE's `scaling_factor`) and object masks.
3. `unet`: an SD 1.x-layout UNet2DConditionModel (4 levels, cross-attention in down 0-2 / up 1-3, so DIFT's
   `up_blocks[1]` gives an 8x8 grid), epsilon prediction on SD's scaled-linear schedule, min-SNR weighting,
   10 % empty prompts (classifier-free guidance), EMA weights exported; 6000 steps of 32 latents. Plus the
   word-attention loss (`--attention-weight`, `attention_loss`): every cross-attention layer's probability
   for the category word, against the object mask at its grid.
4. `decoder`: the VAE's decoder fine-tuned on whole 64 px images, the encoder frozen (the cached latents and
   the UNet stay valid); 1200 steps of 8.
5. `export`: a diffusers folder (safetensors) in `fgat_cli/demo_model/`, which `python -m fgat_cli` loads
   when no model is given.

The text encoder is a CLIPTextModel with no transformer layers (token and position embeddings and the final
norm) on the CLIP tokenizer, frozen at its seeded random weights: the prompts only name the category ("a photo
of a cat"), so its job is to give each category (and the empty prompt) a distinct, fixed context, and without
layers only the category word's token differs between categories. The UNet can then learn the category from
that token alone, so its cross-attention to the word lands on the object: what FGAT's attention mask reads.
(The previous release's 2 causal layers put the category into every token after the word as well.)
Training scenes use seeds >= world.TRAIN_SEED0, disjoint from the evaluation pairs'. Seeded throughout (torch,
numpy, scene seeds)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from fgat_core.mask import attention_probabilities
from fgat_demo.world import CATEGORIES, TRAIN_SEED0, object_mask, render, sample_scene

ROOT = Path(__file__).resolve().parents[1]

PROMPT_TEMPLATES = ("a photo of a {}", "a {}", "a picture of a {}")
SD_SCHEDULER = {
    "_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
    "num_train_timesteps": 1000, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
    "timestep_spacing": "leading", "prediction_type": "epsilon",
}


# ---------------------------------------------------------------------------------------------- models
def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64), sample_size=64, mid_block_add_attention=False,
    )


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, cross_attention_dim=32,
        block_out_channels=(32, 32, 64, 64), down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, attention_head_dim=2, norm_num_groups=16,
    )


def build_text_encoder(seed: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                         num_hidden_layers=0, max_position_embeddings=77, projection_dim=32,
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    torch.manual_seed(seed)
    return CLIPTextModel(cfg).eval().requires_grad_(False)


def tokenizer():
    from fgat_cli.loading import clip_tokenizer

    return clip_tokenizer()


@torch.no_grad()
def prompt_table(te, tok) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Every training prompt (index 0 is the empty prompt), its context (n, 77, 32) and the position of its
    category word's token (the last before the end token; -1 for the empty prompt)."""
    prompts = [""] + [t.format(c) for c in sorted(CATEGORIES) for t in PROMPT_TEMPLATES]
    ids = tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    word = torch.tensor([len(tok(p).input_ids) - 2 if p else -1 for p in prompts])
    return prompts, te(ids)[0], word


class WordAttention:
    """Hooks on every cross-attention layer's to_q / to_k that keep, with gradients, each layer's softmax
    probability of one context token per batch row (averaged over heads): (B, h, w) maps by grid."""

    def __init__(self, unet) -> None:
        self.maps: list[torch.Tensor] = []
        self.tokens: torch.Tensor | None = None
        self._q: dict[int, torch.Tensor] = {}
        self.handles = []
        for i, m in enumerate(m for n, m in unet.named_modules() if n.endswith("attn2")):
            self.handles.append(m.to_q.register_forward_hook(self._keep_q(i)))
            self.handles.append(m.to_k.register_forward_hook(self._score(i, m.heads)))

    def _keep_q(self, i):
        def hook(_m, _inp, out):
            self._q[i] = out
        return hook

    def _score(self, i, heads):
        def hook(_m, _inp, k):
            q = self._q.pop(i)
            b, nq, _ = q.shape
            p = attention_probabilities(q, k, heads).mean(1)  # (b, nq, nk), with gradients
            side = int(math.isqrt(nq))
            self.maps.append(p[torch.arange(b), :, self.tokens.clamp(min=0)].view(b, side, side))
        return hook


def attention_loss(maps: list[torch.Tensor], masks: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each layer's word-attention probability against the object mask at that
    grid (area fraction > 0.5), over the rows whose prompt names the category; grids under 4x4 (the mid
    block's 2x2) are left free."""
    losses = []
    for m in (m for m in maps if min(m.shape[-2:]) >= 4):
        target = (F.adaptive_avg_pool2d(masks[:, None].float(), m.shape[-2:])[:, 0] > 0.5).float()
        p = m.clamp(1e-6, 1 - 1e-6)
        bce = -(target * p.log() + (1 - target) * (1 - p).log())
        losses.append(bce[rows].mean())
    return torch.stack(losses).mean()


# ---------------------------------------------------------------------------------------------- data
def scene_batch(rng: np.random.Generator, n: int, crop: int | None = None) -> torch.Tensor:
    """n freshly rendered scenes (seeds from rng, >= TRAIN_SEED0) as (n, 3, H, W) in [-1, 1]."""
    imgs = []
    for _ in range(n):
        img = render(sample_scene(TRAIN_SEED0 + int(rng.integers(1 << 40))))
        if crop:
            y, x = rng.integers(0, img.shape[0] - crop + 1, 2)
            img = img[y : y + crop, x : x + crop]
        imgs.append(img)
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() * 2 - 1


# ---------------------------------------------------------------------------------------------- checkpoints
def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    state = opt.state_dict()["state"]
    out = {}
    for i, s in state.items():
        for k, v in s.items():
            out[f"opt.{i}.{k}"] = torch.as_tensor(v).clone()
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, i, k = name.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def save_checkpoint(path: Path, model, ema, opt, info: dict) -> None:
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.contiguous() for k, v in ema.state_dict().items()})
    tensors.update(optimizer_tensors(opt))
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(info, indent=1))


def load_checkpoint(path: Path, model, ema, opt) -> dict:
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    load_optimizer_tensors(opt, tensors)
    return json.loads(path.with_suffix(".json").read_text())


def lr_at(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


@torch.no_grad()
def ema_update(ema, model, step: int, decay: float) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.mul_(d).add_(pm.detach(), alpha=1 - d)


def train_loop(name: str, work: Path, model, steps: int, lr: float, loss_fn, seed: int, ema_decay: float) -> None:
    """Generic resumable loop: loss_fn(model, rng, step) -> loss. Checkpoints every 2 minutes and at the end."""
    import copy

    from tqdm import tqdm

    ckpt = work / f"{name}.safetensors"
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    info = {"step": 0, "seconds": 0.0}
    if ckpt.is_file():
        info = load_checkpoint(ckpt, model, ema, opt)
        print(f"{name}: resumed at step {info['step']}", flush=True)
    rng = np.random.default_rng([seed, info["step"]])
    torch.manual_seed(seed * 1000003 + info["step"])
    bar = tqdm(total=steps, initial=info["step"], desc=name, unit="step", mininterval=10, file=sys.stdout)
    last_save, t_start, smooth = time.time(), time.time() - info["seconds"], None
    for step in range(info["step"], steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr)
        loss = loss_fn(model, rng, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(ema, model, step, ema_decay)
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{smooth:.4f}", refresh=False)
        info = {"step": step + 1, "seconds": time.time() - t_start, "loss": smooth}
        if time.time() - last_save > 120 or step + 1 == steps:
            save_checkpoint(ckpt, model, ema, opt, info)
            last_save = time.time()
    bar.close()
    print(f"{name}: {info['step']} steps, {info['seconds'] / 60:.1f} min, loss {info.get('loss')}", flush=True)


def ema_of(name: str, work: Path, model):
    tensors = load_file(str(work / f"{name}.safetensors"))
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    return model.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------- stages
def stage_vae(args) -> None:
    torch.manual_seed(args.seed)
    model = build_vae().train()

    def loss_fn(vae, rng, step):
        x = scene_batch(rng, args.vae_batch, crop=32)
        post = vae.encode(x).latent_dist
        # the mean plus a little noise: sampling at the posterior's initial unit variance drowns the signal
        # and made the first hundreds of steps learn nothing but blur; FGAT encodes with the mean
        z = post.mean + 0.05 * torch.randn_like(post.mean)
        y = vae.decode(z).sample
        return (y - x).abs().mean() + 0.5 * (y - x).pow(2).mean() + 1e-6 * post.kl().mean()

    train_loop("vae", args.work, model, args.vae_steps, 2e-3, loss_fn, args.seed, 0.99)


def stage_decoder(args) -> None:
    """Fine-tune the decoder alone on whole images, the encoder frozen (so the cached latents and the UNet
    trained on them stay valid): can run beside the `unet` stage."""
    vae = ema_of("vae", args.work, build_vae())
    vae.requires_grad_(False).decoder.requires_grad_(True).train()
    vae.post_quant_conv.requires_grad_(True)

    def loss_fn(model, rng, step):
        x = scene_batch(rng, args.decoder_batch)
        with torch.no_grad():
            z = model.encode(x).latent_dist.mean
        y = model.decode(z).sample
        return (y - x).abs().mean() + 0.5 * (y - x).pow(2).mean()

    train_loop("decoder", args.work, vae, args.decoder_steps, 1e-3, loss_fn, args.seed + 4, 0.99)


@torch.no_grad()
def stage_cache(args) -> None:
    vae = ema_of("vae", args.work, build_vae())
    rng = np.random.default_rng(args.seed + 7)
    seeds = TRAIN_SEED0 + (1 << 41) + rng.choice(1 << 40, size=args.scenes, replace=False)
    lats, labels, masks = [], [], []
    for i in range(0, args.scenes, 64):
        scenes = [sample_scene(int(s)) for s in seeds[i : i + 64]]
        x = torch.from_numpy(np.stack([render(s) for s in scenes])).permute(0, 3, 1, 2).float() * 2 - 1
        lats.append(vae.encode(x).latent_dist.mean)
        labels += [sorted(CATEGORIES).index(s.category) for s in scenes]
        masks += [torch.from_numpy(object_mask(s)) for s in scenes]
        print(f"cache: {min(i + 64, args.scenes)}/{args.scenes}", flush=True) if i % 1024 == 0 else None
    lat = torch.cat(lats)
    scale = float(1.0 / lat.std())
    save_file({"latents": lat.contiguous(), "labels": torch.tensor(labels),
               "masks": torch.stack(masks).to(torch.uint8)}, str(args.work / "latents.safetensors"))
    (args.work / "latents.json").write_text(json.dumps({"scaling_factor": scale, "scenes": args.scenes}))
    print(f"cache: {len(lat)} latents, scaling factor {scale:.4f}", flush=True)


def stage_unet(args) -> None:
    from fgat_core.schedule import scaled_linear_alphas_cumprod

    data = load_file(str(args.work / "latents.safetensors"))
    scale = json.loads((args.work / "latents.json").read_text())["scaling_factor"]
    lat, labels = data["latents"] * scale, data["labels"]
    if args.attention_weight > 0 and "masks" not in data:
        raise SystemExit("the latent cache has no object masks (made by an older script): delete "
                         f"{args.work / 'latents.safetensors'} and run --stage cache again")
    masks = data.get("masks")
    _, ctx, word = prompt_table(build_text_encoder(args.seed + 1), tokenizer())
    ac = scaled_linear_alphas_cumprod().float()
    torch.manual_seed(args.seed + 2)
    model = build_unet().train()
    n_t = len(PROMPT_TEMPLATES)
    watch = WordAttention(model) if args.attention_weight > 0 else None

    def loss_fn(unet, rng, step):
        idx = torch.from_numpy(rng.integers(0, len(lat), args.unet_batch))
        z0 = lat[idx]
        prompt = 1 + labels[idx] * n_t + torch.from_numpy(rng.integers(0, n_t, len(idx)))
        prompt[torch.from_numpy(rng.random(len(idx)) < 0.1)] = 0
        t = torch.from_numpy(rng.integers(0, 1000, len(idx)))
        noise = torch.randn_like(z0)
        a = ac[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        if watch is not None:
            watch.maps, watch.tokens = [], word[prompt]
        pred = unet(zt, t, encoder_hidden_states=ctx[prompt]).sample
        snr = a / (1 - a)
        w = torch.clamp(snr, max=5.0) / snr  # min-SNR-5 weighting (eps prediction)
        loss = (w * (pred - noise).pow(2)).mean()
        if watch is not None and bool((prompt > 0).any()):
            loss = loss + args.attention_weight * attention_loss(watch.maps, masks[idx], prompt > 0)
        return loss

    train_loop("unet", args.work, model, args.unet_steps, 1e-3, loss_fn, args.seed + 3, 0.999)


def stage_export(args) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    vae = ema_of("decoder" if (args.work / "decoder.safetensors").is_file() else "vae", args.work, build_vae())
    vae.register_to_config(scaling_factor=json.loads((args.work / "latents.json").read_text())["scaling_factor"])
    vae.save_pretrained(str(out / "vae"), safe_serialization=True)
    ema_of("unet", args.work, build_unet()).save_pretrained(str(out / "unet"), safe_serialization=True)
    build_text_encoder(args.seed + 1).save_pretrained(str(out / "text_encoder"), safe_serialization=True)
    for sub, conf in (("scheduler", {"scheduler_config.json": SD_SCHEDULER}),
                      ("tokenizer", {"tokenizer_config.json": dict(
                          tokenizer_class="CLIPTokenizer", model_max_length=77, pad_token="<|endoftext|>",
                          bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")})):
        (out / sub).mkdir(exist_ok=True)
        for fname, data in conf.items():
            (out / sub / fname).write_text(json.dumps(data, indent=2) + "\n")
    index = {"_class_name": "StableDiffusionPipeline", "_fgat_name": "FGAT demo world model",
             **{k: [lib, cls] for k, lib, cls in (
                 ("unet", "diffusers", "UNet2DConditionModel"), ("vae", "diffusers", "AutoencoderKL"),
                 ("text_encoder", "transformers", "CLIPTextModel"), ("tokenizer", "transformers", "CLIPTokenizer"),
                 ("scheduler", "diffusers", "DDIMScheduler"))}}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    runs = {n: json.loads((args.work / f"{n}.json").read_text()) for n in ("vae", "decoder", "unet")
            if (args.work / f"{n}.json").is_file()}
    (out / "training.json").write_text(json.dumps({"seed": args.seed, "stages": runs, "scenes": args.scenes,
                                                   "vae_batch": args.vae_batch, "unet_batch": args.unet_batch,
                                                   "threads": torch.get_num_threads()}, indent=2) + "\n")
    print(f"export: wrote {out}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=("all", "vae", "cache", "unet", "decoder", "export"), default="all",
                   help="all: vae, cache, unet, decoder, export")
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "train_demo", help="checkpoints and caches")
    p.add_argument("--out", type=Path, default=ROOT / "fgat_cli" / "demo_model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads (on a shared, loaded machine 1 thread can be faster)")
    p.add_argument("--vae-steps", type=int, default=4000)
    p.add_argument("--vae-batch", type=int, default=32)
    p.add_argument("--scenes", type=int, default=6000)
    p.add_argument("--unet-steps", type=int, default=6000)
    p.add_argument("--unet-batch", type=int, default=32)
    p.add_argument("--attention-weight", type=float, default=0.02,
                   help="weight of the word-attention loss (0: none; see the module docstring)")
    p.add_argument("--decoder-steps", type=int, default=1200)
    p.add_argument("--decoder-batch", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    stages = ("vae", "cache", "unet", "decoder", "export") if args.stage == "all" else (args.stage,)
    for s in stages:
        t0 = time.time()
        if s == "cache" and (args.work / "latents.safetensors").is_file():
            print("cache: present (delete it to rebuild)", flush=True)
            continue
        {"vae": stage_vae, "cache": stage_cache, "unet": stage_unet, "decoder": stage_decoder,
         "export": stage_export}[s](args)
        print(f"stage {s}: {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
