"""Mirrors modules/sd_hijack_clip.py: A1111's text encoder wrapper around ldm's FrozenCLIPEmbedder.

PromptChunk (l.10-21), empty_chunk (l.46-52), tokenize_line (l.81-174), process_texts (l.176-197) and forward
(l.199-251; a wrapped embedder with `return_pooled` also returns the first chunk's pooled output) are
TextConditionalModel's chunking, which Forge copied: `fake_common.prompt_chunks`. tokenize (l.346-349),
process_tokens (l.253-286; every multiplier is 1 here, so the emphasis rescale is the identity) and
encode_with_transformers (l.351-360, CLIP skip).
Not mirrored: emphasis parsing, BREAK, comma backtracking, textual-inversion embeddings."""
import torch

from fake_common.prompt_chunks import PromptChunk, PromptChunker  # noqa: F401 (PromptChunk: l.10-21)
from modules import devices
from modules.shared import opts


class FrozenCLIPEmbedderWithCustomWords(PromptChunker, torch.nn.Module):
    def __init__(self, wrapped, hijack):
        super().__init__()
        self.wrapped = wrapped
        self.hijack = hijack
        self.chunk_length = 75
        self.tokenizer = wrapped.tokenizer
        self.id_start = self.wrapped.tokenizer.bos_token_id
        self.id_end = self.wrapped.tokenizer.eos_token_id
        self.id_pad = self.id_end
        # FrozenCLIPEmbedderWithCustomWordsBase.__init__: what SDXL's GeneralConditioner reads
        self.is_trainable = getattr(wrapped, "is_trainable", False)
        self.input_key = getattr(wrapped, "input_key", "txt")
        self.legacy_ucg_val = None

    def tokenize(self, texts):
        return self.wrapped.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def forward(self, texts):
        return self.encode_chunks(texts, getattr(self.wrapped, "return_pooled", False))

    def process_tokens(self, remade_batch_tokens, batch_multipliers):
        tokens = torch.asarray(remade_batch_tokens).to(devices.device)
        # every multiplier is 1 without emphasis parsing, so the "Original" emphasis rescale
        # z * m * (mean(z) / mean(z * m)) is the identity and is left out (with the tiny random CLIP,
        # whose final layer norm has zero bias, mean(z) can be exactly 0 and the real formula gives 0/0)
        return self.encode_with_transformers(tokens)

    def encode_with_transformers(self, tokens):
        outputs = self.wrapped.transformer(input_ids=tokens, output_hidden_states=-opts.CLIP_stop_at_last_layers)
        if opts.CLIP_stop_at_last_layers > 1:
            z = outputs.hidden_states[-opts.CLIP_stop_at_last_layers]
            z = self.wrapped.transformer.text_model.final_layer_norm(z)
        else:
            z = outputs.last_hidden_state
        return z


class FrozenCLIPEmbedderForSDXLWithCustomWords(FrozenCLIPEmbedderWithCustomWords):
    """(end of the file) SDXL's CLIP-L: the wrapped embedder's `layer_idx` hidden state (the penultimate)."""

    def encode_with_transformers(self, tokens):
        outputs = self.wrapped.transformer(input_ids=tokens, output_hidden_states=self.wrapped.layer == "hidden")
        if self.wrapped.layer == "last":
            return outputs.last_hidden_state
        if opts.sdxl_clip_l_skip is True:
            return outputs.hidden_states[-opts.CLIP_stop_at_last_layers]
        return outputs.hidden_states[self.wrapped.layer_idx]
