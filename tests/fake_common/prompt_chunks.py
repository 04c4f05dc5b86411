"""The prompt chunking of A1111's text encoder wrapper, which Forge copied into its text engine.

A1111 modules/sd_hijack_clip.py (82a973c0) TextConditionalModel: PromptChunk (l.10-21), empty_chunk (l.46-52),
tokenize_line (l.81-174: 75 prompt tokens per chunk, each padded with the end token and framed by start/end,
77 in all), process_texts (l.176-197), forward (l.199-251: chunk i of every text encoded together, shorter
texts padded with empty chunks, chunks concatenated along the token axis, the first chunk's pooled output
returned too when asked). Forge backend/text_processing/classic_engine.py (dfdcbab6) has the same code in
ClassicTextProcessingEngine: PromptChunk l.16-20, empty_chunk l.110-114, tokenize_line l.150-232,
process_texts l.234-250, __call__ l.252-295; Neo keeps that file. Not mirrored: emphasis parsing, BREAK, comma
backtracking, textual-inversion embeddings (every multiplier is 1)."""
import torch


class PromptChunk:
    def __init__(self):
        self.tokens = []
        self.multipliers = []
        self.fixes = []


class PromptChunker:
    """The chunking methods; a subclass gives `chunk_length`, `id_start`, `id_end`, `tokenize(texts)` and
    `process_tokens(batch_tokens, batch_multipliers)` (one chunk of every text -> its hidden states)."""

    chunk_length = 75
    id_start: int
    id_end: int

    def empty_chunk(self):
        chunk = PromptChunk()
        chunk.tokens = [self.id_start] + [self.id_end] * (self.chunk_length + 1)
        chunk.multipliers = [1.0] * (self.chunk_length + 2)
        return chunk

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
            chunk.tokens = [self.id_start] + chunk.tokens + [self.id_end] * to_add + [self.id_end]
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

    def encode_chunks(self, texts, return_pooled: bool):
        """A1111's `forward` / Forge's `__call__`: the texts' hidden states (and the pooled output when asked)."""
        batch_chunks, token_count = self.process_texts(texts)
        chunk_count = max(len(x) for x in batch_chunks)
        zs = []
        for i in range(chunk_count):
            batch_chunk = [chunks[i] if i < len(chunks) else self.empty_chunk() for chunks in batch_chunks]
            zs.append(self.process_tokens([x.tokens for x in batch_chunk], [x.multipliers for x in batch_chunk]))
        if return_pooled:
            return torch.hstack(zs), zs[0].pooled
        return torch.hstack(zs)
