"""comfy/sd1_clip.py (ComfyUI 0.33.0): `SDTokenizer` (l.486-): `tokenizer` (a transformers CLIPTokenizer),
`start_token` / `end_token` / `pad_token` (l.493-528: pad = end token with pad_with_end, else 0), `inv_vocab`
(l.534), `tokenize_with_weights` (l.572-675: the text's tokens in chunks of max_length - 2 framed by start and
end tokens, each chunk padded to max_length, [(id, weight)] per chunk; emphasis weights and embeddings are not
mirrored, every weight is 1.0); `SD1Tokenizer` (l.686-700: the SDTokenizer as attribute `clip_l`, tokens under
key "l")."""


class SDTokenizer:
    def __init__(self, tokenizer, max_length=77, pad_with_end=True, embedding_key="clip_l"):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.start_token = tokenizer.bos_token_id
        self.end_token = tokenizer.eos_token_id
        self.pad_token = self.end_token if pad_with_end else 0
        self.embedding_key = embedding_key
        self.inv_vocab = {v: k for k, v in tokenizer.get_vocab().items()}

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        ids = self.tokenizer(text)["input_ids"][1:-1]
        size = self.max_length - 2
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)] or [[]]
        out = []
        for chunk in chunks:
            batch = [self.start_token, *chunk, self.end_token]
            batch += [self.pad_token] * (self.max_length - len(batch))
            out.append([(t, 1.0) for t in batch])
        return out


class SD1Tokenizer:
    def __init__(self, tokenizer, clip_name="l"):
        self.clip_name = clip_name
        self.clip = f"clip_{clip_name}"
        setattr(self, self.clip, SDTokenizer(tokenizer))

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        return {self.clip_name: getattr(self, self.clip).tokenize_with_weights(text, return_word_ids, **kwargs)}
