"""The surface of ldm/modules/encoders/modules.py FrozenCLIPEmbedder (a `tokenizer` and a `transformer`)
over the tiny CLIP text model; A1111 wraps it (modules/sd_hijack_clip.py) and never calls its forward."""
from torch import nn


class FrozenCLIPEmbedder(nn.Module):
    def __init__(self, tokenizer, transformer, max_length=77):
        super().__init__()
        self.tokenizer = tokenizer
        self.transformer = transformer
        self.max_length = max_length
