"""comfy/sdxl_clip.py (ComfyUI 0.33.0) `SDXLTokenizer` (l.24-35): clip_l (an SDTokenizer padding with the end
token) and clip_g (`SDXLClipGTokenizer` l.19-21: pad_with_end=False, so padded with token 0), tokens under "g"
and "l"."""
from comfy.sd1_clip import SDTokenizer


class SDXLTokenizer:
    def __init__(self, tokenizer_l, tokenizer_g):
        self.clip_l = SDTokenizer(tokenizer_l)
        self.clip_g = SDTokenizer(tokenizer_g, pad_with_end=False, embedding_key="clip_g")

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        return {"g": self.clip_g.tokenize_with_weights(text, return_word_ids, **kwargs),
                "l": self.clip_l.tokenize_with_weights(text, return_word_ids, **kwargs)}
