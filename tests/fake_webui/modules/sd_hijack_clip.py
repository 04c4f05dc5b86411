"""Mirrors modules/sd_hijack_clip.py: A1111's text encoder wrapper around ldm's FrozenCLIPEmbedder.

PromptChunk (l.10-21), empty_chunk (l.46-52), tokenize (l.346-349), tokenize_line (l.81-174: 75 prompt
tokens per chunk, each padded with the end token and framed by start/end, 77 in all), process_texts
(l.176-197), forward (l.199-251: chunk i of every text encoded together, shorter texts padded with empty
chunks, chunks concatenated along the token axis; a wrapped embedder with `return_pooled` also returns the first chunk's
pooled output, end of forward), process_tokens
(l.253-286; every multiplier is 1 here, so the emphasis rescale is the identity) and encode_with_transformers (l.351-360, CLIP skip).
Not mirrored: emphasis parsing, BREAK, comma backtracking, textual-inversion embeddings."""
import torch

from modules import devices
from modules.shared import opts


class PromptChunk:
    def __init__(self):
        self.tokens = []
        self.multipliers = []
        self.fixes = []


class FrozenCLIPEmbedderWithCustomWords(torch.nn.Module):
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

    def empty_chunk(self):
        chunk = PromptChunk()
        chunk.tokens = [self.id_start] + [self.id_end] * (self.chunk_length + 1)
        chunk.multipliers = [1.0] * (self.chunk_length + 2)
        return chunk

    def tokenize(self, texts):
        return self.wrapped.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def tokenize_line(self, line):
        tokens = self.tokenize([line])[0]
        chunks = []
        token_count = 0
        for start in range(0, max(len(tokens), 1), self.chunk_length):
            chunk = PromptChunk()
            chunk.tokens = list(tokens[start:start + self.chunk_length])
            is_last = start + self.chunk_length >= len(tokens)
            token_count += len(chunk.tokens) if is_last else self.chunk_length
            to_add = self.chunk_length - len(chunk.tokens)
            chunk.tokens += [self.id_end] * to_add
            chunk.tokens = [self.id_start] + chunk.tokens + [self.id_end]
            chunk.multipliers = [1.0] * len(chunk.tokens)
            chunks.append(chunk)
        return chunks, token_count

    def process_texts(self, texts):
        token_count = 0
        cache = {}
        batch_chunks = []
        for line in texts:
            if line in cache:
                chunks = cache[line]
            else:
                chunks, current_token_count = self.tokenize_line(line)
                token_count = max(current_token_count, token_count)
                cache[line] = chunks
            batch_chunks.append(chunks)
        return batch_chunks, token_count

    def forward(self, texts):
        batch_chunks, token_count = self.process_texts(texts)
        chunk_count = max([len(x) for x in batch_chunks])
        zs = []
        for i in range(chunk_count):
            batch_chunk = [chunks[i] if i < len(chunks) else self.empty_chunk() for chunks in batch_chunks]
            zs.append(self.process_tokens([x.tokens for x in batch_chunk], [x.multipliers for x in batch_chunk]))
        if getattr(self.wrapped, "return_pooled", False):
            return torch.hstack(zs), zs[0].pooled
        return torch.hstack(zs)

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
