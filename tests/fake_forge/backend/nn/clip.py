"""Mirrors backend/nn/clip.py IntegratedCLIP (l.4-13): `transformer` is a transformers CLIPTextModel; for
SDXL's clip_g it also carries `text_projection` (add_text_projection=True). Built here around the tiny
transformers encoders (a CLIPTextModelWithProjection's text_model + text_projection for clip_g)."""
import torch


class _TextModel(torch.nn.Module):
    """CLIPTextModel's surface: forward(input_ids, output_hidden_states) = text_model(...)."""

    def __init__(self, text_model, text_projection=None):
        super().__init__()
        self.text_model = text_model
        if text_projection is not None:
            self.text_projection = text_projection

    def forward(self, input_ids, output_hidden_states=False):
        return self.text_model(input_ids=input_ids, output_hidden_states=output_hidden_states)


class IntegratedCLIP(torch.nn.Module):
    def __init__(self, hf_model):
        super().__init__()
        # transformers 4.x (Forge's pin) nests the transformer in `text_model`; 5.x's CLIPTextModel is it
        text_model = getattr(hf_model, "text_model", hf_model)
        self.transformer = _TextModel(text_model, getattr(hf_model, "text_projection", None))
        self.logit_scale = torch.nn.Parameter(torch.tensor(4.6055))
