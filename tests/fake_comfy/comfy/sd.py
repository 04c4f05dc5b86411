"""comfy/sd.py (ComfyUI 0.33.0): `CLIP` (l.236-) and `VAE` (l.486-).

- `CLIP.tokenize(text, return_word_ids=False)` (l.322-328): the tokenizer's `tokenize_with_weights`;
  `CLIP.encode_from_tokens(tokens, return_pooled=False)` (l.396-423): every 77-token chunk through the text
  encoder, concatenated along the sequence (sd1_clip.py `encode_token_weights`); SD 1.x: clip_l's last hidden
  state after the final layer norm; SDXL (sdxl_clip.py l.40-70 `SDXLClipModel`): clip_l's and clip_g's
  penultimate hidden states (no final norm, layer_idx -2) side by side, pooled = clip_g's projected output.
  Emphasis weights are not mirrored (the fake tokenizer gives weight 1.0).
- `VAE.encode(pixels)` (l.1358-1411): (B, H, W, C) in [0, 1], cropped to multiples of 8
  (`vae_encode_crop_pixels` l.1105-1118), `process_input` x * 2 - 1 (l.505), the SD VAE's posterior mode
  (ldm/models/autoencoder.py `DiagonalGaussianRegularizer`, sample=False); loaded through `load_models_gpu`;
  `VAE.decode(latent)` (l.1220-): (B, H, W, C), `process_output` (x + 1) / 2 clamped (l.506)."""
import torch


class CLIP:
    def __init__(self, tokenizer, encoders, sdxl=False):
        self.tokenizer = tokenizer
        self.cond_stage_model = torch.nn.ModuleDict(encoders)
        self.sdxl = sdxl

    def tokenize(self, text, return_word_ids=False, **kwargs):
        return self.tokenizer.tokenize_with_weights(text, return_word_ids, **kwargs)

    def _encode(self, key, chunks, hidden):
        ids = torch.tensor([[t for t, _w in chunk] for chunk in chunks])
        out = self.cond_stage_model[key](ids, output_hidden_states=True)
        states = out.hidden_states[-2] if hidden else out[0]
        pooled = getattr(out, "text_embeds", None)
        return torch.cat(list(states), dim=0)[None], None if pooled is None else pooled[:1]

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        with torch.no_grad():
            if self.sdxl:
                cond_l, _ = self._encode("l", tokens["l"], True)
                cond_g, pooled = self._encode("g", tokens["g"], True)
                cond = torch.cat([cond_l, cond_g], dim=-1)
            else:
                cond, pooled = self._encode("l", tokens["l"], False)
        return (cond, pooled) if return_pooled else cond


class VAE:
    def __init__(self, vae):
        self.first_stage_model = vae
        self.process_input = lambda image: image * 2.0 - 1.0
        self.process_output = lambda image: image.add_(1.0).div_(2.0).clamp_(0.0, 1.0)

    def vae_encode_crop_pixels(self, pixels):
        dims = pixels.shape[1:-1]
        for d in range(len(dims)):
            x = (dims[d] // 8) * 8
            x_offset = (dims[d] % 8) // 2
            if x != dims[d]:
                pixels = pixels.narrow(d + 1, x_offset, x)
        return pixels[..., :3]

    def encode(self, pixel_samples):
        pixel_samples = self.vae_encode_crop_pixels(pixel_samples).movedim(-1, 1)
        with torch.no_grad():
            return self.first_stage_model.encode(self.process_input(pixel_samples)).latent_dist.mode().float()

    def decode(self, samples_in, vae_options={}):
        with torch.no_grad():
            out = self.first_stage_model.decode(samples_in.to(next(self.first_stage_model.parameters()))).sample
        return self.process_output(out.float()).movedim(1, -1)
