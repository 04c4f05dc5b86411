"""Mirrors backend/text_processing/classic_engine.py (Forge 2.0.1) ClassicTextProcessingEngine (l.53-319):
75-token chunks framed by BOS/EOS and padded with EOS, chunk i of every prompt encoded together, shorter
prompts padded with empty chunks (PromptChunk l.16-20, empty_chunk l.110-114, tokenize_line l.150-232,
process_texts l.234-250, __call__ l.252-295: A1111's TextConditionalModel code, `fake_common.prompt_chunks`),
encode_with_transformers (l.124-148: hidden_states[-max(clip_skip, minimal_clip_skip)], optional final
layer norm, optional pooled output through `text_projection`), process_tokens (l.297-319). Not mirrored:
emphasis parsing and weights, BREAK, comma backtracking, textual inversion."""
import math

import torch
from backend import memory_management
from fake_common.prompt_chunks import PromptChunk, PromptChunker  # noqa: F401 (PromptChunk: l.16-20)


class ClassicTextProcessingEngine(PromptChunker):
    def __init__(self, text_encoder, tokenizer, chunk_length=75, embedding_dir=None, embedding_key="clip_l",
                 embedding_expected_shape=768, emphasis_name="Original", text_projection=False, minimal_clip_skip=1,
                 clip_skip=1, return_pooled=False, final_layer_norm=True):
        self.embedding_key = embedding_key
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.text_projection = text_projection
        self.minimal_clip_skip = minimal_clip_skip
        self.clip_skip = clip_skip
        self.return_pooled = return_pooled
        self.final_layer_norm = final_layer_norm
        self.chunk_length = chunk_length
        self.id_start = self.tokenizer.bos_token_id
        self.id_end = self.tokenizer.eos_token_id
        self.id_pad = self.tokenizer.pad_token_id

    def get_target_prompt_token_count(self, token_count):
        return math.ceil(max(token_count, 1) / self.chunk_length) * self.chunk_length

    def tokenize(self, texts):
        return self.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def encode_with_transformers(self, tokens):
        tokens = tokens.to(memory_management.text_encoder_device())
        outputs = self.text_encoder.transformer(tokens, output_hidden_states=True)
        layer_id = -max(self.clip_skip, self.minimal_clip_skip)
        z = outputs.hidden_states[layer_id]
        if self.final_layer_norm:
            z = self.text_encoder.transformer.text_model.final_layer_norm(z)
        if self.return_pooled:
            pooled_output = outputs.pooler_output
            if self.text_projection and self.embedding_key != "clip_l":
                pooled_output = self.text_encoder.transformer.text_projection(pooled_output)
            z.pooled = pooled_output
        return z

    def __call__(self, texts):
        return self.encode_chunks(texts, self.return_pooled)

    def process_tokens(self, remade_batch_tokens, batch_multipliers):
        tokens = torch.asarray(remade_batch_tokens)
        if self.id_end != self.id_pad:
            for batch_pos in range(len(remade_batch_tokens)):
                index = remade_batch_tokens[batch_pos].index(self.id_end)
                tokens[batch_pos, index + 1:tokens.shape[1]] = self.id_pad
        # every multiplier is 1 without emphasis parsing, so the "Original" emphasis rescale
        # z * m * (mean(z) / mean(z * m)) (l.307-313) is the identity and is left out, as in the fake A1111
        return self.encode_with_transformers(tokens)
