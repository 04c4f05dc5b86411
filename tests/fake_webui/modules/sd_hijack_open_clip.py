"""Mirrors modules/sd_hijack_open_clip.py (A1111 1.10.1) FrozenOpenCLIPEmbedder2WithCustomWords (SDXL's
OpenCLIP-G): the chunked prompt encoding of sd_hijack_clip around the wrapped embedder, whose
`encode_with_transformer` dict gives the `layer` output ("penultimate") and the pooled embedding.
The real one tokenizes with open_clip's tokenizer and pads after the end token with id 0; the fake uses the
tiny transformers tokenizer and its pad id (the same as its end id), as the core pipeline does."""
from modules import sd_hijack_clip


class FrozenOpenCLIPEmbedder2WithCustomWords(sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords):
    def __init__(self, wrapped, hijack):
        super().__init__(wrapped, hijack)
        self.id_pad = self.wrapped.tokenizer.pad_token_id

    def encode_with_transformers(self, tokens):
        d = self.wrapped.encode_with_transformer(tokens)
        z = d[self.wrapped.layer]
        pooled = d.get("pooled")
        if pooled is not None:
            z.pooled = pooled
        return z
