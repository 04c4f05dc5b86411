"""Mirrors sgm/modules/encoders/modules.py (generative-models@45c443b3) for SDXL's conditioner.

- GeneralConditioner (l.75-172): runs every embedder on its `input_key` of the batch; 3-D outputs are
  concatenated along the channels into "crossattn", 2-D ones into "vector" (OUTPUT_DIM2KEYS / KEY2CATDIM);
  `force_zero_embeddings` zeroes the embedders whose input_key is listed (A1111: an all-empty negative).
- FrozenCLIPEmbedder (l.343-404): SDXL's CLIP-L, layer "hidden" -> hidden_states[layer_idx] (the
  penultimate layer); `transformer` is the transformers CLIPTextModel.
- FrozenOpenCLIPEmbedder2 (l.408-500): SDXL's OpenCLIP-bigG, layer "penultimate", always_return_pooled,
  legacy False: encode_with_transformer returns {"penultimate", "last", "pooled"}, pooled = text_projection of
  the final-layer-normed last layer at the end-of-text token. Here over the tiny transformers
  CLIPTextModelWithProjection (the same math; it pools at the first end token, OpenCLIP at argmax(ids),
  which is the end token in the real vocabulary).
- ConcatTimestepEmbedderND (l.925-941): each number of e.g. (height, width) -> Timestep(outdim), concatenated."""
import torch
from torch import nn

from ..diffusionmodules.openaimodel import Timestep


class AbstractEmbModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.is_trainable = False
        self.ucg_rate = 0.0
        self.input_key = None
        self.legacy_ucg_val = None


class GeneralConditioner(nn.Module):
    OUTPUT_DIM2KEYS = {2: "vector", 3: "crossattn", 4: "concat", 5: "concat"}
    KEY2CATDIM = {"vector": 1, "crossattn": 2, "concat": 1}

    def __init__(self, embedders):
        super().__init__()
        self.embedders = nn.ModuleList(embedders)

    def forward(self, batch, force_zero_embeddings=None):
        output = dict()
        if force_zero_embeddings is None:
            force_zero_embeddings = []
        for embedder in self.embedders:
            with torch.no_grad():
                emb_out = embedder(batch[embedder.input_key])
            if not isinstance(emb_out, (list, tuple)):
                emb_out = [emb_out]
            for emb in emb_out:
                out_key = self.OUTPUT_DIM2KEYS[emb.dim()]
                if hasattr(embedder, "input_key") and embedder.input_key in force_zero_embeddings:
                    emb = torch.zeros_like(emb)
                if out_key in output:
                    output[out_key] = torch.cat((output[out_key], emb), self.KEY2CATDIM[out_key])
                else:
                    output[out_key] = emb
        return output


class FrozenCLIPEmbedder(AbstractEmbModel):
    LAYERS = ["last", "pooled", "hidden"]

    def __init__(self, tokenizer, transformer, layer="hidden", layer_idx=None, always_return_pooled=False):
        super().__init__()
        self.tokenizer = tokenizer
        self.transformer = transformer
        self.max_length = 77
        self.layer = layer
        self.layer_idx = layer_idx
        self.return_pooled = always_return_pooled

    def forward(self, text):
        tokens = self.tokenizer(text, truncation=True, max_length=self.max_length, padding="max_length",
                                return_tensors="pt")["input_ids"]
        outputs = self.transformer(input_ids=tokens, output_hidden_states=self.layer == "hidden")
        z = outputs.last_hidden_state if self.layer == "last" else outputs.hidden_states[self.layer_idx]
        return (z, outputs.pooler_output) if self.return_pooled else z


class _OpenCLIPModel(nn.Module):
    """OpenCLIP's text tower surface (`token_embedding`, `text_projection`) over a transformers model."""

    def __init__(self, hf_model):
        super().__init__()
        self.text_model = getattr(hf_model, "text_model", hf_model)
        self.text_projection = hf_model.text_projection
        self.token_embedding = self.text_model.embeddings.token_embedding


class FrozenOpenCLIPEmbedder2(AbstractEmbModel):
    LAYERS = ["pooled", "last", "penultimate"]

    def __init__(self, tokenizer, hf_model, layer="penultimate", always_return_pooled=True, legacy=False):
        super().__init__()
        self.tokenizer = tokenizer
        self.model = _OpenCLIPModel(hf_model)
        self.max_length = 77
        self.return_pooled = always_return_pooled
        self.layer = layer
        self.layer_idx = 1 if layer == "penultimate" else 0
        self.legacy = legacy

    def forward(self, text):
        tokens = self.tokenizer(text, truncation=True, max_length=self.max_length, padding="max_length",
                                return_tensors="pt")["input_ids"]
        z = self.encode_with_transformer(tokens)
        return (z[self.layer], z["pooled"]) if self.return_pooled else z[self.layer]

    def encode_with_transformer(self, text):
        out = self.model.text_model(input_ids=text, output_hidden_states=True)
        return {"penultimate": out.hidden_states[-2], "last": out.hidden_states[-1],
                "pooled": self.model.text_projection(out.pooler_output)}


class ConcatTimestepEmbedderND(AbstractEmbModel):
    def __init__(self, outdim):
        super().__init__()
        self.timestep = Timestep(outdim)
        self.outdim = outdim

    def forward(self, x):
        if x.ndim == 1:
            x = x[:, None]
        b, dims = x.shape[0], x.shape[1]
        emb = self.timestep(x.reshape(b * dims))
        return emb.reshape(b, dims * self.outdim)
