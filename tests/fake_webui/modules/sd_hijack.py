"""Mirrors modules/sd_hijack.py StableDiffusionModelHijack: hijack() wraps ldm's FrozenCLIPEmbedder in
A1111's FrozenCLIPEmbedderWithCustomWords (l.205-245), or for SDXL (sgm's conditioner) its CLIP-L / OpenCLIP-G
embedders in their SDXL wrappers (`conditioner` branch of hijack), apply_optimizations picks the cross-attention
implementation (l.184-189, 59-93), comments and extra_generation_params collect notes for the infotext."""
from modules import sd_hijack_clip, sd_hijack_optimizations


class _EmbeddingDB:
    def load_textual_inversion_embeddings(self, force_reload=False):
        pass


class StableDiffusionModelHijack:
    def __init__(self):
        self.fixes = None
        self.layers = None
        self.circular_enabled = False
        self.clip = None
        self.optimization_method = None
        self.comments = []
        self.extra_generation_params = {}
        self.embedding_db = _EmbeddingDB()

    def hijack(self, m):
        conditioner = getattr(m, "conditioner", None)
        if conditioner:  # SDXL: wrap the text embedders; the conditioner becomes the cond_stage_model
            from modules import sd_hijack_open_clip

            text_cond_models = []
            for i, embedder in enumerate(conditioner.embedders):
                typename = type(embedder).__name__
                if typename == "FrozenCLIPEmbedder":
                    conditioner.embedders[i] = sd_hijack_clip.FrozenCLIPEmbedderForSDXLWithCustomWords(embedder, self)
                    text_cond_models.append(conditioner.embedders[i])
                if typename == "FrozenOpenCLIPEmbedder2":
                    conditioner.embedders[i] = sd_hijack_open_clip.FrozenOpenCLIPEmbedder2WithCustomWords(embedder, self)
                    text_cond_models.append(conditioner.embedders[i])
            m.cond_stage_model = text_cond_models[0] if len(text_cond_models) == 1 else conditioner
        else:
            m.cond_stage_model = sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords(m.cond_stage_model, self)
        self.clip = m.cond_stage_model
        self.apply_optimizations()

    def apply_optimizations(self, option=None):
        self.optimization_method = sd_hijack_optimizations.apply_optimizations(option)

    def apply_circular(self, enable):
        self.circular_enabled = enable

    def clear_comments(self):
        self.comments = []
        self.extra_generation_params = {}


model_hijack = StableDiffusionModelHijack()
